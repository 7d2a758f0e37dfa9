"""The trace-signal detector (issue 20): its per-crop signals, the strategy that fits it, the file head inference uses
(a file scored from all its crops at once), the checks that keep training and inference crops alike, and the rank
threshold rule ``top:q``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import media_factory as mf
from lib import backbones, metrics, models, pipeline, predict, trace_signals
from lib.errors import ParameterError
from lib.options import InferOptions, PrepSettings
from lib.training import data as traindata
from lib.training import export, loop, strategies
from lib.training.export import ID2LABEL
from lib.training.traces import file_features

SIZE = 64


def _face(rng: np.random.Generator, blur_face: bool = False, tint: float = 1.0) -> np.ndarray:
    """A 64-px crop with a noisy textured surround and a centred face square (margin 1.8)."""
    img = rng.integers(60, 200, (SIZE, SIZE, 3)).astype(np.float64)
    a, b = int((SIZE - SIZE / 1.8) / 2), int((SIZE + SIZE / 1.8) / 2)
    face = img[a:b, a:b]
    if blur_face:
        import cv2

        face = cv2.GaussianBlur(face, (0, 0), 2.0)
    img[a:b, a:b] = face * [tint, 1.0, 1.0]
    return np.clip(img, 0, 255).astype(np.uint8)


def _signals(crops: np.ndarray) -> np.ndarray:
    return trace_signals.signals(torch.from_numpy(crops).permute(0, 3, 1, 2).float(), 1.8).numpy()


def test_signals_measure_the_face_against_its_surround_and_do_not_depend_on_the_batch():
    rng = np.random.default_rng(0)
    sharp, blurred, tinted = _face(rng), _face(np.random.default_rng(0), blur_face=True), \
        _face(np.random.default_rng(0), tint=1.3)
    s = _signals(np.stack([sharp, blurred, tinted]))
    names = list(trace_signals.SIGNALS)
    assert s.shape == (3, 21) and np.isfinite(s).all()
    assert s[1, names.index("lap_ratio")] < s[0, names.index("lap_ratio")] - 1, "a blurred face is duller than its surround"
    assert s[1, names.index("noise_ratio")] < s[0, names.index("noise_ratio")]
    assert s[2, names.index("lab_da")] > s[0, names.index("lab_da")] + 5, "a reddened face differs from its surround"
    np.testing.assert_allclose(_signals(blurred[None])[0], s[1], rtol=1e-5, atol=1e-5)


def _videos(n_files: int = 12, crops_per_file: int = 3, seed: int = 0) -> traindata.CropSet:
    """Files of several crops; fakes have blurred, reddened faces in some of their frames (a flickering forgery)."""
    rng = np.random.default_rng(seed)
    crops, index, rows = [], [], []
    for f in range(n_files):
        label = f % 2
        for k in range(crops_per_file):
            crops.append(_face(rng, blur_face=bool(label and k % 2 == 0), tint=1.2 if label and k == 1 else 1.0))
            index.append(f)
        rows.append({"filename": f"v{f}.mp4", "label": label, "kind": "lipsync" if label else "real-video",
                     "source": "s", "origin": f"o{f}", "media": "video", "dataset": "d"})
    return traindata.CropSet(np.stack(crops), np.array(index), pd.DataFrame(rows))


def _fitted(tmp_path=None):
    strategy = strategies.make("trace_signals", {"trace_c": 1.0})
    model, data = backbones.create("efficientnet_lite0", ID2LABEL)
    data = {**data, "size": SIZE}
    strategy.configure(PrepSettings(face_margin=1.8, size=SIZE), data)
    model = strategy.prepare(model)
    model, history = strategy.fit(model, traindata.TrainSamples(_videos(), [], seed=1), _videos(6, seed=1), data,
                                  loop.Loop(epochs=1, device="cpu"), None, None)
    return strategy, model, data, history


def test_trace_signals_strategy_scores_a_file_from_the_mean_and_spread_of_its_crops(tmp_path):
    strategy, model, data, history = _fitted()
    assert loop.counts(model)["trainable"] == 2 * 42 + 2 and history.loc[0, "features"] == 42
    assert history.loc[0, "val_auc"] > 0.9
    held = _videos(6, seed=2)
    crop_probs, files = strategy.score(model, held, data, "cpu")
    signals = _signals(held.crops)
    feats = file_features(signals.astype(np.float64), held.file_index, len(held.files))
    assert feats.shape == (6, 42) and (feats[:, 21:] > 0).any()  # the spread over each file's frames
    w, b = model.classifier.weight.detach().double().numpy(), model.classifier.bias.detach().double().numpy()
    expected = 1 / (1 + np.exp(-(feats @ (w[1] - w[0]) + b[1] - b[0])))
    np.testing.assert_allclose(files["prob_fake"], expected, rtol=1e-4)
    assert len(crop_probs) == len(held.crops)

    out = export.save(model, tmp_path / "traces", data, {"exp": "t", "threshold": 0.5, "aggregate": "file_head"})
    assert export.check_saved(out, model, held.crops[:4], data) < 1e-5
    lm = models.load_model(str(out), device="cpu")
    assert lm.info["architecture"] == "KitTracesForImageClassification" and models.has_file_head(lm)
    first = held.file_index == 0
    p_file, p_frames = models.file_scores(lm, models.crop_outputs(lm, held.crops[first]))
    assert p_file == pytest.approx(files["prob_fake"][0], rel=1e-4) and len(p_frames) == first.sum()


def test_trace_signals_need_a_face_margin_with_a_surround():
    strategy = strategies.make("trace_signals", {})
    with pytest.raises(ParameterError, match="face_margin"):
        strategy.configure(PrepSettings(face_margin=1.1, size=SIZE), backbones.imagenet_data(SIZE))


def test_file_predictions_take_the_file_heads_score_when_there_is_one():
    records = [pipeline.FileRecord("a.mp4", "video", frames_read=2, faces_found=2, n_crops=2, key="k")]
    probs = pipeline.FrameProbs({0: np.array([0.1, 0.2])}, {0: 0.9})
    table = pipeline.file_predictions(records, probs, "file_head", 0.5)
    assert table["prob_fake"].tolist() == [0.9] and table["label"].tolist() == [1]
    with pytest.raises(ValueError, match="file head"):
        pipeline.file_predictions(records, pipeline.FrameProbs({0: np.array([0.1, 0.2])}), "file_head", 0.5)


@pytest.fixture(scope="module")
def traces_model(tmp_path_factory) -> str:
    _, model, data, _ = _fitted()
    out = tmp_path_factory.mktemp("traces") / "model"
    export.save(model, out, {**data, "size": 224}, {"exp": "t", "threshold": 0.5, "aggregate": "file_head"})
    return str(out)


def _folder(folder):
    folder.mkdir()
    mf.face_video(folder / "a.mp4", n_frames=6)
    Image.fromarray(mf.face_image()).save(folder / "b.jpg")
    Image.fromarray(mf.face_image((300, 260))).save(folder / "c.png")
    mf.face_video(folder / "d.mp4", n_frames=6, size=(400, 300))
    return folder


def test_infer_scores_files_with_the_file_head_and_checks_its_settings(tmp_path, traces_model):
    data = _folder(tmp_path / "data")
    lm = models.load_model(traces_model, device="cpu")
    opts = InferOptions(frames=3, face_margin=1.8, aggregate="file_head", threshold=0.5)
    pred = predict.predict_folder(data, lm, opts, tmp_path / "out", tmp_path / "c", workers=0, progress=False)
    records = pred.records
    cached = [pipeline.cache.load_crops(tmp_path / "c", r) for r in records]
    for row, crops in zip(pred.table.itertuples(), cached):
        expected = models.file_scores(lm, models.crop_outputs(lm, crops))[0]
        assert row.prob_fake == pytest.approx(expected, rel=1e-5), row.filename
    assert len(pd.read_csv(tmp_path / "out" / "submission.csv")) == 4
    with pytest.raises(ParameterError, match="aggregate"):
        predict.predict_files([data / "b.jpg"], lm, InferOptions(frames=3, face_margin=1.8), workers=0)
    with pytest.raises(ParameterError, match="face_margin"):
        predict.predict_files([data / "b.jpg"], lm, InferOptions(frames=3, aggregate="file_head"), workers=0)


def test_rank_rule_calls_the_most_suspicious_share_fake(tmp_path, tiny_vit):
    data = _folder(tmp_path / "data")
    lm = models.load_model(str(tiny_vit), device="cpu")
    pred = predict.predict_folder(data, lm, InferOptions(frames=3, threshold="top:0.5"), tmp_path / "out",
                                  tmp_path / "c", workers=0, progress=False)
    p = pred.table["prob_fake"].to_numpy()
    assert pred.table["label"].sum() == 2 and (p[pred.table["label"] == 1].min() > p[pred.table["label"] == 0].max())
    assert pred.threshold == pytest.approx(metrics.rank_threshold(p, 0.5))
    assert metrics.rank_threshold(np.array([0.9, 0.1, 0.5, 0.3]), 0.25) == pytest.approx(0.7)
    assert metrics.rank_threshold(np.array([0.2, 0.2]), 0.5) == 0.2  # a tie at the cut goes one way
    for bad in ("top:0", "top:1.5", "top:half", "bottom:0.5"):
        with pytest.raises(ParameterError, match="threshold"):
            InferOptions(threshold=bad)


def test_a_trace_signal_detector_with_the_rank_rule_bundles_and_checks(tmp_path, traces_model, monkeypatch):
    """The server road: the bundle ships lib/trace_signals.py, scores by file head with the rank rule, and its check
    reproduces the kit's own infer."""
    import json

    from lib import bundle as bundles

    data = _folder(tmp_path / "data")
    monkeypatch.setenv(bundles.KEY_ENV, "aif-test-key-0123456789")
    params = {"model": traces_model, "frames": 3, "face_margin": 1.8, "aggregate": "file_head",
              "threshold": "top:0.5", "workers": 0}
    (tmp_path / "det.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in params.items()))
    bundle = bundles.build("det", params_file=str(tmp_path / "det.yaml"), out_root=tmp_path / "kernels")
    assert (bundle / "lib" / "trace_signals.py").is_file() and not (bundle / "lib" / "training").exists()
    report = bundles.check("det", data=str(data), n_files=100, out_root=tmp_path / "kernels")
    assert report["verdict"] == "PASS", report["reasons"]
    assert report["equivalence"]["files"] == 4 and report["equivalence"]["max_abs_diff"] <= 1e-6


@pytest.mark.slow
def test_train_notebook_fits_trace_signals_held_out_by_folder_and_infer_uses_it(tmp_path):
    """train.ipynb with the detector's recipe on two tiny data folders, each held out whole, then infer.ipynb with
    the detector's inference settings and the rank rule."""
    import json
    import os

    import papermill as pm

    from lib.paths import NOTEBOOKS
    from test_train import _train_data

    folders = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        folders.append(str(_train_data(tmp_path / name)))
    work, old = tmp_path / "work", os.environ["KIT_WORKDIR"]
    os.environ["KIT_WORKDIR"] = str(work)
    try:
        pm.execute_notebook(str(NOTEBOOKS / "train.ipynb"), str(tmp_path / "train.ipynb"), progress_bar=False,
                            parameters={"data": folders, "frames": 3, "face_margin": 1.8, "workers": 0,
                                        "cache_dir": str(work / "crops"), "strategy": "trace_signals",
                                        "validate": "leave_one_out", "leave_out_by": "folder", "loo_min_files": 2,
                                        "exp": "tr1", "out": str(tmp_path / "model")})
        rec = json.loads((work / "submissions" / "tr1" / "run.json").read_text())
        m = rec["metrics"]
        assert [g["held_out"] for g in rec["leave_one_out"]["by_group"]] == ["one", "two"] and m["loo_by"] == "folder"
        assert m["loo_mean_auc_low"] <= m["loo_mean_auc"] <= m["loo_mean_auc_high"]
        assert [r["rule"] for r in m["loo_rules"]] == ["max_f1", "reals:0.9", "top:0.5"]
        assert (work / "submissions" / "tr1" / "loo_threshold_rules.csv").is_file()
        assert models.read_training(tmp_path / "model")["aggregate"] == "file_head"
        pm.execute_notebook(str(NOTEBOOKS / "infer.ipynb"), str(tmp_path / "infer.ipynb"), progress_bar=False,
                            parameters={"data_dir": folders[0], "model": str(tmp_path / "model"), "frames": 3,
                                        "face_margin": 1.8, "aggregate": "file_head", "threshold": "top:0.5",
                                        "workers": 0, "exp": "inf1", "cache_dir": str(work / "crops")})
        sub = pd.read_csv(work / "submissions" / "inf1" / "submission.csv")
        assert len(sub) == 11 and sub["label"].sum() == round(0.5 * 11)
    finally:
        os.environ["KIT_WORKDIR"] = old
