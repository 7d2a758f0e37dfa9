"""Devices and precisions: which ones a run may ask for, what it gets on this machine, and the autocast it needs.

torch is imported inside the functions, so the parameter checks can read DEVICES and PRECISIONS cheaply.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Any

from .errors import ParameterError

DEVICES = ("auto", "cpu", "cuda")
# auto: fp16 autocast on CUDA, fp32 on the CPU. bf16: autocast on either (on the CPU it pays where the cores have bf16
# units). int8: dynamic int8 quantisation of the Linear layers, CPU only (transformers gain most; a CNN barely).
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


def resolve_device(device: str = "auto") -> Any:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a ParameterError. Returns a torch.device."""
    import torch

    if device not in DEVICES:
        raise ParameterError("device", device, DEVICES)
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", device, DEVICES, why="no CUDA GPU is visible to torch")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def effective_precision(device: Any, precision: str) -> str:
    """The precision ``precision`` runs at on ``device``: a GPU-only or CPU-only choice on the other device falls back
    (with a warning, recorded as ``precision_used`` in the run record), so one params file serves the CPU check and
    the GPU server."""
    if precision not in PRECISIONS:
        raise ParameterError("precision", precision, PRECISIONS)
    used = {("cuda", "int8"): "fp16", ("cpu", "fp16"): "fp32"}.get((device.type, precision), precision)
    if used != precision:
        warnings.warn(f"precision={precision!r} does not run on {device.type}: using {used}", stacklevel=3)
    return used


def amp_dtype(device: Any, precision: str, training: bool = False) -> Any:
    """The autocast dtype of ``precision`` on ``device`` (None: no autocast). Training autocasts on CUDA only."""
    import torch

    if device.type == "cuda":
        return {"fp32": None, "bf16": torch.bfloat16}.get(precision, torch.float16)
    return torch.bfloat16 if precision == "bf16" and not training else None


def autocast(device: Any, dtype: Any) -> Any:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op context when ``dtype`` is None."""
    import torch

    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
