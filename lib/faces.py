"""Face detectors (by name) and the one crop function that preprocessing, training and inference share."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .errors import ParameterError
from .registry import Registry

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the full frame, x1/y1 exclusive
Detector = Callable[[np.ndarray], list[Box]]

DETECTORS: Registry[Callable[[], Detector]] = Registry("detector")
NO_FACE = ("skip", "center_crop", "full_frame")  # what a frame with no face contributes


def _models_dir() -> Path:
    """Folder of dlib's model files shipped by the ``face-recognition-models`` package (not imported: needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ParameterError("detector", "dlib_cnn", why="the package face-recognition-models is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _to_boxes(rects: object) -> list[Box]:
    return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]  # type: ignore[attr-defined]


@DETECTORS.register("dlib_hog")
def _dlib_hog() -> Detector:
    """dlib's HOG frontal face detector (the competition baseline's), no upsampling."""
    import dlib

    det = dlib.get_frontal_face_detector()
    return lambda rgb: _to_boxes(det(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 0))


@DETECTORS.register("dlib_cnn")
def _dlib_cnn() -> Detector:
    """dlib's MMOD CNN face detector (more robust to pose, slow on a CPU)."""
    import dlib

    det = dlib.cnn_face_detection_model_v1(str(_models_dir() / "mmod_human_face_detector.dat"))
    return lambda rgb: _to_boxes(d.rect for d in det(np.ascontiguousarray(rgb), 0))


@DETECTORS.register("none")
def _no_detector() -> Detector:
    """No detection: every frame counts as having no face (use with ``no_face='full_frame'`` for pre-cropped faces)."""
    return lambda rgb: []


@lru_cache(maxsize=None)
def get_detector(name: str) -> Detector:
    """The detector registered as ``name``, built once per process."""
    return DETECTORS.get(name)()


def scale_to_width(frame: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """A copy of ``frame`` resized to ``width`` pixels wide, and the scale factor applied."""
    h, w = frame.shape[:2]
    scale = width / w
    if scale == 1.0:
        return frame, 1.0
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, max(1, round(h * scale))), interpolation=interp), scale


def detect(frame: np.ndarray, detector: str = "dlib_hog", detect_width: int = 640) -> list[Box]:
    """Face boxes in ``frame`` (full-frame pixels), found on a copy scaled to ``detect_width`` pixels wide."""
    small, scale = scale_to_width(frame, detect_width)
    boxes = get_detector(detector)(small)
    h, w = frame.shape[:2]
    out = []
    for x0, y0, x1, y1 in boxes:
        b = (round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale))
        b = (max(0, b[0]), max(0, b[1]), min(w, b[2]), min(h, b[3]))
        if b[2] > b[0] and b[3] > b[1]:
            out.append(b)
    return out


def largest(boxes: list[Box]) -> Box | None:
    """The box with the largest area, or None."""
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), default=None)


def interpolate_boxes(keyed: dict[int, Box | None], n: int) -> list[Box | None]:
    """Boxes for positions 0..n-1 from the boxes found at some of them.

    Between two positions with a box the box moves linearly; next to a position without one the nearer box is held;
    between two misses there is no box.
    """
    keys = sorted(keyed)
    out: list[Box | None] = []
    for p in range(n):
        if p in keyed:
            out.append(keyed[p])
            continue
        a = max((k for k in keys if k < p), default=None)
        b = min((k for k in keys if k > p), default=None)
        ba, bb = keyed.get(a) if a is not None else None, keyed.get(b) if b is not None else None
        if ba is not None and bb is not None:
            t = (p - a) / (b - a)
            out.append(tuple(round(x + t * (y - x)) for x, y in zip(ba, bb)))  # type: ignore[arg-type]
        else:
            out.append(ba if ba is not None else bb)
    return out


DETECT_SCALES = ("fixed", "adaptive")
ADAPTIVE_FACE_PX = 120  # adaptive: the face's side on the detector's copy (dlib's HOG finds faces from about 80 px)
MIN_DETECT_WIDTH = 160


def adapted_width(box: Box, frame_width: int, detect_width: int) -> int:
    """The detector width at which a face the size of ``box`` (found in an earlier frame) is ADAPTIVE_FACE_PX wide,
    never above ``detect_width``."""
    side = max(box[2] - box[0], box[3] - box[1], 1)
    return int(max(MIN_DETECT_WIDTH, min(detect_width, round(frame_width * ADAPTIVE_FACE_PX / side))))


def _detect_keyframes(frames: list[np.ndarray], keys: list[int], detector: str, detect_width: int,
                      adaptive: bool) -> tuple[dict[int, Box | None], int]:
    """The largest face of each key frame; ``adaptive``: first on a copy scaled so that the previous face is about
    ADAPTIVE_FACE_PX wide (cheaper when faces are big), then, if that finds none, at ``detect_width``."""
    keyed: dict[int, Box | None] = {}
    calls, previous = 0, None
    for i in keys:
        box = None
        width = adapted_width(previous, frames[i].shape[1], detect_width) if adaptive and previous else detect_width
        if width < detect_width:
            box, calls = largest(detect(frames[i], detector, width)), calls + 1
        if box is None:
            box, calls = largest(detect(frames[i], detector, detect_width)), calls + 1
        keyed[i], previous = box, box or previous
    return keyed, calls


def detect_sequence(frames: list[np.ndarray], detector: str = "dlib_hog", detect_width: int = 640,
                    every: int = 1, scale: str = "fixed") -> tuple[list[Box | None], int]:
    """The largest face of each frame, detected on every ``every``-th frame (and the last) and interpolated between;
    ``scale="adaptive"`` detects at a width fitted to the face found before (see ``_detect_keyframes``).

    Returns the boxes and the number of detector calls.
    """
    if scale not in DETECT_SCALES:
        raise ParameterError("detect_scale", scale, DETECT_SCALES)
    n = len(frames)
    keys = sorted(set(range(0, n, max(1, every))) | ({n - 1} if n else set()))
    keyed, calls = _detect_keyframes(frames, keys, detector, detect_width, scale == "adaptive")
    return interpolate_boxes(keyed, n), calls


def crop_box(box: Box, margin: float, frame_shape: tuple[int, ...]) -> Box:
    """Square of side ``margin`` × the box's longer side, centred on the box, clipped to the frame."""
    x0, y0, x1, y1 = box
    side = margin * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = frame_shape[:2]
    bx0, by0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    bx1, by1 = min(w, round(cx + side / 2)), min(h, round(cy + side / 2))
    return bx0, by0, bx1, by1


def center_box(frame_shape: tuple[int, ...]) -> Box:
    """The largest centred square of the frame."""
    h, w = frame_shape[:2]
    side = min(h, w)
    x0, y0 = (w - side) // 2, (h - side) // 2
    return x0, y0, x0 + side, y0 + side


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized to size × size (area averaging when shrinking, bicubic when enlarging)."""
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if (h > size and w > size) else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)


def crop(frame: np.ndarray, box: Box | None, margin: float, size: int, no_face: str = "skip") -> np.ndarray | None:
    """The model's view of one frame: the margin crop around ``box`` resized to ``size``.

    With no box, ``no_face`` decides: ``skip`` → None, ``center_crop`` → centred square, ``full_frame`` → whole frame.
    """
    if box is not None:
        x0, y0, x1, y1 = crop_box(box, margin, frame.shape)
    elif no_face == "skip":
        return None
    elif no_face == "center_crop":
        x0, y0, x1, y1 = center_box(frame.shape)
    elif no_face == "full_frame":
        x0, y0, x1, y1 = 0, 0, frame.shape[1], frame.shape[0]
    else:
        raise ParameterError("no_face", no_face, NO_FACE)
    return resize(np.ascontiguousarray(frame[y0:y1, x0:x1]), size)
