"""Training augmentations of one uint8 RGB crop (H, W, 3), by name, with cv2 and numpy only."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ..errors import ParameterError
from ..registry import Registry

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (H, W, 3) uint8, rng -> (H, W, 3) uint8
AUGMENTS: Registry[Augment] = Registry("augment")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """``img`` (RGB uint8) encoded as JPEG at ``quality`` (0-100) and decoded again."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"cv2 could not JPEG-encode an image of shape {img.shape}")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@AUGMENTS.register("flip")
def _flip(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal mirror."""
    return np.ascontiguousarray(img[:, ::-1])


@AUGMENTS.register("rotate")
def _rotate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation about the centre by up to ±10°, borders reflected."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-10, 10)), 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def jitter_colour(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Random brightness, contrast, saturation (±20% × strength) and hue (±5° × strength) change."""
    x = img.astype(np.float32)
    x = x * (1 + strength * rng.uniform(-0.2, 0.2))  # brightness
    x = (x - x.mean()) * (1 + strength * rng.uniform(-0.2, 0.2)) + x.mean()  # contrast
    hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.float32) / 255, cv2.COLOR_RGB2HSV)  # H in degrees
    hsv[..., 0] = (hsv[..., 0] + strength * rng.uniform(-5, 5)) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * (1 + strength * rng.uniform(-0.2, 0.2)), 0, 1)
    return _to_uint8(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255)


@AUGMENTS.register("color")
def _color(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Modest brightness / contrast / saturation / hue jitter."""
    return jitter_colour(img, rng)


@AUGMENTS.register("erase")
def _erase(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random erasing: one rectangle of 2-20% of the area (aspect 0.3-3.3) filled with uniform noise."""
    h, w = img.shape[:2]
    area = rng.uniform(0.02, 0.2) * h * w
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
    eh = int(np.clip(round(np.sqrt(area * aspect)), 1, h))
    ew = int(np.clip(round(np.sqrt(area / aspect)), 1, w))
    y0, x0 = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
    out = img.copy()
    out[y0:y0 + eh, x0:x0 + ew] = rng.integers(0, 256, size=(eh, ew) + img.shape[2:], dtype=np.uint8)
    return out


@AUGMENTS.register("blur")
def _blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur with sigma 0.1-1.5 pixels."""
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(0.1, 1.5)), borderType=cv2.BORDER_REFLECT_101)


@AUGMENTS.register("jpeg")
def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG re-encoding at quality 40-95."""
    return jpeg(img, int(rng.integers(40, 96)))


def check(names: list[str]) -> list[str]:
    """``names`` as a list, after checking that each is a registered augmentation."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ParameterError("augment", names, f"a list of names from {', '.join(AUGMENTS.names())}")
    for name in names:
        AUGMENTS.get(name)
    return list(names)


def augment(img: np.ndarray, names: list[str], rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """``img`` with each named augmentation applied with probability ``p``, in order; ``img`` is not modified."""
    if not 0.0 <= p <= 1.0:
        raise ParameterError("augment_p", p, "a probability in [0, 1]")
    out = img
    for name in names:
        if rng.random() < p:
            out = AUGMENTS.get(name)(out, rng)
    return out.copy() if out is img else out
