"""eda.ipynb and ensemble.ipynb through papermill on tiny synthetic data, and the ensemble's fitting."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import papermill as pm
import pytest
from PIL import Image

import media_factory as mf
from lib import experiments, metrics
from lib.review import eda, ensemble
from lib.errors import ParameterError
from lib.paths import NOTEBOOKS


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """The kernel writes its runs into a temporary KIT_WORKDIR, never into the project."""
    monkeypatch.setenv("KIT_WORKDIR", str(tmp_path / "kit"))
    return tmp_path / "kit"


@pytest.mark.parametrize("name,keys", [("eda.ipynb", eda.EDA.keys), ("ensemble.ipynb", ensemble.ENSEMBLE.keys)])
def test_notebook_committed_clean_with_documented_parameters(name, keys):
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])
    params = pm.inspect_notebook(str(NOTEBOOKS / name))
    assert set(params) == set(keys) and all(p["help"] and p["inferred_type_name"] != "None" for p in params.values())


@pytest.mark.slow
def test_eda_notebook_on_synthetic_media(workdir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    mf.face_video(data / "real.mp4", n_frames=12)
    mf.face_video(data / "fake.mp4", n_frames=12, size=(240, 320))
    Image.fromarray(mf.face_image()).save(data / "a.jpg")
    Image.fromarray(mf.noface_image()).save(data / "cup.png")
    (data / "broken.mp4").write_bytes(b"not a video")
    (data / "labels.csv").write_text("filename,label\nreal.mp4,0\nfake.mp4,1\na.jpg,0\ncup.png,1\nbroken.mp4,0\n")
    monkeypatch.setenv("KIT_OUTPUT_NOTEBOOK", str(tmp_path / "eda.ipynb"))
    pm.execute_notebook(str(NOTEBOOKS / "eda.ipynb"), str(tmp_path / "eda.ipynb"), progress_bar=False,
                        parameters={"data_dir": str(data), "labels": str(data / "labels.csv"), "sample": 4,
                                    "frames": 3, "exp": "eda-test"})
    out = workdir / "submissions" / "eda-test"
    rec = json.loads((out / "run.json").read_text())
    assert rec["kind"] == "eda" and rec["counts"]["unreadable"] == 1 and rec["faces"]["files"] == 4
    assert 0 < rec["faces"]["detection_rate"] < 1, "the cup has no face, the others do"
    inv = pd.read_csv(out / "inventory.csv").set_index("filename")
    assert inv.loc["fake.mp4", "orientation"] == "portrait" and inv.loc["fake.mp4", "fps"] == 15
    assert inv.loc["broken.mp4", "reason"]
    checks = pd.read_csv(out / "checks.csv").set_index("check")
    assert not checks.loc["unreadable files", "ok"] and checks.loc["file types", "ok"]
    for name in ("media.png", "faces.png", "face_grid.png", "eda.ipynb"):
        assert (out / name).stat().st_size > 5000


def _fake_run(root, exp, filenames, probs, model="m", threshold=0.5, data_dir=""):
    """A recorded run with a predictions.csv, as infer.ipynb leaves it."""
    run = experiments.Run("infer", exp, {"model": model, "data_dir": data_dir, "threshold": threshold}, root=root)
    pd.DataFrame({"filename": filenames, "prob_fake": probs, "label": (probs >= threshold).astype(int)}
                 ).to_csv(run.dir / "predictions.csv", index=False)
    run.finish(metrics=None)


def _synthetic(n=120, seed=0):
    """Labels, a good run (clean signal), a weaker one (noisy) and a useless one (pure noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.18, n), 0, 1)
    weak = np.clip(0.5 + (y - 0.5) * 0.2 + rng.normal(0, 0.25, n), 0, 1)
    noise = rng.uniform(0, 1, n)
    return y, np.column_stack([good, weak, noise])


def test_fitted_weights_favour_the_better_run_and_the_score_is_cross_validated():
    y, probs = _synthetic()
    votes = (probs >= 0.5).astype(int)
    f = ensemble.fit(probs, votes, y, "weighted", None, 0.5, tune=False)
    assert f.weights[0] > f.weights[1] and f.weights[0] > f.weights[2] and f.weights[0] >= 0.5
    cv = ensemble.cross_validate(probs, votes, y, "weighted", None, 0.5, False, folds=4)
    in_sample = ensemble.macro_f1(y, (ensemble.combine(probs, votes, "weighted", f.weights) >= 0.5).astype(int))
    assert cv["folds"] == 4 and len(cv["fits"]) == 4 and cv["macro_f1"] <= in_sample + 1e-9
    assert cv["macro_f1"] > ensemble.macro_f1(y, votes[:, 2]) + 0.2


def test_threshold_tuning_finds_a_shifted_threshold():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    scores = np.clip(0.2 + 0.3 * y + rng.normal(0, 0.05, 200), 0, 1)  # classes split at about 0.35, not 0.5
    thr, f1 = metrics.tune_threshold(scores, y)
    assert 0.25 < thr < 0.45 and f1 > 0.95


@pytest.mark.slow
def test_ensemble_notebook_writes_a_run_and_refuses_mixed_models(workdir, tmp_path, monkeypatch):
    y, probs = _synthetic(60)
    names = [f"f{i:03d}.jpg" for i in range(60)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"filename": names, "label": y}).to_csv(labels, index=False)
    root = workdir / "submissions"
    for j, exp in enumerate(("good", "weak", "noise")):
        _fake_run(root, exp, names, probs[:, j])
    _fake_run(root, "other", names, probs[:, 1], model="other-model")
    nb = str(NOTEBOOKS / "ensemble.ipynb")
    monkeypatch.setenv("KIT_OUTPUT_NOTEBOOK", str(tmp_path / "e1.ipynb"))  # where save_notebook finds the executed one
    pm.execute_notebook(nb, str(tmp_path / "e1.ipynb"), progress_bar=False, parameters={
        "runs": "good,weak,noise", "method": "weighted", "labels": str(labels), "tune_threshold": True, "folds": 3,
        "exp": "ens"})
    rec = experiments.read_record(root / "ens")
    assert rec["kind"] == "ensemble" and [i["exp"] for i in rec["inputs"]] == ["good", "weak", "noise"]
    assert rec["submission_written"] and (root / "ens" / "submission.csv").is_file()
    assert rec["metrics"]["macro_f1_is"] == "3-fold cross-validated"
    assert rec["metrics"]["macro_f1"] != rec["metrics"]["in_sample_macro_f1"] or rec["metrics"]["cv_fits"]
    assert rec["weights"][0] == max(rec["weights"])
    for name in ("correlation.png", "local_vs_public.png", "ensemble.ipynb", "predictions.csv"):
        assert (root / "ens" / name).is_file()
    assert "| ens |" in (workdir / "EXPERIMENTS.md").read_text()

    pm.execute_notebook(nb, str(tmp_path / "e2.ipynb"), progress_bar=False, parameters={
        "runs": "good,other", "method": "mean", "exp": "mixed"})
    rec = experiments.read_record(root / "mixed")
    assert not rec["submission_written"] and not (root / "mixed" / "submission.csv").exists()
    assert "forbidden" in rec["rule"]
    executed = (tmp_path / "e2.ipynb").read_text()
    assert "NO SUBMISSION WRITTEN" in executed and "ensemble of different models is forbidden" in executed


def test_ensemble_parameters_are_checked_before_any_work(tmp_path):
    base = dict(runs="a,b", method="mean", weights="", threshold=0.5, tune_threshold=False, labels="", folds=5,
                seed=0, allow_model_ensemble=False, exp="x")
    with pytest.raises(ParameterError, match="method='avg'.*mean, weighted, rank, vote"):
        ensemble.ENSEMBLE.check({**base, "method": "avg"})
    with pytest.raises(ParameterError, match="runs='a'"):
        ensemble.ENSEMBLE.check({**base, "runs": "a"})
    with pytest.raises(ParameterError, match="weights=''.*needs labels"):
        ensemble.ENSEMBLE.check({**base, "method": "weighted"})
    with pytest.raises(ParameterError, match="weights='1'"):
        ensemble.ENSEMBLE.check({**base, "method": "weighted", "weights": "1"})


def test_eda_on_the_real_dev_set(shared_dev):
    from lib import media, metrics
    from lib.review import eda

    files = media.list_media(shared_dev / "media")
    table = eda.inventory(files, metrics.read_labels(shared_dev / "labels.csv"), progress=False)
    assert table["readable"].all() and table["label"].notna().all()
    picked = [f for f in files if f.suffix in (".mp4", ".jpg")][:2]
    survey, examples = eda.face_survey(picked, n_frames=2, progress=False)
    assert eda.face_summary(survey)["detection_rate"] > 0.5 and len(examples) == 2
