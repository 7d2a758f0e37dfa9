from __future__ import annotations

import pytest

from lib import parameters
from lib.errors import ParameterError
from lib.paths import NOTEBOOKS


def _params(tmp_path, **over):
    p = dict(data_dir=str(tmp_path), model=str(tmp_path), frames=4, face_margin=1.3, detect_width=640,
             detector="dlib_hog", no_face="skip", workers=0, cache_dir="", labels="", tta="flip", aggregate="mean",
             batch_size=8, threshold=0.5, fallback_prob=0.0, device="cpu", precision="auto", exp="t1",
             detect_every=1, detect_scale="fixed", torch_compile=False, follow_links=True, cluster="", shard="",
             file_timeout=60.0)
    p.update(over)
    return p


def test_collect_rejects_unknown_names_and_ignores_other_notebooks(tmp_path, capsys):
    ns = {**_params(tmp_path), "In": [], "_": None, "get_ipython": print}
    assert parameters.INFER.collect(ns)["frames"] == 4
    with pytest.raises(ParameterError, match="frame=40.*infer.ipynb has no such parameter"):
        parameters.INFER.collect({**ns, "frame": 40})
    parameters.INFER.collect({**ns, "size": 224})
    assert "ignores parameters of other notebooks: size" in capsys.readouterr().out


@pytest.mark.parametrize("name,value,match", [
    ("tta", "flop", "tta='flop'.*none, flip, zoom, flip_zoom"),
    ("aggregate", "vote", "aggregate='vote'.*mean, median"),
    ("frames", 0, "frames=0"),
    ("frames", -5, "frames=-5"),
    ("data_dir", "/no/such/dir", "data_dir='/no/such/dir'"),
    ("labels", "/no/labels.csv", "labels='/no/labels.csv'"),
    ("batch_size", 0, "batch_size=0"),
    ("threshold", 1.5, "threshold=1.5"),
    ("device", "tpu", "device='tpu'.*auto, cpu, cuda"),
    ("model", "no such model", "model='no such model'"),
    ("no_face", "blur", "no_face='blur'"),
    ("exp", "a/b", "exp='a/b'"),
    ("detect_every", 0, "detect_every=0"),
    ("follow_links", "yes", "follow_links='yes'.*True, False"),
    ("detect_scale", "big", "detect_scale=.big.*fixed, adaptive"),
    ("torch_compile", "yes", "torch_compile='yes'"),
    ("file_timeout", -1, "file_timeout=-1.*0 .no limit."),
    ("file_timeout", "1m", "file_timeout='1m'.*seconds"),
])
def test_wrong_parameter_stops_with_its_name(tmp_path, name, value, match):
    with pytest.raises(ParameterError, match=match):
        parameters.INFER.check(_params(tmp_path, **{name: value}))


def test_valid_parameters_resolve(tmp_path):
    cfg = parameters.INFER.check(_params(tmp_path))
    assert cfg["data_dir"] == tmp_path.resolve() and cfg["labels"] is None and cfg["exp"] == "t1"


def test_labels_auto_reads_the_data_folders_own_labels(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    assert parameters.INFER.check(_params(tmp_path, labels="auto"))["labels"] is None  # no labels.csv: none
    (tmp_path / "labels.csv").write_text("filename,label\na.jpg,1\n", encoding="utf-8")
    assert parameters.INFER.check(_params(tmp_path, labels="auto"))["labels"] == (tmp_path / "labels.csv").resolve()


# ------------------------------------------------------------------------- one schema per notebook, declared once
def test_every_parameters_cell_and_the_docs_page_match_the_schemas():
    """Each notebook's parameters cell (names, annotations, defaults, comments) and docs/parameters.md are what the
    schemas give; after changing a parameter: python -m lib.sweep.notebooks."""
    from lib.sweep import notebooks

    assert set(notebooks.schemas()) == {p.name for p in NOTEBOOKS.glob("*.ipynb")} | {"task.ipynb"}
    assert notebooks.stale() == []


def test_a_cell_that_differs_from_its_schema_is_named():
    from lib.sweep.notebooks import cell_problems

    cell = parameters.INFER.cell()
    assert cell_problems(parameters.INFER, cell) == []
    for old, new, what in (("frames: int = 30", "frames: int = 31", "frames"),
                           ("frames: int = 30", "frames: float = 30", "frames"),
                           ("# frames sampled per video, evenly spaced", "# frames per video", "frames"),
                           ('tta: str = "none"', 'tta: str = "flip"', "tta")):
        assert old in cell
        problems = cell_problems(parameters.INFER, cell.replace(old, new))
        assert len(problems) == 1 and f"infer.ipynb: {what}:" in problems[0], problems
    dropped = "\n".join(line for line in cell.splitlines() if not line.startswith("shard:"))
    assert "parameters" in cell_problems(parameters.INFER, dropped)[0]
    assert cell_problems(parameters.INFER, cell + "\nextra = 1")  # a line the schema does not declare


def test_the_writer_rewrites_a_stale_cell_and_the_page(tmp_path, monkeypatch):
    import shutil

    from lib.sweep import notebooks

    for nb in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(nb, tmp_path / nb.name)
    text = (tmp_path / "infer.ipynb").read_text(encoding="utf-8")
    (tmp_path / "infer.ipynb").write_text(text.replace("frames: int = 30", "frames: int = 12"), encoding="utf-8")
    monkeypatch.setattr(notebooks, "NOTEBOOKS", tmp_path)
    monkeypatch.setattr(notebooks, "PAGE", tmp_path / "docs" / "parameters.md")
    assert any("infer.ipynb: frames" in p for p in notebooks.stale())
    assert set(notebooks.write()) == {tmp_path / "infer.ipynb", tmp_path / "docs" / "parameters.md"}
    assert notebooks.stale() == [] and notebooks.write() == []
    assert (tmp_path / "infer.ipynb").read_text(encoding="utf-8") == (NOTEBOOKS / "infer.ipynb").read_text("utf-8")


def test_the_documented_check_command_runs():
    import subprocess
    import sys

    from lib.paths import ROOT

    done = subprocess.run([sys.executable, "-m", "lib.sweep.notebooks", "--check"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "match the schemas" in done.stdout


def test_papermill_help_shows_the_schemas_help():
    import papermill as pm

    found = pm.inspect_notebook(str(NOTEBOOKS / "infer.ipynb"))
    assert {k: v["help"] for k, v in found.items()} == {p.name: p.help for p in parameters.INFER.params}
    assert {k: v["inferred_type_name"] for k, v in found.items()} == {p.name: p.type.__name__
                                                                      for p in parameters.INFER.params}


def test_shared_groups_are_declared_once():
    """The crop settings, where preprocessing runs, device/precision and the task's parameters come from one place."""
    from lib.options import CROP_KEYS

    for group in (parameters.CROP, parameters.WHERE):
        for schema in (parameters.PREPROCESS, parameters.INFER):
            assert all(schema[p.name] is p for p in group)
    assert tuple(p.name for p in parameters.CROP) == CROP_KEYS
    assert all(parameters.INFER[p.name] is p for p in parameters.DEVICE)
    assert parameters.TASK.keys == tuple(k for k in parameters.INFER.keys if k not in ("cluster", "shard")) \
        + ("model_name",)
    assert parameters.TASK["frames"] is parameters.INFER["frames"]


def test_missing_parameter_is_named(tmp_path):
    p = _params(tmp_path)
    del p["shard"]
    with pytest.raises(ParameterError, match="shard=None.*infer.ipynb needs every one of its parameters"):
        parameters.INFER.check(p)


@pytest.mark.parametrize("name", ["baseline", "demo", "exp002", "exp003", "detector", "detector-train"])
def test_params_files_keep_their_flat_keys(name):
    """params/*.yaml name parameters exactly like the schemas (train's file: train.ipynb's, the others: infer's)."""
    import yaml

    from lib.paths import PARAMS
    from lib.training import TRAIN

    keys = set(yaml.safe_load((PARAMS / f"{name}.yaml").read_text(encoding="utf-8")))
    schema = TRAIN if name.endswith("-train") else parameters.INFER
    assert keys <= set(schema.keys), keys - set(schema.keys)
