"""On-disk crop cache: one entry per (file content, preprocessing settings), so later runs skip decode and detect."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .filerecord import FileRecord
from .media import media_kind
from .options import PrepSettings


@dataclass
class CropEntry:
    """The crops of one file and how they were obtained."""

    crops: np.ndarray  # (n, S, S, 3) uint8 RGB
    record: FileRecord


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
            np.savez(f, crops=entry.crops, meta=np.array(json.dumps(entry.record.to_dict())))
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def load_record(cache_dir: Path, key: str) -> FileRecord | None:
    """The entry's record without reading its crops, or None when it is not cached."""
    p = entry_path(cache_dir, key)
    if not p.exists():
        return None
    with np.load(p) as z:
        return FileRecord.from_dict(json.loads(str(z["meta"])))


def load(cache_dir: Path, key: str) -> CropEntry:
    """The cached entry ``key`` (crops and record)."""
    with np.load(entry_path(cache_dir, key)) as z:
        return CropEntry(crops=z["crops"], record=FileRecord.from_dict(json.loads(str(z["meta"]))))


def load_crops(cache_dir: Path, record: FileRecord) -> np.ndarray:
    """The cached crops of a file's record (N, S, S, 3)."""
    return load(cache_dir, record.key).crops
