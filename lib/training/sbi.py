"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): pseudo-fakes made by blending a real face crop with itself.

Crops come from ``faces.crop``: in a crop of side S made with margin m the detector's face box is about the centred
square of side S / m, which is where the landmark predictor looks.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np

from .. import faces
from ..errors import ParameterError
from .augment import jitter_colour

PREDICTOR = "shape_predictor_68_face_landmarks.dat"
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's choice of blend ratio: full blends twice as likely


def predictor_path() -> Path:
    """dlib's 68-point landmark model, shipped by the ``face-recognition-models`` package."""
    path = faces._models_dir() / PREDICTOR
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the package face-recognition-models")
    return path


@lru_cache(maxsize=1)
def _predictor() -> Any:
    """dlib's 68-point shape predictor, loaded once per process."""
    import dlib

    return dlib.shape_predictor(str(predictor_path()))


def landmarks(crop: np.ndarray, margin: float) -> np.ndarray:
    """(68, 2) float32 landmark (x, y) in crop pixels, predicted inside the centred face box of side S / ``margin``."""
    import dlib

    if margin < 1:
        raise ParameterError("margin", margin, "a number >= 1 (the crop's side over the face box's side)")
    h, w = crop.shape[:2]
    side = min(h, w) / margin
    x0, y0 = round((w - side) / 2), round((h - side) / 2)
    rect = dlib.rectangle(x0, y0, round(x0 + side) - 1, round(y0 + side) - 1)
    shape = _predictor()(np.ascontiguousarray(crop), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """float32 (H, W) mask: 1 inside the convex hull of ``points`` (x, y), 0 outside."""
    mask = np.zeros(shape[:2], dtype=np.float32)
    hull = cv2.convexHull(np.round(points).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def _odd(x: float) -> int:
    return max(3, int(round(x)) // 2 * 2 + 1)


def _affine(img: np.ndarray, scale: tuple[float, float], shift: tuple[float, float], centre: tuple[float, float],
            border: int) -> np.ndarray:
    """``img`` scaled by ``scale`` (x, y) about ``centre`` and moved by ``shift`` pixels."""
    (sx, sy), (dx, dy), (cx, cy) = scale, shift, centre
    m = np.array([[sx, 0, cx - sx * cx + dx], [0, sy, cy - sy * cy + dy]], dtype=np.float64)
    h, w = img.shape[:2]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)


def _sharpness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slight Gaussian blur or an unsharp-mask sharpening, chosen at random."""
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.5:
        return blurred
    amount = float(rng.uniform(0.2, 0.8))
    return cv2.addWeighted(img, 1 + amount, blurred, -amount, 0)


def _source(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The crop colour- and sharpness-jittered, slightly moved and rescaled: the face pasted onto the target."""
    shift = rng.integers(-20, 21, size=3)  # RGB shift, as albumentations' RGBShift(20, 20, 20)
    src = np.clip(crop.astype(np.int16) + shift, 0, 255).astype(np.uint8)
    src = _sharpness(jitter_colour(src, rng, strength=1.5), rng)
    h, w = crop.shape[:2]
    s = float(rng.uniform(0.95, 1.05))
    d = rng.uniform(-0.03, 0.03, size=2) * (w, h)
    return _affine(src, (s, s), (float(d[0]), float(d[1])), (w / 2, h / 2), cv2.BORDER_REFLECT_101)


def _elastic(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``mask`` warped by a smooth random displacement field of at most about 2% of the side."""
    h, w = mask.shape
    side = max(h, w)
    field = rng.normal(size=(2, h, w)).astype(np.float32)
    field = np.stack([cv2.GaussianBlur(f, (0, 0), sigmaX=side / 16) for f in field])
    field *= float(rng.uniform(0, 0.02 * side)) / max(float(np.abs(field).max()), 1e-6)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, gx + field[0], gy + field[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


def _blend_mask(points: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The landmarks' hull, randomly rescaled, moved, deformed and blurred, with maximum 1 (0 where untouched)."""
    h, w = shape
    mask = hull_mask(points, shape)
    scale = rng.uniform(0.9, 1.1, size=2)
    shift = rng.uniform(-0.03, 0.03, size=2) * (w, h)
    centre = points.mean(axis=0)
    mask = _affine(mask, (float(scale[0]), float(scale[1])), (float(shift[0]), float(shift[1])),
                   (float(centre[0]), float(centre[1])), cv2.BORDER_CONSTANT)
    mask = _elastic(mask, rng)
    k = _odd(rng.uniform(5, 31) * max(h, w) / 256)
    mask = cv2.GaussianBlur(mask, (k, k), 0, borderType=cv2.BORDER_CONSTANT)
    top = float(mask.max())
    return mask / top if top > 0 else mask


def self_blend(crop: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A pseudo-fake of ``crop`` (uint8, same shape) and the blend mask used (float32 (H, W) in [0, 1]).

    Args:
        crop: a real face crop, uint8 RGB (H, W, 3).
        points: its (68, 2) landmarks (x, y) in crop pixels, from ``landmarks``.
        rng: the only source of randomness: equal seeds give equal results.
    """
    h, w = crop.shape[:2]
    source = _source(crop, rng)
    mask = _blend_mask(np.asarray(points, dtype=np.float32), (h, w), rng)
    mask = (mask * float(rng.choice(BLEND_RATIOS))).astype(np.float32)
    m = mask[..., None]
    fake = source.astype(np.float32) * m + crop.astype(np.float32) * (1 - m)
    return np.clip(np.rint(fake), 0, 255).astype(np.uint8), mask


def blend_grid(crops: Sequence[np.ndarray], points_list: Sequence[np.ndarray], rng: np.random.Generator,
               n: int = 4) -> plt.Figure:
    """Figure of ``n`` examples, one a row: real crop, pseudo-fake, blend mask, |difference|."""
    n = min(n, len(crops), len(points_list))
    if n < 1:
        raise ParameterError("n", n, why="blend_grid needs at least one crop with landmarks")
    fig, axes = plt.subplots(n, 4, figsize=(8, 2.1 * n), squeeze=False)
    for row, (crop, points) in enumerate(zip(crops[:n], points_list[:n])):
        fake, mask = self_blend(crop, points, rng)
        diff = np.abs(fake.astype(np.int16) - crop.astype(np.int16)).max(axis=2)
        panels = [(crop, None, "real"), (fake, None, "pseudo-fake"), (mask, "gray", "mask"),
                  (diff, "magma", "|difference|")]
        for ax, (img, cmap, title) in zip(axes[row], panels):
            ax.imshow(img, cmap=cmap, vmin=0 if cmap else None, vmax=(1 if cmap == "gray" else None))
            ax.set_title(title if row == 0 else "", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    return fig
