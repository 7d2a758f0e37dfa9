"""EfficientNet-Lite0 backbone: ImageNet weights reproduce the package's prediction; the HF wrapper round-trips."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2
import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from lib import backbones


@pytest.fixture(scope="module")
def imagenet_model() -> backbones.EfficientNetLite0:
    return backbones.load_imagenet()


def test_module_keys_match_checkpoint_exactly() -> None:
    state = backbones.imagenet_state_dict()
    mine = backbones.EfficientNetLite0().state_dict()
    assert list(mine) == list(state)
    assert all(mine[k].shape == state[k].shape for k in state)
    assert sum(1 for k in state if k.startswith("_blocks.") and k.endswith("_depthwise_conv.weight")) == 16


def test_chelsea_is_class_285(imagenet_model: backbones.EfficientNetLite0) -> None:
    import skimage.data

    img = cv2.resize(skimage.data.chelsea(), (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    x = (img - np.array(backbones.IMAGENET_MEAN, np.float32)) / np.array(backbones.IMAGENET_STD, np.float32)
    with torch.inference_mode():
        prob = imagenet_model(torch.from_numpy(x.transpose(2, 0, 1))[None]).softmax(-1)[0]
    assert int(prob.argmax()) == 285
    assert float(prob[285]) == pytest.approx(0.772, abs=0.01)


def test_same_padding_sizes() -> None:
    model = backbones.EfficientNetLite0(num_classes=0).eval()
    with torch.inference_mode():
        for size in (64, 97, 224):
            assert model(torch.zeros(1, 3, size, size)).shape == (1, backbones.FEATURE_DIM)


def test_from_imagenet_backbone_holds_imagenet_weights() -> None:
    model = backbones.from_imagenet(num_labels=3)
    state = backbones.imagenet_state_dict()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model.classifier.out_features == 3
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def test_forward_logits_loss_and_features() -> None:
    model = backbones.from_imagenet(id2label={0: "real", 1: "fake"})
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        out = model(pixel_values=x, labels=torch.tensor([0, 1]))
        feats = model.features(x)
        head = model.classifier(feats)
    assert out.logits.shape == (2, 2)
    assert out.loss is not None and torch.isfinite(out.loss)
    assert feats.shape == (2, backbones.FEATURE_DIM)
    assert torch.allclose(head, out.logits, atol=1e-6)


def test_save_and_auto_load_round_trip(tmp_path) -> None:
    model = backbones.from_imagenet(id2label={0: "real", 1: "fake"})
    model.save_pretrained(tmp_path)
    backbones.write_preprocessor_config(tmp_path)
    loaded, info = AutoModelForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, backbones.KitEfficientNetLiteForImageClassification)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert not info["error_msgs"]
    assert loaded.config.id2label == {0: "real", 1: "fake"}
    assert loaded.config.label2id == {"real": 0, "fake": 1}
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        assert torch.equal(model.eval()(pixel_values=x).logits, loaded.eval()(pixel_values=x).logits)


def test_preprocessor_config(tmp_path) -> None:
    path = backbones.write_preprocessor_config(tmp_path, size=160)
    config = json.loads(path.read_text())
    assert config == {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": 160, "width": 160},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 0.00392156862745098,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    }
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    pixels = processor(images=np.zeros((200, 120, 3), np.uint8), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 160, 160)


def test_registration_is_idempotent() -> None:
    backbones._register()
    backbones._register()
    config = AutoConfig.for_model(backbones.MODEL_TYPE, num_labels=2)
    assert isinstance(config, backbones.KitEfficientNetLiteConfig)
    model = AutoModelForImageClassification.from_config(config)
    assert isinstance(model, backbones.KitEfficientNetLiteForImageClassification)
