"""Scoring-server bundles: build, the static checks, and runs that must pass or fail the way the server would."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from PIL import Image

import media_factory as mf
from lib import bundle as bundles
from lib.errors import ModelLoadError, ParameterError
from lib.parameters import TASK, literal
from lib.sweep.notebooks import cell_problems

KEY = "aif-test-key-0123456789"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("server-data")
    mf.face_video(d / "clip.mp4", n_frames=8)
    Image.fromarray(mf.face_image()).save(d / "face.jpg")
    Image.fromarray(mf.face_image((240, 240))).save(d / "얼굴 사진.png")
    (d / "empty.mp4").write_bytes(b"")
    return d


def _build(tmp_path: Path, model: Path, exp: str = "exp-k", **params) -> Path:
    yaml_file = tmp_path / f"{exp}.yaml"
    body = {"model": str(model), "frames": 3, "tta": "flip", "workers": 0, "batch_size": 5, **params}
    yaml_file.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in body.items()))
    return bundles.build(exp, params_file=str(yaml_file), out_root=tmp_path / "kernels")


def test_build_writes_a_self_contained_bundle(tmp_path, tiny_vit, monkeypatch):
    monkeypatch.setenv(bundles.KEY_ENV, KEY)
    bundle = _build(tmp_path, tiny_vit)
    nb = nbformat.read(bundle / "task.ipynb", as_version=4)
    tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
    assert tags == ["pip", "parameters", "submit"]
    assert nb.cells[1].source.startswith("!pip install") and '"aifactory"' in nb.cells[1].source
    params = bundles.task_parameters(bundle)
    assert params["model"] == f"model/{tiny_vit.name}" and params["frames"] == 3 and params["tta"] == "flip"
    assert params["data_dir"] == "./data" and params["model_name"] == "exp-k" and params["cache_dir"] == ""
    assert cell_problems(TASK, nb.cells[2].source, defaults=False) == []  # TASK's names, types and help; values baked
    assert (bundle / params["model"] / "model.safetensors").is_file()
    assert {"pipeline.py", "models.py", "frames.py", "backbones.py"} <= {p.name for p in (bundle / "lib").iterdir()}
    assert (bundle / "README.md").is_file() and bundles.key_leaks(bundle) == []
    assert bundles.static_problems(bundle) == []


def test_model_folder_names_the_uploader_skips_are_renamed(tmp_path, tiny_vit):
    pretrained = Path(shutil.copytree(tiny_vit, tmp_path / "pretrained-vit"))
    bundle = _build(tmp_path, pretrained)
    assert bundles.task_parameters(bundle)["model"] == "model/weights"
    assert bundles.static_problems(bundle) == []


def test_hub_model_cannot_be_bundled(tmp_path):
    with pytest.raises(ParameterError, match="model=.*no internet"):
        _build(tmp_path, Path("someone/some-model"))


def test_model_without_fake_class_is_refused(tmp_path, tiny_vit):
    odd = Path(shutil.copytree(tiny_vit, tmp_path / "odd"))
    cfg = json.loads((odd / "config.json").read_text())
    cfg["id2label"], cfg["label2id"] = {"0": "cat", "1": "dog"}, {"cat": 0, "dog": 1}
    (odd / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="looks like 'fake'"):
        _build(tmp_path, odd)


def _edit_cell(bundle: Path, old: str, new: str) -> None:
    nb = nbformat.read(bundle / "task.ipynb", as_version=4)
    cell = next(c for c in nb.cells if old in c.source)
    cell.source = cell.source.replace(old, new)
    nbformat.write(nb, bundle / "task.ipynb")


def test_static_problems_are_caught(tmp_path, tiny_vit, monkeypatch):
    bundle = _build(tmp_path, tiny_vit)
    model = bundles.task_parameters(bundle)["model"]
    shutil.move(str(bundle / model), str(bundle / "train_weights"))  # weights under a folder aif.submit skips
    _edit_cell(bundle, f"model: str = {literal(model)}", "model: str = 'train_weights'")
    _edit_cell(bundle, "import lib  #", "import kit_private_helpers\nimport lib  #")
    _edit_cell(bundle, "import json, resource", "try:\n    pass\nexcept* ValueError:\n    pass\nimport json, resource")
    monkeypatch.setenv(bundles.KEY_ENV, KEY)
    (bundle / "notes.txt").write_text(f"key {KEY}")
    problems = "\n".join(bundles.static_problems(bundle, max_size_mb=0.01))
    assert "train_weights/ would be left out by aif.submit" in problems
    assert "over the 0 MB limit" in problems
    assert "imports kit_private_helpers" in problems
    assert "not valid Python 3.10 syntax" in problems
    assert "notes.txt contains the submission key" in problems
    _edit_cell(bundle, "model: str = 'train_weights'", "model: str = '../elsewhere'")
    assert "does not resolve to a model folder inside the bundle" in "\n".join(bundles.static_problems(bundle))


def test_the_bundle_must_run_this_checkouts_inference_road(tmp_path, tiny_vit):
    """task.ipynb calls predict.predict_folder, and its lib/ is byte for byte this checkout's (no training code)."""
    bundle = _build(tmp_path, tiny_vit)
    assert bundles.static_problems(bundle) == []
    with open(bundle / "lib" / "pipeline.py", "a", encoding="utf-8") as f:
        f.write("# edited by hand\n")
    (bundle / "lib" / "training").mkdir()
    _edit_cell(bundle, "predict.predict_folder(", "predict.predict_files(")
    problems = "\n".join(bundles.static_problems(bundle))
    assert "lib/pipeline.py differs from this checkout's: rebuild" in problems
    assert "lib/training/ is in the bundle" in problems
    assert "does not call predict.predict_folder" in problems


@pytest.mark.slow
def test_check_passes_and_equals_the_kits_own_infer(tmp_path, tiny_vit, data, monkeypatch):
    monkeypatch.setenv(bundles.KEY_ENV, KEY)
    _build(tmp_path, tiny_vit)
    report = bundles.check("exp-k", data=str(data), n_files=100, out_root=tmp_path / "kernels")
    assert report["verdict"] == "PASS", report["reasons"]
    assert report["equivalence"]["files"] == 4 and report["equivalence"]["max_abs_diff"] <= 1e-6
    assert report["files"] == 4 and report["fallbacks"] == 1 and report["projection"]["projected_s"] > 0
    assert report["peak_rss_mb"] > 0 and report["crop_cache_peak_mb"] > 0 and report["bundle_mb"] > 0
    text = bundles.format_report(report)
    assert text.startswith("PASS") and "projection: 100 files" in text
    assert bundles.key_leaks(tmp_path) == [], "the key must not be written anywhere"


@pytest.mark.slow
def test_check_fails_when_a_file_gets_no_row(tmp_path, tiny_vit, data):
    bundle = _build(tmp_path, tiny_vit)
    _edit_cell(bundle, "if not cache_dir:", "import pandas as pd\n"
               "pd.read_csv(BUNDLE / 'submission.csv').iloc[:-1].to_csv(BUNDLE / 'submission.csv', index=False)\n"
               "if not cache_dir:")
    report = bundles.check("exp-k", data=str(data), n_files=100, out_root=tmp_path / "kernels")
    assert report["verdict"] == "FAIL" and "media files have no row" in " ".join(report["reasons"])


@pytest.mark.slow
def test_check_fails_on_weights_that_do_not_load(tmp_path, tiny_vit, data):
    from safetensors.torch import load_file, save_file

    bundle = _build(tmp_path, tiny_vit)
    weights = bundle / bundles.task_parameters(bundle)["model"] / "model.safetensors"
    save_file({k: v for k, v in load_file(weights).items() if not k.startswith("classifier")}, weights,
              metadata={"format": "pt"})
    report = bundles.check("exp-k", data=str(data), n_files=100, out_root=tmp_path / "kernels")
    assert report["verdict"] == "FAIL" and "missing_keys" in " ".join(report["reasons"])


def test_the_key_is_not_in_git():
    root = Path(bundles.__file__).resolve().parents[1]
    done = subprocess.run(["git", "grep", "-n", "-I", KEY, "--", ".", ":!tests/test_bundle.py"], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert subprocess.run(["git", "check-ignore", "-q", ".aif_key"], cwd=root).returncode == 0, "ignore the key file"


def test_submit_cell_does_nothing_without_a_key(tmp_path, tiny_vit, monkeypatch, capsys):
    bundle = _build(tmp_path, tiny_vit)
    cell = next(c for c in nbformat.read(bundle / "task.ipynb", as_version=4).cells
                if "submit" in c.metadata.get("tags", []))
    monkeypatch.delenv(bundles.KEY_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    exec(cell.source, {"Path": Path, "model_name": "exp-k"})  # would import aifactory (not installed) with a key
    assert "submit skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_check_passes_with_odd_names_and_names_the_files_utf8_cannot_carry(tmp_path, tiny_vit):
    """Names with CR, LF, quotes, commas, backslashes, emoji, 255 bytes, links: PASS, the same numbers as the kit's own
    infer. A name that is not UTF-8 has no row in a UTF-8 submission.csv: FAIL, naming the file and nothing else."""
    import os

    import odd_corpus
    from lib import names

    data = tmp_path / "odd-data"
    raw = odd_corpus.make_odd_corpus(data, tmp_path / "outside")
    latin1 = [r for r in raw if not names.is_utf8(os.fsdecode(r))]
    moved = tmp_path / "held-back"
    moved.mkdir()
    for r in latin1:
        os.replace(os.path.join(os.fsencode(data), r), os.path.join(os.fsencode(moved), r))
    _build(tmp_path, tiny_vit)
    report = bundles.check("exp-k", data=str(data), n_files=100, out_root=tmp_path / "kernels")
    assert report["verdict"] == "PASS", report["reasons"]
    assert report["files"] == len(raw) - len(latin1) == report["equivalence"]["files"]
    assert report["equivalence"]["max_abs_diff"] <= 1e-6
    os.replace(os.path.join(os.fsencode(moved), b"caf\xe9.jpg"), os.path.join(os.fsencode(data), b"caf\xe9.jpg"))
    report = bundles.check("exp-k", data=str(data), n_files=100, out_root=tmp_path / "kernels")
    assert report["verdict"] == "FAIL" and len(report["reasons"]) == 1, report["reasons"]
    assert "1 media files have names that are not valid UTF-8" in report["reasons"][0]
    assert "caf\\\\xe9.jpg" in report["reasons"][0] and report["equivalence"]["max_abs_diff"] <= 1e-6


def _kit_folders(root: Path, tiny_vit: Path) -> dict[str, Path]:
    """One model folder of each kind the kit writes or reads, saved the way the kit saves it."""
    import torch

    from lib import backbones, linear_probe

    torch.manual_seed(0)
    labels = {0: "real", 1: "fake"}
    out = {"hub-style ViT (id2label)": tiny_vit}
    lite, data = backbones.create("efficientnet_lite0", labels)  # demo detector, fine_tune, LoRA-merged, distilled
    out["timm wrapper (label_names)"] = backbones.save_model(lite, root / "lite")
    student, _ = backbones.create("resnet_tiny", labels)  # distillation student
    out["resnet_tiny"] = backbones.save_model(student, root / "resnet")
    probe = linear_probe.from_timm(lite.timm_model, "tf_efficientnet_lite0", labels, stages=(4, 5))
    out["linear probe"] = backbones.save_model(probe, root / "probe")
    for name in ("lite", "resnet", "probe"):
        backbones.write_preprocessor_config(root / name, 32 if name != "resnet" else 112)
    assert json.loads((root / "lite" / "config.json").read_text()).get("id2label") is None, "the demo's case"
    return out


def test_the_fake_class_comes_from_the_loader_for_every_kind_of_model_folder(tmp_path, tiny_vit):
    """The bug a newcomer met: a timm-wrapper folder (the demo detector) carries label_names, not id2label, and the
    bundle read the raw JSON. Build and the static checks now ask the loader's own function."""
    from lib import models

    for kind, folder in _kit_folders(tmp_path / "models", tiny_vit).items():
        lm = models.load_model(str(folder), device="cpu")
        assert models.model_classes(str(folder)) == (lm.id2label, lm.fake_indices), kind
        bundle = _build(tmp_path, folder, exp=f"k-{folder.name}")
        assert bundles.static_problems(bundle) == [], kind


def test_saved_weights_follow_the_users_umask(tmp_path):
    import os

    from lib import backbones

    model, _ = backbones.create("resnet_tiny", {0: "real", 1: "fake"})
    old = os.umask(0o022)
    try:
        folder = backbones.save_model(model, tmp_path / "m")
    finally:
        os.umask(old)
    modes = {f.name: f.stat().st_mode & 0o777 for f in folder.iterdir()}
    assert modes["model.safetensors"] == 0o644 and modes["config.json"] == 0o644, modes
