"""A straightforward implementation of the organiser's baseline (COMPETITION.md), the reference the kit is timed against.

Per file: N frames at ``np.linspace`` indices read by seeking (``cap.set(CAP_PROP_POS_FRAMES, i)`` per frame);
dlib HOG (no upsampling) on each frame's copy scaled to 640 px wide; the largest face; a square crop 1.3× the box,
centred on it, cut with PIL and resized bicubic to the processor's size; the HF image processor on the list of PIL
images; all of one video's original crops in one forward pass and the flipped crops in a second; softmax averaged
over frames and views, then argmax. No cache. An image is one frame. No face in any frame → P(fake) 0, label 0.

Deliberately naive: it is the thing to beat, not a pattern to copy. Stage times are recorded per file.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from time import perf_counter
from typing import Any

import cv2
import dlib
import numpy as np
import torch
from PIL import Image, ImageOps

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg")
DETECT_WIDTH = 640
MARGIN = 1.3


def load(model: str) -> tuple[Any, Any, int, int]:
    """The model, its processor, its input size and the index of its fake class (from id2label)."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    net = AutoModelForImageClassification.from_pretrained(model).eval()
    try:
        processor = AutoImageProcessor.from_pretrained(model)
        processor(images=[Image.new("RGB", (8, 8))], return_tensors="pt")
    except (ImportError, ValueError, RuntimeError):  # a fast (torchvision) processor that does not work here
        processor = AutoImageProcessor.from_pretrained(model, use_fast=False)
    size = processor.size  # a dict, or a SizeDict in transformers 5
    size = int(size if isinstance(size, int) else (size["height"] or size["shortest_edge"]))
    fake = [int(i) for i, name in net.config.id2label.items() if "fake" in str(name).lower()]
    if len(fake) != 1:
        raise ValueError(f"cannot tell the fake class from id2label={net.config.id2label}")
    return net, processor, size, fake[0]


def read_frames(path: Path, n: int) -> list[np.ndarray]:
    """RGB frames at ``np.linspace(0, count - 1, n)`` indices, each read by seeking; an image is one frame."""
    if path.suffix.lower() not in VIDEO_EXTS:
        return [np.asarray(Image.open(path).convert("RGB"))]
    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for i in np.linspace(0, max(count - 1, 0), n).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, frame = cap.read()
        if ok:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def face_crop(detector: Any, frame: np.ndarray, size: int) -> Image.Image | None:
    """The largest face found on the 640-wide copy, as a square 1.3× crop (clipped to the frame), bicubic to ``size``."""
    h, w = frame.shape[:2]
    scale = DETECT_WIDTH / w
    small = cv2.resize(frame, (DETECT_WIDTH, int(h * scale)))
    rects = detector(small, 0)
    if len(rects) == 0:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    x0, y0, x1, y1 = r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale
    side = MARGIN * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (max(0, round(cx - side / 2)), max(0, round(cy - side / 2)),
           min(w, round(cx + side / 2)), min(h, round(cy + side / 2)))
    return Image.fromarray(frame).crop(box).resize((size, size), Image.BICUBIC)


def predict_file(path: Path, n_frames: int, tta: str, net: Any, processor: Any, size: int, fake: int,
                 detector: Any, times: dict[str, float]) -> dict[str, Any]:
    """P(fake) and label of one file; adds its seconds to ``times`` (decode, detect_crop, processor, model)."""
    t0 = perf_counter()
    frames = read_frames(path, n_frames)
    t1 = perf_counter()
    crops = [c for c in (face_crop(detector, f, size) for f in frames) if c is not None]
    t2 = perf_counter()
    times["decode_s"] += t1 - t0
    times["detect_crop_s"] += t2 - t1
    if not crops:
        return {"filename": path.name, "prob_fake": 0.0, "label": 0, "frames": len(frames), "crops": 0}
    views = [crops] + ([[ImageOps.mirror(c) for c in crops]] if tta == "flip" else [])
    probs = []
    for view in views:
        t3 = perf_counter()
        pixel_values = processor(images=view, return_tensors="pt")["pixel_values"]
        t4 = perf_counter()
        with torch.no_grad():
            probs.append(torch.softmax(net(pixel_values=pixel_values).logits, dim=-1))
        times["processor_s"] += t4 - t3
        times["model_s"] += perf_counter() - t4
    mean = torch.cat(probs).mean(dim=0)
    return {"filename": path.name, "prob_fake": float(mean[fake]), "label": int(mean.argmax() == fake),
            "frames": len(frames), "crops": len(crops)}


def run(files: list[Path], model: str, n_frames: int = 30, tta: str = "flip") -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The baseline over ``files``: one prediction per file, and seconds per stage (load, decode, detect_crop, …)."""
    if tta not in ("none", "flip"):
        raise ValueError(f"the baseline knows tta 'none' and 'flip', not {tta!r}")
    times: dict[str, float] = defaultdict(float)
    t0 = perf_counter()
    net, processor, size, fake = load(model)
    detector = dlib.get_frontal_face_detector()
    times["load_s"] = perf_counter() - t0
    rows = [predict_file(Path(f), n_frames, tta, net, processor, size, fake, detector, times) for f in files]
    return rows, dict(times)
