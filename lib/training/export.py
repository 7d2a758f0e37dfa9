"""The model folder a training run writes — weights, config (id2label {0: real, 1: fake}), preprocessor config and
``training.json`` — and the check that the inference loader reads it back to the same predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..backbones import save_model, write_preprocessor_config
from ..models import TRAINING_FILE, load_model, normalized, predict_crops

ID2LABEL = {0: "real", 1: "fake"}
RELOAD_TOLERANCE = 1e-4  # largest |ΔP(fake)| allowed between the trained model and its reloaded folder


def save(model: nn.Module, out: Path, data: dict[str, Any], training: dict[str, Any]) -> Path:
    """Write the model folder: weights and config, preprocessor_config.json, training.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out)
    write_preprocessor_config(out, int(data["size"]), data["mean"], data["std"])
    (out / TRAINING_FILE).write_text(json.dumps(training, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def check_saved(out: Path, model: nn.Module, crops: np.ndarray, data: dict[str, Any]) -> float:
    """Reload ``out`` with the inference loader and return the largest |ΔP(fake)| against ``model`` on ``crops``."""
    lm = load_model(str(out), device="cpu", precision="fp32")
    model = model.to("cpu").eval()
    with torch.inference_mode():
        ref = torch.softmax(model(pixel_values=normalized(crops, data)).logits.float(), -1)[:, 1].numpy()
    return float(abs(predict_crops(lm, crops) - ref).max())
