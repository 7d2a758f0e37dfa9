"""Load Hugging Face image classifiers (hub id or local folder) and run them on crops in bounded batches."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbones import load_labels, load_pretrained, resolve_data_config
from .checks import model_source
from .devices import amp_dtype, autocast, effective_precision, resolve_device
from .errors import ModelLoadError, ParameterError

_FAKE_WORDS = {"fake", "deepfake", "spoof", "spoofed", "manipulated", "synthetic", "generated", "ai", "forged",
               "forgery", "artificial", "gan", "diffusion", "swapped", "altered"}
_REAL_WORDS = {"real", "realism", "authentic", "genuine", "live", "bonafide", "original", "pristine", "human", "natural"}
TRAINING_FILE = "training.json"  # written by train.ipynb into its model folder: its run, threshold and val metrics


def label_kind(label: str) -> str | None:
    """``"fake"``, ``"real"`` or None for one id2label entry (word match, case-insensitive)."""
    low = str(label).lower()
    words = set(re.split(r"[^a-z0-9]+", low))
    if "fake" in low or words & _FAKE_WORDS:
        return "fake"
    if "real" in low or words & _REAL_WORDS:
        return "real"
    return None


def fake_indices(id2label: dict[int, str]) -> list[int]:
    """Class indices whose probabilities add up to P(fake), read from ``id2label`` and never assumed."""
    kinds = {int(i): label_kind(lab) for i, lab in id2label.items()}
    fakes = sorted(i for i, k in kinds.items() if k == "fake")
    reals = sorted(i for i, k in kinds.items() if k == "real")
    if len(reals) == 1 and len(kinds) >= 2:  # one real class: every other class is a kind of fake
        return sorted(i for i in kinds if i != reals[0])
    if fakes:
        return fakes
    raise ModelLoadError(
        f"no class of id2label={dict(id2label)} looks like 'fake' (words tried: {sorted(_FAKE_WORDS)}); "
        "set config.id2label in the model folder's config.json")


def model_classes(model: str) -> tuple[dict[int, str], list[int]]:
    """A model's classes and the ones P(fake) adds up, from its config as the loader reads it (no weights loaded):
    what ``load_model`` uses, and what the server bundle's build and check ask."""
    id2label = load_labels(model_source(model))
    return id2label, fake_indices(id2label)


@dataclass
class LoadedModel:
    """A classifier ready for inference, with everything needed to feed it and read P(fake)."""

    module: torch.nn.Module
    name: str
    id2label: dict[int, str]
    fake_indices: list[int]
    data: dict[str, Any]
    device: torch.device
    amp_dtype: torch.dtype | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.data["size"])


def _check_loading_info(model: str, info: dict[str, Any]) -> None:
    bad = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    bad = {k: v for k, v in bad.items() if v}
    if bad or info.get("error_msgs"):
        detail = "; ".join(f"{k}: {v[:5]}{' …' if len(v) > 5 else ''} ({len(v)})" for k, v in bad.items())
        raise ModelLoadError(f"model={model!r} did not load cleanly — weights would be newly initialised ({detail}"
                             f"{'; ' + str(info.get('error_msgs')) if info.get('error_msgs') else ''}). "
                             "Check that the folder holds the checkpoint of this exact architecture and head.")


def _load(model: str, source: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``backbones.load_pretrained``; weights that cannot be read (a truncated or damaged safetensors file) or do not
    fit the architecture (tensor sizes) are a ParameterError naming the model folder."""
    from safetensors import SafetensorError

    try:
        return load_pretrained(source)
    except ParameterError:  # ModelLoadError included: already says what is wrong
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "ignore_mismatched_sizes" in first:  # transformers printed its load report to the log
            first = "the sizes of its weights do not match the architecture in its config.json (load report above)"
        elif isinstance(e, SafetensorError):
            first = f"its weights file cannot be read, truncated or damaged? ({first})"
        raise ParameterError("model", model, "a local model folder or a hub id available offline",
                             why=f"{source} cannot be loaded: {first}") from e


def _quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of every Linear layer (weights int8, activations quantised on the fly), CPU only."""
    import warnings

    with warnings.catch_warnings():  # torch.ao.quantization warns of its move to torchao; the API works in 2.x
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def load_model(model: str, device: str = "auto", precision: str = "auto", torch_compile: bool = False) -> LoadedModel:
    """Load an image classifier from a hub id or a local folder; any weight left newly initialised is an error.

    On CUDA the model runs channels-last (faster convolutions) under autocast; ``precision`` bf16/int8 speed up the
    CPU (see PRECISIONS); ``torch_compile`` wraps it in ``torch.compile`` (the first batches pay the compilation).
    """
    source = model_source(model)
    dev = resolve_device(device)
    module, info = _load(model, source)
    _check_loading_info(model, info)
    id2label = {int(k): str(v) for k, v in module.config.id2label.items()}
    used = effective_precision(dev, precision)
    module = module.eval().to(dev, memory_format=torch.channels_last) if dev.type == "cuda" else module.eval()
    if used == "int8":
        module = _quantize_int8(module)
    if torch_compile:
        module = torch.compile(module)
    lm = LoadedModel(module, model, id2label, fake_indices(id2label), resolve_data_config(model), dev,
                     amp_dtype(dev, used))
    lm.info = {"source": source, "architecture": type(getattr(module, "_orig_mod", module)).__name__, "id2label": id2label,
               "torch_compile": torch_compile, "precision": precision, "precision_used": used,
               "fake_indices": lm.fake_indices, "parameters": sum(p.numel() for p in module.parameters()),
               **{k: v for k, v in lm.data.items()}}
    training = read_training(source)
    if training:  # a model written by train.ipynb: name its training run and carry its val-chosen threshold
        lm.info.update(training_run=training.get("exp"), threshold=training.get("threshold"))
    return lm


def read_training(model_dir: str | Path) -> dict[str, Any] | None:
    """The training record a kit-trained model folder carries (None for other models and hub ids)."""
    path = Path(model_dir) / TRAINING_FILE
    return json.loads(path.read_text(encoding="utf-8")) if Path(model_dir).is_dir() and path.is_file() else None


def resolve_threshold(threshold: float | str, lm: LoadedModel) -> float:
    """``threshold`` as a number; ``"model"`` → the threshold train.ipynb chose on val and stored with the model."""
    if threshold != "model":
        return float(threshold)
    stored = lm.info.get("threshold")
    if stored is None:
        raise ParameterError("threshold", threshold, "a number in [0, 1]",
                             why=f"{lm.name} carries no threshold (only models written by train.ipynb do)")
    return float(stored)


def normalized(crops: np.ndarray, data: dict[str, Any], device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 crops (N, S, S, 3) RGB → float NCHW tensor on ``device``, rescaled and normalised as the data config
    ``data`` says (any size: ``model_input`` is a loaded model's, size checked)."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device, non_blocking=True)
    # NHWC storage viewed as NCHW: already channels-last, which CUDA convolutions prefer
    x = x.permute(0, 3, 1, 2).float().mul_(data["rescale"])
    mean = torch.tensor(data["mean"], device=device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(data["std"], device=device, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def model_input(crops: np.ndarray, lm: LoadedModel) -> torch.Tensor:
    """uint8 crops (N, S, S, 3) RGB → the loaded model's input: crops of its size, normalised, on its device."""
    if crops.shape[1:3] != (lm.size, lm.size):
        raise ValueError(f"crops are {crops.shape[1:3]}, the model expects {lm.size}×{lm.size}")
    return normalized(crops, lm.data, lm.device)


def predict_crops(lm: LoadedModel, crops: np.ndarray) -> np.ndarray:
    """P(fake) for one batch of uint8 crops."""
    with torch.inference_mode(), autocast(lm.device, lm.amp_dtype):
        logits = lm.module(pixel_values=model_input(crops, lm)).logits
        probs = torch.softmax(logits.float(), dim=-1)[:, lm.fake_indices].sum(dim=-1)
    return probs.cpu().numpy().astype(np.float64)


# ------------------------------------------------------------------ models that score a file from all its crops at once

def has_file_head(lm: LoadedModel) -> bool:
    """True for a model that scores a file from all its crops at once (``file_logit``, e.g. ``kit_traces``): infer
    keeps its per-crop features and asks it for the file's score instead of aggregating per-frame probabilities."""
    return callable(getattr(getattr(lm.module, "_orig_mod", lm.module), "file_logit", None))


def crop_outputs(lm: LoadedModel, crops: np.ndarray) -> np.ndarray:
    """What inference keeps of one batch of crops: P(fake) per crop (N,), or for a model with a file head its
    per-crop features (N, D)."""
    if not has_file_head(lm):
        return predict_crops(lm, crops)
    module = getattr(lm.module, "_orig_mod", lm.module)
    with torch.inference_mode():
        return module.crop_features(model_input(crops, lm)).float().cpu().numpy().astype(np.float64)


def file_scores(lm: LoadedModel, features: np.ndarray) -> tuple[float, np.ndarray]:
    """A file's P(fake) from all its crops' features (the model's file head), and each crop's P(fake) scored alone."""
    module = getattr(lm.module, "_orig_mod", lm.module)
    x = torch.from_numpy(np.asarray(features, np.float32)).to(lm.device)
    with torch.inference_mode():
        file_logit = float(module.file_logit(x))
        frame_logit = torch.stack([module.file_logit(row[None]) for row in x]).float().cpu().numpy()
    return float(1 / (1 + np.exp(-file_logit))), (1 / (1 + np.exp(-frame_logit))).astype(np.float64)
