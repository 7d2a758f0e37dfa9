"""On-disk crop cache: one entry per (file content, preprocessing settings), so later runs skip decode and detect.

Entries are written atomically (``lib.atomic``). An entry that fails to load (truncated, flipped bytes, a crop count
or size that does not match its record) is moved aside to ``<cache>/corrupt/`` by ``lookup`` and reported, so that it
is recomputed instead of failing this run and every later one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_atomic
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


def entry_size(cache_dir: Path, key: str) -> int:
    """Bytes of the entry ``key`` on disk (0 when it is gone)."""
    try:
        return entry_path(cache_dir, key).stat().st_size
    except FileNotFoundError:
        return 0


def save(cache_dir: Path, key: str, entry: CropEntry) -> Path:
    """Write an entry atomically (a temporary file renamed into place); a full disk raises ``DiskFullError``."""
    meta = np.array(json.dumps(entry.record.to_dict()))
    return write_atomic(entry_path(cache_dir, key), lambda f: np.savez(f, crops=entry.crops, meta=meta),
                        size_hint=entry.crops.nbytes + meta.nbytes + 1024)


def load_record(cache_dir: Path, key: str) -> FileRecord | None:
    """The entry's record without reading its crops, or None when it is not cached."""
    p = entry_path(cache_dir, key)
    if not p.exists():
        return None
    with np.load(p) as z:
        return FileRecord.from_dict(json.loads(str(z["meta"])))


# what np.load and the record's JSON raise on a damaged entry (truncated, flipped bytes, a member missing)
CORRUPT = (zipfile.BadZipFile, zlib.error, ValueError, KeyError, EOFError, OSError)
QUARANTINE = "corrupt"  # subfolder of the cache where entries that failed to load are moved


def lookup(cache_dir: Path, key: str, size: int) -> tuple[CropEntry | None, str]:
    """The entry ``key`` read in full and checked (crop count and ``size``), or None on a miss.

    An entry that fails is moved aside (``quarantine``) and returned as a miss with the report naming it."""
    try:
        entry = load(cache_dir, key)
    except FileNotFoundError:
        return None, ""
    except CORRUPT as e:
        return None, quarantine(cache_dir, key, f"{type(e).__name__}: {e}")
    shape = entry.crops.shape
    if shape[0] != entry.record.n_crops or (shape[0] and tuple(shape[1:]) != (size, size, 3)):
        why = f"it holds crops of shape {shape}, its record says {entry.record.n_crops} crops of {size}x{size}"
        return None, quarantine(cache_dir, key, why)
    return entry, ""


def quarantine(cache_dir: Path, key: str, why: str) -> str:
    """Move a damaged entry to ``<cache_dir>/corrupt/``; returns the report naming it and where it went."""
    src = entry_path(cache_dir, key)
    dest = Path(cache_dir) / QUARANTINE / f"{key}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}.npz"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        moved = f"moved to {dest}"
    except FileNotFoundError:
        moved = "already moved aside by another run"
    except OSError as e:
        moved = f"could not be moved aside ({e})"
    return f"cache entry {src} failed to load ({why}); {moved}"


def load(cache_dir: Path, key: str) -> CropEntry:
    """The cached entry ``key`` (crops and record)."""
    with np.load(entry_path(cache_dir, key)) as z:
        return CropEntry(crops=z["crops"], record=FileRecord.from_dict(json.loads(str(z["meta"]))))


def load_crops(cache_dir: Path, record: FileRecord) -> np.ndarray:
    """The cached crops of a file's record (N, S, S, 3)."""
    return load(cache_dir, record.key).crops
