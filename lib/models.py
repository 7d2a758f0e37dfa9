"""Load Hugging Face image classifiers (hub id or local folder) and run them on crops in bounded batches."""

from __future__ import annotations

import json
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from .errors import ModelLoadError, ParameterError
from .paths import resolve

DEVICES = ("auto", "cpu", "cuda")
# auto: fp16 autocast on CUDA, fp32 on the CPU. bf16: autocast on either (on the CPU it pays where the cores have bf16
# units). int8: dynamic int8 quantisation of the Linear layers, CPU only (transformers gain most; a CNN barely).
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
DEFAULT_SIZE = 224
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)
_FAKE_WORDS = {"fake", "deepfake", "spoof", "spoofed", "manipulated", "synthetic", "generated", "ai", "forged",
               "forgery", "artificial", "gan", "diffusion", "swapped", "altered"}
_REAL_WORDS = {"real", "realism", "authentic", "genuine", "live", "bonafide", "original", "pristine", "human", "natural"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a ParameterError."""
    if device not in DEVICES:
        raise ParameterError("device", device, DEVICES)
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", device, DEVICES, why="no CUDA GPU is visible to torch")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_source(model: str) -> str:
    """A local model folder (relative paths from the project root) or a hub id, as a string for from_pretrained."""
    for candidate in (Path(model).expanduser(), resolve(model)):
        if candidate.is_dir():
            return str(candidate.resolve())
    if _HUB_ID.match(model):
        return model
    raise ParameterError("model", model, "a local model folder or a Hugging Face hub id 'owner/name'",
                         why="no such folder, and not a hub id")


def resolve_data_config(model: str, size: int | None = None, mean: Iterable[float] | None = None,
                        std: Iterable[float] | None = None) -> dict[str, Any]:
    """Preprocessing settings: explicit argument, then the model's preprocessor_config.json, then defaults."""
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        cfg, _ = ImageProcessingMixin.get_image_processor_dict(resolve_source(model))
    except OSError as e:
        raise ParameterError("model", model, "a local model folder or a hub id available offline",
                             why=f"its preprocessor_config.json cannot be read ({str(e).splitlines()[0]})") from e
    s = cfg.get("size", DEFAULT_SIZE)
    cfg_size = s.get("height", s.get("shortest_edge", DEFAULT_SIZE)) if isinstance(s, dict) else int(s)
    return {
        "size": int(size or cfg_size),
        "mean": tuple(mean or (cfg.get("image_mean") if cfg.get("do_normalize", True) else (0.0, 0.0, 0.0)) or DEFAULT_MEAN),
        "std": tuple(std or (cfg.get("image_std") if cfg.get("do_normalize", True) else (1.0, 1.0, 1.0)) or DEFAULT_STD),
        "rescale": float(cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else 1.0),
    }


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


def effective_precision(device: torch.device, precision: str) -> str:
    """The precision ``precision`` runs at on ``device``: a GPU-only or CPU-only choice on the other device falls back
    (with a warning, recorded as ``precision_used`` in the run record), so one params file serves the CPU check and
    the GPU server."""
    import warnings

    if precision not in PRECISIONS:
        raise ParameterError("precision", precision, PRECISIONS)
    used = {("cuda", "int8"): "fp16", ("cpu", "fp16"): "fp32"}.get((device.type, precision), precision)
    if used != precision:
        warnings.warn(f"precision={precision!r} does not run on {device.type}: using {used}", stacklevel=3)
    return used


def _amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of an effective ``precision`` on ``device`` (None: no autocast)."""
    if device.type == "cuda":
        return {"fp32": None, "bf16": torch.bfloat16}.get(precision, torch.float16)
    return torch.bfloat16 if precision == "bf16" else None


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
    from transformers import AutoModelForImageClassification

    from . import backbones  # noqa: F401  registers the kit's own architectures with the Auto classes

    source = resolve_source(model)
    dev = resolve_device(device)
    try:
        module, info = AutoModelForImageClassification.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError, KeyError) as e:
        raise ParameterError("model", model, "a local model folder or a hub id available offline",
                             why=f"it cannot be loaded ({str(e).splitlines()[0]})") from e
    _check_loading_info(model, info)
    id2label = {int(k): str(v) for k, v in module.config.id2label.items()}
    used = effective_precision(dev, precision)
    amp_dtype = _amp_dtype(dev, used)
    module = module.eval().to(dev, memory_format=torch.channels_last) if dev.type == "cuda" else module.eval()
    if used == "int8":
        module = _quantize_int8(module)
    if torch_compile:
        module = torch.compile(module)
    lm = LoadedModel(module, model, id2label, fake_indices(id2label), resolve_data_config(model), dev, amp_dtype)
    lm.info = {"source": source, "architecture": type(getattr(module, "_orig_mod", module)).__name__, "id2label": id2label,
               "torch_compile": torch_compile, "precision": precision, "precision_used": used,
               "fake_indices": lm.fake_indices, "parameters": sum(p.numel() for p in module.parameters()),
               **{k: v for k, v in lm.data.items()}}
    training = _training_record(source)
    if training:  # a model written by train.ipynb: name its training run and carry its val-chosen threshold
        lm.info.update(training_run=training.get("exp"), threshold=training.get("threshold"))
    return lm


def _training_record(source: str) -> dict[str, Any] | None:
    path = Path(source) / "training.json"  # strategies.TRAINING_FILE (not imported: strategies imports peft lazily)
    return json.loads(path.read_text(encoding="utf-8")) if Path(source).is_dir() and path.is_file() else None


def resolve_threshold(threshold: float | str, lm: LoadedModel) -> float:
    """``threshold`` as a number; ``"model"`` → the threshold train.ipynb chose on val and stored with the model."""
    if threshold != "model":
        return float(threshold)
    stored = lm.info.get("threshold")
    if stored is None:
        raise ParameterError("threshold", threshold, "a number in [0, 1]",
                             why=f"{lm.name} carries no threshold (only models written by train.ipynb do)")
    return float(stored)


def pixels(crops: np.ndarray, data: dict[str, Any], device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 crops (N, S, S, 3) RGB → float NCHW tensor on ``device``, rescaled and normalised as ``data`` says."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device, non_blocking=True)
    # NHWC storage viewed as NCHW: already channels-last, which CUDA convolutions prefer
    x = x.permute(0, 3, 1, 2).float().mul_(data["rescale"])
    mean = torch.tensor(data["mean"], device=device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(data["std"], device=device, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def to_pixels(crops: np.ndarray, lm: LoadedModel) -> torch.Tensor:
    """uint8 crops (N, S, S, 3) RGB → the model's normalised input on its device."""
    if crops.shape[1:3] != (lm.size, lm.size):
        raise ValueError(f"crops are {crops.shape[1:3]}, the model expects {lm.size}×{lm.size}")
    return pixels(crops, lm.data, lm.device)


def predict_crops(lm: LoadedModel, crops: np.ndarray) -> np.ndarray:
    """P(fake) for one batch of uint8 crops."""
    amp = torch.autocast(lm.device.type, dtype=lm.amp_dtype) if lm.amp_dtype is not None else nullcontext()
    with torch.inference_mode(), amp:
        logits = lm.module(pixel_values=to_pixels(crops, lm)).logits
        probs = torch.softmax(logits.float(), dim=-1)[:, lm.fake_indices].sum(dim=-1)
    return probs.cpu().numpy().astype(np.float64)


def predict_batches(lm: LoadedModel, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """P(fake) for each batch of crops, in order."""
    for batch in batches:
        yield predict_crops(lm, batch)
