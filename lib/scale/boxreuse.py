"""Box reuse (training preprocessing, as the DFDC winners did): faces are detected once on an original clip and its
boxes reused for every fake made from it, instead of running the detector on every frame of every fake.

A fake (label 1) whose ``origin`` names exactly one real (label 0) of its dataset is read to the same frames; when
it has the original's frame count, frame size and sampled frames, one detection on a key frame checks that the
reused box still holds a face (IoU with the detected face ≥ ``MIN_IOU``), and its crops are cut with the original's
boxes. Anything else (another geometry, a failed check, an original with no face or no original) detects as usual.
Each fake's record says which: ``boxes_from`` names the original, ``box_reuse`` holds the check or the reason.

Reused crops have their own cache key (the fake's content, the settings and the original's entry), so a run without
reuse never reads them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pandas as pd

from .. import cache, engines, faces, frames, pipeline
from ..cache import CropEntry
from ..engines import FILE_TIMEOUT, Engine, Job, failed_record, peak_rss_mb
from ..errors import MediaError
from ..filerecord import FileRecord
from ..media import media_kind
from ..options import PrepSettings

MIN_IOU = 0.5  # the face detected on the fake's key frame must overlap the reused box at least this much
NO_ORIGINAL = "no original among the labelled reals"


def originals(table: pd.DataFrame) -> tuple[dict[int, int], dict[int, str]]:
    """Fake row → its original's row (the one real of the same ``origin``), and fake row → why it has none.

    ``table`` is ``lib.training.data.file_table``'s (``origin`` already prefixed with the dataset)."""
    reals = table[table["label"] == 0].groupby("origin").groups
    found, missing = {}, {}
    for i in np.flatnonzero(table["label"].to_numpy() == 1):
        rows = list(reals.get(table["origin"].iloc[i], []))
        if len(rows) == 1:
            found[int(i)] = int(rows[0])
        else:
            missing[int(i)] = NO_ORIGINAL if not rows else f"{len(rows)} reals share its origin"
    return found, missing


def reuse_key(path: Path, prep: PrepSettings, original_key: str) -> str:
    """Cache key of a fake's crops cut with the boxes of the original cached as ``original_key``."""
    text = f"{cache.file_digest(path)}|{media_kind(path)}|{prep.key_text()}|boxes:{original_key}"
    return hashlib.sha256(text.encode()).hexdigest()


def iou(a: Any, b: Any) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _geometry(fr: frames.FrameRead, original: FileRecord) -> str:
    """Why the fake's frames do not match the original's ("" when they do)."""
    shape = list(fr.frames[0].shape[:2]) if fr.frames else None
    if len(fr.frames) != original.frames_read:
        return f"frames read differ ({len(fr.frames)}, the original {original.frames_read})"
    if shape != list(original.frame_shape or []):
        return f"frame size differs ({shape}, the original {original.frame_shape})"
    if fr.count_reported != original.count_reported or not set(original.frame_indices) <= set(fr.indices):
        return f"frame count differs ({fr.count_reported}, the original {original.count_reported})"
    return ""


def _check(fr: frames.FrameRead, boxes: list[Any], prep: PrepSettings) -> tuple[bool, str]:
    """Detect on the middle frame that has a reused box: does the face found there match it?"""
    keyed = [p for p, b in enumerate(boxes) if b is not None]
    p = keyed[len(keyed) // 2]
    found = faces.largest(faces.detect(fr.frames[p], prep.detector, prep.detect_width))
    if found is None:
        return False, f"check failed: no face on frame {fr.indices[p]} where the original has one"
    overlap = iou(found, boxes[p])
    if overlap < MIN_IOU:
        return False, f"check failed: IoU {overlap:.2f} < {MIN_IOU} on frame {fr.indices[p]}"
    return True, f"reused: IoU {overlap:.2f} on frame {fr.indices[p]}"


def reuse_entry(path: Path, prep: PrepSettings, original: FileRecord) -> tuple[CropEntry | None, str]:
    """The fake's crops cut with the original's boxes after the check, or None and why it must be detected."""
    if not any(b is not None for b in original.boxes):
        return None, "the original has no face box" if original.key else "the original could not be read"
    t0 = perf_counter()
    try:
        fr = frames.read_frames(path, prep.frames)
    except MediaError as e:
        return None, f"unreadable ({e})"
    why = _geometry(fr, original)
    if why:
        return None, why
    t1 = perf_counter()
    ok, text = _check(fr, original.boxes, prep)
    if not ok:
        return None, text
    record = FileRecord(path.name, media_kind(path), frames_read=len(fr.frames), note=fr.note,
                        count_reported=fr.count_reported, frame_shape=list(original.frame_shape), detections=1,
                        boxes=[list(b) if b else None for b in original.boxes], boxes_from=original.filename,
                        box_reuse=text)
    crops = []
    for frame, index, box in zip(fr.frames, fr.indices, original.boxes):
        c = faces.crop(frame, tuple(box) if box else None, prep.face_margin, prep.size, prep.no_face)
        if c is not None:
            crops.append(c)
            record.frame_indices.append(index)
    record.faces_found, record.n_crops = sum(b is not None for b in original.boxes), len(crops)
    record.decode_s, record.detect_s = t1 - t0, perf_counter() - t1
    return CropEntry(np.stack(crops) if crops else np.zeros((0, prep.size, prep.size, 3), np.uint8), record), text


def prepare_reused(job: Job) -> FileRecord:
    """Worker: a fake's record (``job.original``: its original's), its crops cut with the original's boxes (cached
    under ``reuse_key``), or detected as usual with the reason in ``box_reuse``."""
    path, prep, cache_dir, original = job.path, job.prep, job.cache_dir, job.original
    try:
        key = reuse_key(path, prep, original.key or "")
    except OSError as e:
        return failed_record(path, f"cannot read the file: {e}")
    hit = cache.load_record(cache_dir, key) if original.key else None
    if hit is not None:
        return hit.but(filename=path.name, key=key, cached=True, decode_s=0.0, detect_s=0.0,
                       bytes=cache.entry_path(cache_dir, key).stat().st_size)
    try:
        entry, why = reuse_entry(path, prep, original)
    except Exception as e:  # as in lib.pipeline: one broken file never aborts a run
        return failed_record(path, f"{type(e).__name__}: {e}", exception=True)
    if entry is None:
        return pipeline.prepare_cached(Job(path, prep, cache_dir)).but(box_reuse=f"detected: {why}")
    dest = cache.save(cache_dir, key, entry)
    return entry.record.but(key=key, cached=False, bytes=dest.stat().st_size, worker_rss_mb=peak_rss_mb())


def preprocess(table: pd.DataFrame, prep: PrepSettings, cache_dir: Path | None = None,
               workers: int | Engine = -1, progress: bool = True, cluster: str = "",
               file_timeout: float = FILE_TIMEOUT) -> list[FileRecord]:
    """Records of ``table``'s files (``file_table`` rows), in order: reals and fakes without an original detected as
    usual first, then every fake with an original through ``prepare_reused``; both rounds on one engine
    (``lib.engines.opened``: ``cluster`` and ``workers``)."""
    cache_dir = Path(cache_dir or pipeline.CROP_CACHE)
    paths = [Path(p) for p in table["path"]]
    pairs, missing = originals(table)
    first = [i for i in range(len(paths)) if i not in pairs]
    with engines.opened(cluster, workers, file_timeout) as engine:
        done = pipeline.preprocess([paths[i] for i in first], prep, cache_dir, engine, progress)
        records: dict[int, FileRecord] = dict(zip(first, done))
        for i, why in missing.items():
            records[i] = records[i].but(box_reuse=f"detected: {why}")
        jobs = [Job(paths[i], prep, cache_dir, original=records[o]) for i, o in pairs.items()]
        records.update(zip(pairs, engine.stream(prepare_reused, jobs, progress=progress, desc="reuse boxes")))
    return [records[i] for i in range(len(paths))]


def summary(records: list[FileRecord]) -> dict[str, Any]:
    """For the run record: fakes whose boxes were reused, fakes detected and why, detector calls made."""
    asked = [r for r in records if r.box_reuse]
    detected = [r.box_reuse.split(": ", 1)[1].split(" (")[0] for r in asked if r.box_reuse.startswith("detected")]
    detected = [d if not d.startswith("check failed") else "check failed" for d in detected]
    return {"fakes": len(asked), "reused": sum(bool(r.boxes_from) for r in asked), "detected": len(detected),
            "detected_because": dict(Counter(detected)), "detector_calls": int(sum(r.detections for r in records if not r.cached)),
            "cached": int(sum(r.cached for r in asked))}
