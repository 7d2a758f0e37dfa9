from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lib import backbones, devices, models
from lib.errors import ModelLoadError, ParameterError


@pytest.mark.parametrize("id2label,expected", [
    ({0: "Realism", 1: "Deepfake"}, [1]),
    ({0: "Fake", 1: "Real"}, [0]),
    ({0: "real", 1: "faceswap", 2: "gan"}, [1, 2]),  # one real class: every other class is fake
    ({0: "LABEL_0", 1: "ai_generated"}, [1]),
])
def test_fake_indices_from_id2label(id2label, expected):
    assert models.fake_indices(id2label) == expected


def test_no_fake_label_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="looks like 'fake'"):
        models.fake_indices({0: "LABEL_0", 1: "LABEL_1"})


def test_load_tiny_vit_and_reversed_labels_agree(tiny_vit, tiny_vit_reversed):
    lm = models.load_model(str(tiny_vit), device="cpu")
    assert lm.fake_indices == [1] and lm.size == 32 and lm.data["mean"] == (0.5, 0.5, 0.5)
    rev = models.load_model(str(tiny_vit_reversed), device="cpu")
    assert rev.fake_indices == [0]
    crops = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    p = models.predict_crops(lm, crops)
    assert p.shape == (5,) and np.all((p >= 0) & (p <= 1))
    logits = lm.module(pixel_values=models.model_input(crops, lm)).logits.softmax(-1)[:, 1].detach().numpy()
    np.testing.assert_allclose(p, logits, atol=1e-6)


def test_pixels_match_the_processor_arithmetic(tiny_vit):
    lm = models.load_model(str(tiny_vit), device="cpu")
    crops = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    expected = (crops.astype(np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(models.model_input(crops, lm).permute(0, 2, 3, 1).numpy(), expected, atol=1e-6)


def test_missing_head_weights_are_an_error(tiny_vit, tmp_path):
    """A checkpoint whose classifier did not load must not run with a random head."""
    from safetensors.torch import load_file, save_file

    broken = Path(shutil.copytree(tiny_vit, tmp_path / "broken"))
    weights = load_file(broken / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier")}, broken / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="missing_keys.*classifier"):
        models.load_model(str(broken), device="cpu")


def test_unexpected_keys_are_an_error(tiny_vit, tmp_path):
    from safetensors.torch import load_file, save_file

    extra = Path(shutil.copytree(tiny_vit, tmp_path / "extra"))
    weights = load_file(extra / "model.safetensors")
    weights["vit.some_leftover.weight"] = torch.zeros(3)
    save_file(weights, extra / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="unexpected_keys"):
        models.load_model(str(extra), device="cpu")


def test_model_that_cannot_be_loaded_names_the_parameter(tmp_path):
    with pytest.raises(ParameterError, match="model='not a model'"):
        models.load_model("not a model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="model="):
        models.load_model(str(tmp_path / "empty"))


def test_hub_id_offline_fails_with_the_parameter_name():
    with pytest.raises(ParameterError, match=r"model='someone/not-cached-model'.*offline"):
        models.load_model("someone/not-cached-model")


def test_device_and_precision_checked():
    with pytest.raises(ParameterError, match="device='gpu'.*auto, cpu, cuda"):
        devices.resolve_device("gpu")
    assert devices.resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="device='cuda'"):
            devices.resolve_device("cuda")


def test_data_config_order(tiny_vit):
    cfg = backbones.resolve_data_config(str(tiny_vit))
    assert cfg["size"] == 32 and cfg["std"] == (0.5, 0.5, 0.5) and cfg["rescale"] == pytest.approx(1 / 255)
    assert backbones.resolve_data_config(str(tiny_vit), size=64, mean=(0, 0, 0))["size"] == 64
    cfg_json = json.loads((tiny_vit / "preprocessor_config.json").read_text())
    assert cfg_json["image_mean"] == [0.5, 0.5, 0.5]


def test_tensor_preprocessing_matches_the_hf_processor(tiny_vit):
    """The hot path normalises on tensors; the model's own processor must give the same numbers (within 1e-3)."""
    from PIL import Image
    from transformers import AutoImageProcessor

    lm = models.load_model(str(tiny_vit), device="cpu")
    crops = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    try:
        proc = AutoImageProcessor.from_pretrained(str(tiny_vit), use_fast=False)
    except (ImportError, ValueError):
        proc = AutoImageProcessor.from_pretrained(str(tiny_vit))
    ref = proc(images=[Image.fromarray(c) for c in crops], return_tensors="pt")["pixel_values"]
    np.testing.assert_allclose(models.model_input(crops, lm).numpy(), ref.numpy(), atol=1e-3)


def test_cpu_precisions_stay_close_to_fp32(tiny_vit):
    crops = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    ref = models.predict_crops(models.load_model(str(tiny_vit), "cpu", "fp32"), crops)
    int8 = models.load_model(str(tiny_vit), "cpu", "int8")
    assert int8.info["precision_used"] == "int8"
    assert any(".quantized.dynamic" in type(m).__module__ for m in int8.module.modules()), "Linear layers quantised"
    bf16 = models.load_model(str(tiny_vit), "cpu", "bf16")
    assert bf16.amp_dtype == torch.bfloat16
    for lm in (int8, bf16):
        assert np.abs(models.predict_crops(lm, crops) - ref).max() < 0.05
    with pytest.warns(UserWarning, match="fp16.*using fp32"):
        fp16 = models.load_model(str(tiny_vit), "cpu", "fp16")
    assert fp16.info["precision_used"] == "fp32" and np.array_equal(models.predict_crops(fp16, crops), ref)
    with pytest.raises(ParameterError, match="precision='fp64'"):
        devices.effective_precision(torch.device("cpu"), "fp64")
