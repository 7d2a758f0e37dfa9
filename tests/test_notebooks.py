"""The notebooks: committed clean, parameters documented, and an end-to-end papermill run of preprocess + infer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest
from PIL import Image

import media_factory as mf
from lib import media, parameters
from lib.paths import NOTEBOOKS
from lib.review.report import REPORT
from lib.training import TRAIN

NOTEBOOK_KEYS = {"infer.ipynb": parameters.INFER.keys, "preprocess.ipynb": parameters.PREPROCESS.keys,
                 "train.ipynb": TRAIN.keys, "report.ipynb": REPORT.keys}


@pytest.mark.parametrize("name", sorted(NOTEBOOK_KEYS))
def test_notebook_committed_clean_with_documented_parameters(name):
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in code), "strip outputs before committing"
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "the first code cell, and only it, is tagged parameters"
    params = pm.inspect_notebook(str(NOTEBOOKS / name))
    assert set(params) == set(NOTEBOOK_KEYS[name])
    for p in params.values():
        assert p["inferred_type_name"] != "None" and p["help"], f"{p['name']} needs a type and a comment"


def _make_data(folder: Path) -> Path:
    """Four labelled face files and every awkward case of media_factory in one flat folder."""
    mf.face_video(folder / "real one.mp4", n_frames=10)
    mf.face_video(folder / "fake1.mp4", n_frames=10, size=(400, 300))
    Image.fromarray(mf.face_image()).save(folder / "real2.jpg")
    Image.fromarray(mf.face_image((300, 300))).save(folder / "fake2.png")
    (folder / "labels.csv").write_text("filename,label,source\nreal one.mp4,0,a\nfake1.mp4,1,a\nreal2.jpg,0,b\n"
                                       "fake2.png,1,b\n", encoding="utf-8")
    mf.make_bad_media(folder)
    return folder


@pytest.mark.slow
def test_preprocess_then_infer_end_to_end(workdir, tiny_vit, tmp_path_factory):
    data = _make_data(tmp_path_factory.mktemp("data"))
    common = {"data_dir": str(data), "model": str(tiny_vit), "frames": 5, "workers": 1,
              "cache_dir": str(workdir / "crops")}
    pm.execute_notebook(str(NOTEBOOKS / "preprocess.ipynb"), str(workdir / "pre.ipynb"), parameters=common,
                        progress_bar=False)
    pm.execute_notebook(str(NOTEBOOKS / "infer.ipynb"), str(workdir / "first.ipynb"), progress_bar=False,
                        parameters={**common, "labels": str(data / "labels.csv"), "exp": "first", "batch_size": 7})
    first = json.loads((workdir / "submissions" / "first" / "run.json").read_text())
    assert first["timings"]["cache_misses"] == 0, "infer must reuse what preprocess cached"

    out = workdir / "submissions" / "first"
    files = [p.name for p in media.list_media(data)]
    sub = pd.read_csv(out / "submission.csv", keep_default_na=False)
    assert sorted(sub["filename"]) == sorted(files) and set(sub["label"]) <= {0, 1}
    preds = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    broken = preds.set_index("filename").loc[["empty.mp4", "text.mp4", "truncated_moov_at_end.mp4", "empty.jpg",
                                              "noface.mp4", "noface.jpg"]]
    assert (broken["fallback"] == "fallback_prob").all() and (broken["reason"] != "").all()
    assert first["counts"]["fallback_files"] == int((preds["fallback"] != "").sum()) >= 6
    assert first["metrics"]["n"] == 4 and set(first["metrics"]["per_source"]) == {"a", "b"}
    assert first["model"]["fake_indices"] == [1] and first["git"] and first["versions"]["torch"]
    for name in ("prob_hist.png", "crops.png"):
        assert (out / name).stat().st_size > 1000


@pytest.mark.slow
def test_rerun_with_other_tta_does_no_decoding_or_detection(workdir, tiny_vit, tmp_path_factory):
    """Run by papermill's command line, as the README shows: the executed notebook lands in the run folder too."""
    data = _make_data(tmp_path_factory.mktemp("data2"))
    base = ["-p", "data_dir", str(data), "-p", "model", str(tiny_vit), "-p", "frames", "4",
            "-p", "cache_dir", str(workdir / "crops2"), "-p", "workers", "0"]
    for exp, view in (("cold", "none"), ("warm", "flip")):
        cmd = [sys.executable, "-m", "papermill", "--log-level", "WARNING", str(NOTEBOOKS / "infer.ipynb"),
               str(workdir / f"{exp}.ipynb"), *base, "-p", "tta", view, "-p", "exp", exp]
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        assert done.returncode == 0, done.stderr[-3000:]
    cold = json.loads((workdir / "submissions" / "cold" / "run.json").read_text())
    warm = json.loads((workdir / "submissions" / "warm" / "run.json").read_text())
    assert cold["timings"]["cache_misses"] > 0 and cold["timings"]["detect_s"] > 0
    assert warm["timings"]["cache_hits"] == len(media.list_media(data))
    assert warm["timings"]["decode_s"] == 0 and warm["timings"]["detect_s"] == 0
    executed = json.loads((workdir / "submissions" / "warm" / "infer.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"])
    table = (workdir / "EXPERIMENTS.md").read_text()
    assert "| cold |" in table and "| warm |" in table and "| flip |" in table


@pytest.mark.slow
def test_wrong_parameter_stops_the_notebook_at_once(workdir, tiny_vit, tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="tta='flop'.*valid values: none, flip"):
        pm.execute_notebook(str(NOTEBOOKS / "infer.ipynb"), str(tmp_path / "bad.ipynb"), progress_bar=False,
                            parameters={"data_dir": str(tmp_path), "model": str(tiny_vit), "tta": "flop"})
    assert not (workdir / "submissions" / "bad").exists()
