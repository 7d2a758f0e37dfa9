"""Demo detector: features + logistic regression saved as a HF model that reproduces the regression exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from transformers import AutoModelForImageClassification

from lib import backbones

from lib.training import demo_model
from lib.errors import ParameterError

SIZE = 64


def _crops(n: int = 36, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth colour gradients; the fakes carry a blended, sharpened square in the middle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    crops, labels = [], np.arange(n) % 2
    for label in labels:
        slope_x, slope_y = rng.uniform(-50, 50, 3) * xx[..., None], rng.uniform(-50, 50, 3) * yy[..., None]
        base = rng.uniform(60, 190, 3) + slope_x + slope_y
        img = base + rng.normal(0, 4, base.shape)
        if label:
            img[20:44, 20:44] += rng.normal(0, 25, (24, 24, 3)) + rng.uniform(-30, 30, 3)
        crops.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(crops), labels


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, np.ndarray, np.ndarray]:
    crops, labels = _crops()
    out = tmp_path_factory.mktemp("demo") / "demo-detector"
    info = demo_model.fit_demo_model(crops, labels, out, seed=3, C=0.5)
    return out, info, crops, labels


def test_extract_features_shape_and_dtype() -> None:
    model = backbones.create("efficientnet_lite0", demo_model.ID2LABEL)[0]
    crops, _ = _crops(5)
    feats = demo_model.extract_features(model, crops, batch_size=2)
    assert feats.shape == (5, 1280) and feats.dtype == np.float32
    assert demo_model.extract_features(model, crops[:0]).shape == (0, 1280)


def test_fit_writes_a_loadable_model(fitted: tuple[Path, dict, np.ndarray, np.ndarray]) -> None:
    out, info, crops, labels = fitted
    expected_files = {"config.json", "model.safetensors", "preprocessor_config.json", "fit.json"}
    assert {p.name for p in out.iterdir()} >= expected_files
    assert json.loads((out / "fit.json").read_text()) == info
    assert info["n_crops"] == len(crops) and info["class_balance"] == {"real": 18, "fake": 18}
    assert info["seed"] == 3 and info["train_accuracy"] >= 0.9
    model, loading = AutoModelForImageClassification.from_pretrained(out, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"] and not loading["mismatched_keys"]
    assert model.config.id2label == {0: "real", 1: "fake"}
    assert json.loads((out / "preprocessor_config.json").read_text())["size"] == {"height": SIZE, "width": SIZE}


def test_saved_model_equals_logistic_regression(fitted: tuple[Path, dict, np.ndarray, np.ndarray]) -> None:
    out, _, crops, labels = fitted
    feats = demo_model.extract_features(backbones.create("efficientnet_lite0", demo_model.ID2LABEL)[0], crops).astype(np.float64)
    scaler = StandardScaler().fit(feats)
    expected = LogisticRegression(C=0.5, max_iter=5000).fit(scaler.transform(feats), labels)
    expected = expected.predict_proba(scaler.transform(feats))[:, 1]
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(backbones.IMAGENET_MEAN), torch.tensor(backbones.IMAGENET_STD)
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.inference_mode():
        logits = model(pixel_values=x).logits
    assert torch.all(logits[:, 0] == 0)
    np.testing.assert_allclose(logits.softmax(-1)[:, 1].numpy(), expected, atol=1e-4)


def test_rejects_bad_inputs(tmp_path: Path) -> None:
    crops, labels = _crops(6)
    with pytest.raises(ParameterError, match="labels"):
        demo_model.fit_demo_model(crops, np.zeros(6, int), tmp_path)
    with pytest.raises(ParameterError, match="labels"):
        demo_model.fit_demo_model(crops, labels[:5], tmp_path)
    with pytest.raises(ParameterError, match="crops"):
        demo_model.fit_demo_model(crops.astype(np.float32), labels, tmp_path)


def test_main_fits_from_a_labelled_folder_through_the_pipeline(tmp_path: Path) -> None:
    """The command line reads media through the kit's crop pipeline (real detection on synthetic faces)."""
    from PIL import Image

    import media_factory as mf

    data = tmp_path / "fit"
    data.mkdir()
    rows = ["filename,label"]
    for i in range(6):
        face = mf.face_image((200 + 20 * i, 220))
        if i % 2:  # a crude "manipulation": the face region re-coloured
            face[60:160, 60:160] = np.clip(face[60:160, 60:160] * [1.2, 0.8, 1.0], 0, 255).astype(np.uint8)
        Image.fromarray(face).save(data / f"f{i}.png")
        rows.append(f"f{i}.png,{i % 2}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    info = demo_model.main(["--data", str(data), "--out", str(tmp_path / "model"), "--frames", "2", "--workers", "0"])
    assert info["n_files"] == 6 and info["n_crops"] == 6 and (tmp_path / "model" / "fit.json").is_file()
