"""A linear probe on a frozen timm backbone as a Hugging Face image classifier (``model_type: kit_probe``).

Per crop it computes fixed features — the spatial mean and standard deviation of every channel after each chosen
stage of the backbone (low-level texture and colour statistics) and/or its globally pooled final features — and one
linear layer gives the logits. The layer holds a standardisation and a logistic regression folded together, fitted
by ``lib.training.strategies.LinearProbe``: logits are ``[0, w·f + b]``. Because the head is linear, the mean of a
file's crop logits is the regression's logit of the file's mean features, so infer with ``aggregate: logit_mean``
scores a file exactly as the probe was fitted.

Importing this module registers the architecture with the transformers Auto classes (``lib.backbones`` does so
before loading a folder), so a saved probe loads like any other model, in infer, the server bundle and the tests.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

MODEL_TYPE = "kit_probe"
FEATURES = ("multi", "stages", "head")  # stage statistics and pooled features | stage statistics | pooled features


class KitProbeConfig(PretrainedConfig):
    """Which timm backbone, which stages, which features."""

    model_type = MODEL_TYPE

    def __init__(self, architecture: str = "tf_efficientnet_lite0", stages: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
                 features: str = "multi", **kwargs: Any):
        self.architecture, self.stages, self.features = architecture, list(stages), features
        super().__init__(**kwargs)


class KitProbeForImageClassification(PreTrainedModel):
    """Frozen timm backbone → per-crop feature vector → one linear layer."""

    config_class = KitProbeConfig
    main_input_name = "pixel_values"

    def __init__(self, config: KitProbeConfig):
        import timm

        super().__init__(config)
        self.backbone = timm.create_model(config.architecture, pretrained=False, num_classes=0)
        self.classifier = nn.Linear(feature_dim(self.backbone, config), config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Leave timm's own initialisation alone (the weights come from the backbone or the saved folder)."""

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The per-crop feature vector (B, D)."""
        b, cfg = self.backbone, self.config
        x = b.bn1(b.conv_stem(pixel_values))
        parts_mean, parts_std = [], []
        for i, block in enumerate(b.blocks):
            x = block(x)
            if i in cfg.stages and cfg.features != "head":
                flat = x.flatten(2)
                parts_mean.append(flat.mean(-1))
                parts_std.append(flat.std(-1, unbiased=False))
        parts = parts_mean + parts_std
        if cfg.features != "stages":
            parts.append(b.forward_head(b.bn2(b.conv_head(x)), pre_logits=True))
        return torch.cat(parts, dim=1)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs: Any) -> ImageClassifierOutput:
        logits = self.classifier(self.features(pixel_values))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def feature_dim(backbone: Any, config: KitProbeConfig) -> int:
    """Length of the feature vector: 2 × the channels of the chosen stages, plus the pooled features."""
    stages = sum(backbone.blocks[i][-1].conv_pwl.out_channels for i in config.stages)
    return (2 * stages if config.features != "head" else 0) + (backbone.num_features if config.features != "stages"
                                                               else 0)


def from_timm(timm_model: nn.Module, architecture: str, id2label: dict[int, str], features: str = "multi",
              stages: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> KitProbeForImageClassification:
    """A probe whose backbone holds ``timm_model``'s weights (its classifier left out), with a zero head."""
    id2label = {int(k): str(v) for k, v in id2label.items()}
    config = KitProbeConfig(architecture=architecture, stages=stages, features=features, num_labels=len(id2label),
                            id2label=id2label, label2id={v: k for k, v in id2label.items()})
    probe = KitProbeForImageClassification(config)
    state = {k: v for k, v in timm_model.state_dict().items() if not k.startswith("classifier.")}
    probe.backbone.load_state_dict(state, strict=True)
    nn.init.zeros_(probe.classifier.weight)
    nn.init.zeros_(probe.classifier.bias)
    return probe.eval()


def _register() -> None:
    AutoConfig.register(MODEL_TYPE, KitProbeConfig, exist_ok=True)
    AutoModelForImageClassification.register(KitProbeConfig, KitProbeForImageClassification, exist_ok=True)


_register()
