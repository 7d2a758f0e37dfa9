"""On-disk crop cache: one entry per (file content, preprocessing settings), so later runs skip decode and detect."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ParameterError
from .faces import DETECT_SCALES, DETECTORS, NO_FACE
from .media import media_kind

FORMAT = 1  # bump when the crop code changes what an entry holds


@dataclass(frozen=True)
class PrepSettings:
    """Everything that decides the crops of a file; any change gives a different cache key."""

    frames: int = 30
    face_margin: float = 1.3
    detect_width: int = 640
    detector: str = "dlib_hog"
    size: int = 224
    no_face: str = "skip"
    detect_every: int = 1  # run the detector on every k-th sampled frame; boxes in between are interpolated
    detect_scale: str = "fixed"  # adaptive: detect at a width fitted to the face found before (faces.DETECT_SCALES)

    def __post_init__(self) -> None:
        if not isinstance(self.frames, int) or self.frames <= 0:
            raise ParameterError("frames", self.frames, "an integer ≥ 1")
        if not self.face_margin >= 1.0:
            raise ParameterError("face_margin", self.face_margin, "a number ≥ 1.0 (crop side / face box side)")
        if not isinstance(self.detect_width, int) or self.detect_width < 64:
            raise ParameterError("detect_width", self.detect_width, "an integer ≥ 64 (pixels)")
        if not isinstance(self.size, int) or self.size < 8:
            raise ParameterError("size", self.size, "an integer ≥ 8 (pixels)")
        DETECTORS.get(self.detector)
        if self.no_face not in NO_FACE:
            raise ParameterError("no_face", self.no_face, NO_FACE)
        if not isinstance(self.detect_every, int) or self.detect_every < 1:
            raise ParameterError("detect_every", self.detect_every, "an integer ≥ 1 (1: detect on every frame)")
        if self.detect_scale not in DETECT_SCALES:
            raise ParameterError("detect_scale", self.detect_scale, DETECT_SCALES)

    def key_text(self) -> str:
        defaults = {"detect_every": 1, "detect_scale": "fixed"}  # left out at their defaults: old keys stay valid
        fields = {k: v for k, v in asdict(self).items() if not (k in defaults and v == defaults[k])}
        return json.dumps({"format": FORMAT, **fields}, sort_keys=True)


@dataclass
class CropEntry:
    """The crops of one file and how they were obtained."""

    crops: np.ndarray  # (n, S, S, 3) uint8 RGB
    meta: dict[str, Any] = field(default_factory=dict)  # frame_indices, frames_read, faces_found, error, note, timings


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def entry_key(path: Path, prep: PrepSettings) -> str:
    """Cache key of ``path`` under ``prep``: content digest, media kind (from the extension) and settings."""
    text = f"{file_digest(path)}|{media_kind(path)}|{prep.key_text()}"
    return hashlib.sha256(text.encode()).hexdigest()


def entry_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.npz"


def save(cache_dir: Path, key: str, entry: CropEntry) -> Path:
    """Write an entry atomically (a temporary file renamed into place)."""
    dest = entry_path(cache_dir, key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, crops=entry.crops, meta=np.array(json.dumps(entry.meta)))
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def load_meta(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """The entry's metadata without reading its crops, or None when it is not cached."""
    p = entry_path(cache_dir, key)
    if not p.exists():
        return None
    with np.load(p) as z:
        return json.loads(str(z["meta"]))


def load(cache_dir: Path, key: str) -> CropEntry:
    """The cached entry ``key`` (crops and metadata)."""
    with np.load(entry_path(cache_dir, key)) as z:
        return CropEntry(crops=z["crops"], meta=json.loads(str(z["meta"])))
