from __future__ import annotations

import pytest

from lib import settings
from lib.errors import ParameterError


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
    assert settings.collect(ns, settings.INFER_KEYS, "infer.ipynb")["frames"] == 4
    with pytest.raises(ParameterError, match="frame=40.*infer.ipynb has no such parameter"):
        settings.collect({**ns, "frame": 40}, settings.INFER_KEYS, "infer.ipynb")
    settings.collect({**ns, "size": 224}, settings.INFER_KEYS, "infer.ipynb")
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
        settings.check_infer(_params(tmp_path, **{name: value}))


def test_valid_parameters_resolve(tmp_path):
    cfg = settings.check_infer(_params(tmp_path))
    assert cfg["data_dir"] == tmp_path.resolve() and cfg["labels"] is None and cfg["exp"] == "t1"


def test_labels_auto_reads_the_data_folders_own_labels(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    assert settings.check_infer(_params(tmp_path, labels="auto"))["labels"] is None  # no labels.csv: none
    (tmp_path / "labels.csv").write_text("filename,label\na.jpg,1\n", encoding="utf-8")
    assert settings.check_infer(_params(tmp_path, labels="auto"))["labels"] == (tmp_path / "labels.csv").resolve()
