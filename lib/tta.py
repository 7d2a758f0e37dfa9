"""Test-time augmentation: each view of a batch of crops is just more crops for the same batch."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .faces import resize
from .registry import Registry

View = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) uint8 -> (N, S, S, 3) uint8
TTA: Registry[Callable[[], list[View]]] = Registry("tta")


def _identity(crops: np.ndarray) -> np.ndarray:
    return crops


def _hflip(crops: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crops[:, :, ::-1])


def _zoom(crops: np.ndarray, keep: float = 0.875) -> np.ndarray:
    """Central ``keep`` fraction of each crop, resized back to the crop size."""
    s = crops.shape[1]
    k = max(1, round(s * keep))
    o = (s - k) // 2
    return np.stack([resize(c[o:o + k, o:o + k], s) for c in crops]) if len(crops) else crops


TTA.register("none")(lambda: [_identity])
TTA.register("flip")(lambda: [_identity, _hflip])
TTA.register("zoom")(lambda: [_identity, _zoom])
TTA.register("flip_zoom")(lambda: [_identity, _hflip, _zoom, lambda c: _hflip(_zoom(c))])


def get(tta: str) -> list[View]:
    """The view functions of ``tta`` (looked up once per run; an unknown name lists the valid ones)."""
    return TTA.get(tta)()


def apply(crops: np.ndarray, views: list[View]) -> np.ndarray:
    """All ``views`` of ``crops`` stacked view-major: shape (len(views) * N, S, S, 3)."""
    return np.concatenate([v(crops) for v in views], axis=0)


def views(crops: np.ndarray, tta: str) -> np.ndarray:
    """All TTA views of ``crops`` stacked view-major: shape (n_views * N, S, S, 3)."""
    return apply(crops, get(tta))


def n_views(tta: str) -> int:
    """How many views ``tta`` makes of each crop."""
    return len(get(tta))
