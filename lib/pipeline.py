"""Preprocess files into cached crops (decode → detect → crop, in worker processes), then predict files from crops."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import defaultdict
from pathlib import Path
from time import perf_counter
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import aggregate as agg
from . import cache, faces, frames, tta
from .cache import CropEntry, PrepSettings
from .errors import MediaError, ParameterError
from .media import media_kind
from .paths import CROP_CACHE

FALLBACK_PROB = "fallback_prob"  # the fallback a file with no usable crop gets
FALLBACK_EXCEPTION = "exception"  # the same value, for a file whose preprocessing raised an unexpected exception


def resolve_workers(workers: int) -> int:
    """``-1`` → min(cpu − 1, 8) worker processes (at least 1); ``0`` → work in this process."""
    if not isinstance(workers, int) or workers < -1:
        raise ParameterError("workers", workers, "-1 (auto), 0 (no worker processes) or a positive integer")
    return max(1, min((os.cpu_count() or 2) - 1, 8)) if workers == -1 else workers


def _crops_of(fr: frames.FrameRead, prep: PrepSettings) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Detect and crop every frame read; returns the crops and what happened per frame."""
    crops, used, boxes = [], [], []
    for frame, index in zip(fr.frames, fr.indices):
        box = faces.largest(faces.detect(frame, prep.detector, prep.detect_width))
        boxes.append(list(box) if box else None)
        c = faces.crop(frame, box, prep.face_margin, prep.size, prep.no_face)
        if c is not None:
            crops.append(c)
            used.append(index)
    meta = {"frame_indices": used, "boxes": boxes, "faces_found": sum(b is not None for b in boxes),
            "frame_shape": list(fr.frames[0].shape[:2]) if fr.frames else None}
    return crops, meta


def prepare_file(path: Path, prep: PrepSettings) -> CropEntry:
    """Decode, detect and crop one file. A file that cannot be read gives an entry with no crops and its reason."""
    t0 = perf_counter()
    empty = np.zeros((0, prep.size, prep.size, 3), np.uint8)
    base = {"filename": path.name, "kind": media_kind(path), "frames_read": 0, "faces_found": 0,
            "frame_indices": [], "error": "", "note": "", "detect_s": 0.0}
    try:
        fr = frames.read_frames(path, prep.frames)
    except MediaError as e:
        return CropEntry(empty, {**base, "error": str(e), "decode_s": perf_counter() - t0})
    t1 = perf_counter()
    crops, meta = _crops_of(fr, prep)
    meta.update(frames_read=len(fr.frames), note=fr.note, count_reported=fr.count_reported,
                decode_s=t1 - t0, detect_s=perf_counter() - t1)
    return CropEntry(np.stack(crops) if crops else empty, {**base, **meta})


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("boxes",)}


def _failed(path: Path, reason: str, exception: bool = False) -> dict[str, Any]:
    """Metadata of a file whose preprocessing failed (not cached, so a rerun tries again)."""
    return {"filename": path.name, "kind": media_kind(path), "key": None, "cached": False, "n_crops": 0,
            "frames_read": 0, "faces_found": 0, "error": reason, "exception": exception, "note": "",
            "decode_s": 0.0, "detect_s": 0.0}


def _prepare_cached(job: tuple[Path, PrepSettings, Path]) -> dict[str, Any]:
    """Worker: return the cached entry's metadata, computing and caching the entry on a miss."""
    path, prep, cache_dir = job
    try:
        key = cache.entry_key(path, prep)
    except OSError as e:
        return _failed(path, f"cannot read the file: {e}")
    meta = cache.load_meta(cache_dir, key)
    if meta is not None:
        # identical bytes under another name share the entry: the name is this file's
        return {**_summary(meta), "filename": path.name, "key": key, "cached": True, "decode_s": 0.0, "detect_s": 0.0}
    try:
        entry = prepare_file(path, prep)
    except Exception as e:  # one broken file never aborts a run: recorded as its fallback reason, not cached
        return _failed(path, f"{type(e).__name__}: {e}", exception=True)
    entry.meta["n_crops"] = len(entry.crops)
    cache.save(cache_dir, key, entry)
    return {**_summary(entry.meta), "key": key, "cached": False}


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def preprocess(files: Iterable[Path], prep: PrepSettings, cache_dir: Path | None = None, workers: int = -1,
               progress: bool = True) -> list[dict[str, Any]]:
    """Fill the crop cache for ``files``; returns one metadata dict per file, in order (``cached`` tells hits)."""
    files = [Path(f) for f in files]
    cache_dir = Path(cache_dir or CROP_CACHE)
    n = resolve_workers(workers)
    jobs = [(f, prep, cache_dir) for f in files]
    bar = dict(total=len(jobs), desc="preprocess", unit="file", disable=not progress)
    if n == 0 or len(jobs) <= 1:
        return [_prepare_cached(j) for j in tqdm(jobs, **bar)]
    with mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn").Pool(
            min(n, len(jobs)), initializer=_worker_init) as pool:
        return list(tqdm(pool.imap(_prepare_cached, jobs, chunksize=1), **bar))


def stage_times(metas: list[dict[str, Any]]) -> dict[str, float]:
    """Decode and detect seconds spent in this run (summed over workers; cache hits cost none)."""
    return {"decode_s": float(sum(m.get("decode_s", 0.0) for m in metas)),
            "detect_s": float(sum(m.get("detect_s", 0.0) for m in metas)),
            "cache_hits": int(sum(bool(m.get("cached")) for m in metas)),
            "cache_misses": int(sum(not m.get("cached") for m in metas))}


def _views_stream(metas: list[dict[str, Any]], cache_dir: Path, tta_name: str) -> Iterator[tuple[int, np.ndarray]]:
    for i, m in enumerate(metas):
        if m.get("key") and m.get("n_crops", 0) > 0:
            yield i, tta.views(cache.load(cache_dir, m["key"]).crops, tta_name)


def _batches(stream: Iterable[tuple[int, np.ndarray]], batch_size: int
             ) -> Iterator[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Pack crops of consecutive files into batches of exactly ``batch_size`` (the last may be smaller)."""
    pending: list[tuple[int, np.ndarray]] = []
    n_pending = 0
    for owner, arr in stream:
        pending.append((owner, arr))
        n_pending += len(arr)
        while n_pending >= batch_size:
            batch, owners, pending = _take(pending, batch_size)
            n_pending -= batch_size
            yield batch, owners
    if n_pending:
        batch, owners, _ = _take(pending, n_pending)
        yield batch, owners


def _take(pending: list[tuple[int, np.ndarray]], k: int
          ) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, np.ndarray]]]:
    parts, owners, rest = [], [], list(pending)
    while k > 0:
        owner, arr = rest.pop(0)
        part, tail = arr[:k], arr[k:]
        parts.append(part)
        owners.append((owner, len(part)))
        k -= len(part)
        if len(tail):
            rest.insert(0, (owner, tail))
    return np.concatenate(parts), owners, rest


def predict_frames(lm: Any, metas: list[dict[str, Any]], tta_name: str = "none", batch_size: int = 64,
                   cache_dir: Path | None = None, progress: bool = True) -> tuple[dict[int, np.ndarray], float]:
    """Per-frame P(fake) of every file with crops (TTA views averaged per frame), and the seconds spent in the model."""
    from .models import predict_crops

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError("batch_size", batch_size, "an integer ≥ 1 (crops per forward pass)")
    cache_dir, v = Path(cache_dir or CROP_CACHE), tta.n_views(tta_name)
    chunks: dict[int, list[np.ndarray]] = defaultdict(list)
    total = v * sum(m.get("n_crops", 0) for m in metas if m.get("key"))
    model_s = 0.0
    with tqdm(total=total, desc="model", unit="crop", disable=not progress) as bar:
        for batch, owners in _batches(_views_stream(metas, cache_dir, tta_name), batch_size):
            t0 = perf_counter()
            probs = predict_crops(lm, batch)
            model_s += perf_counter() - t0
            start = 0
            for owner, count in owners:
                chunks[owner].append(probs[start:start + count])
                start += count
            bar.update(len(batch))
    return {i: np.concatenate(c).reshape(v, -1).mean(axis=0) for i, c in chunks.items()}, model_s


def _fallback(meta: dict[str, Any], no_face: str, has_probs: bool) -> tuple[str, str]:
    """The fallback a file needed and why ("" when none)."""
    read, found = meta.get("frames_read", 0), meta.get("faces_found", 0)
    if meta.get("exception"):  # a bug or an unforeseen input, not a known kind of bad file
        return FALLBACK_EXCEPTION, meta["error"]
    if meta.get("error"):
        return FALLBACK_PROB, meta["error"]
    if not has_probs:
        return FALLBACK_PROB, f"no face in any of {read} frames" if read else "no frames read"
    if found < read:
        return f"no_face:{no_face}", f"no face in {read - found} of {read} frames"
    return "", ""


def file_predictions(metas: list[dict[str, Any]], frame_probs: dict[int, np.ndarray], aggregate: str = "mean",
                     threshold: float = 0.5, fallback_prob: float = 0.0, no_face: str = "skip") -> pd.DataFrame:
    """One row per file: prob_fake, label and the fallback used (with its reason)."""
    agg.AGGREGATORS.get(aggregate)
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError("threshold", threshold, "a number in [0, 1]")
    if not 0.0 <= fallback_prob <= 1.0:
        raise ParameterError("fallback_prob", fallback_prob, "a number in [0, 1]")
    rows = []
    for i, m in enumerate(metas):
        fallback, reason = _fallback(m, no_face, i in frame_probs)
        p = agg.aggregate(frame_probs[i], aggregate) if i in frame_probs else float(fallback_prob)
        rows.append({"filename": m["filename"], "kind": m.get("kind"), "prob_fake": p, "label": int(p >= threshold),
                     "frames_read": m.get("frames_read", 0), "faces_found": m.get("faces_found", 0),
                     "crops": int(m.get("n_crops", 0)), "fallback": fallback, "reason": reason,
                     "note": m.get("note", "")})
    return pd.DataFrame(rows)


def _entries_bytes(metas: list[dict[str, Any]], cache_dir: Path) -> int:
    return sum(cache.entry_path(cache_dir, m["key"]).stat().st_size for m in metas
               if m.get("key") and cache.entry_path(cache_dir, m["key"]).exists())


def infer_files(files: list[Path], lm: Any, prep: PrepSettings, tta_name: str = "none", batch_size: int = 64,
                cache_dir: Path | None = None, workers: int = -1, chunk_files: int = 0, keep_cache: bool = True,
                progress: bool = True) -> tuple[list[dict[str, Any]], dict[int, np.ndarray], dict[str, float]]:
    """Preprocess and predict ``files`` in chunks of ``chunk_files`` (0: one chunk); the same path for every run.

    With ``keep_cache=False`` each chunk's cache entries are deleted once predicted, so the disk holds at most one
    chunk of crops (the scoring server has a few GB of disk). Returns metas, per-frame probabilities and timings.
    """
    cache_dir = Path(cache_dir or CROP_CACHE)
    step = chunk_files if chunk_files and chunk_files > 0 else max(1, len(files))
    metas: list[dict[str, Any]] = []
    probs: dict[int, np.ndarray] = {}
    times = {"preprocess_s": 0.0, "predict_s": 0.0, "model_s": 0.0, "cache_peak_bytes": 0}
    for start in range(0, len(files), step):
        t0 = perf_counter()
        chunk = preprocess(files[start:start + step], prep, cache_dir, workers, progress)
        t1 = perf_counter()
        chunk_probs, model_s = predict_frames(lm, chunk, tta_name, batch_size, cache_dir, progress)
        times["preprocess_s"] += t1 - t0
        times["predict_s"] += perf_counter() - t1
        times["model_s"] += model_s
        times["cache_peak_bytes"] = max(times["cache_peak_bytes"], _entries_bytes(chunk, cache_dir))
        if not keep_cache:
            for m in chunk:
                if m.get("key"):
                    cache.entry_path(cache_dir, m["key"]).unlink(missing_ok=True)
        probs.update({start + i: p for i, p in chunk_probs.items()})
        metas += chunk
    return metas, probs, {**times, **stage_times(metas)}


def labelled_crops(data_dir: Path, labels_csv: Path, prep: PrepSettings, workers: int = -1,
                   cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All crops of a labelled folder (through the cache), with the label and filename of each crop."""
    from .metrics import read_labels

    labels = read_labels(labels_csv)
    files = [Path(data_dir) / f for f in labels["filename"]]
    metas = preprocess(files, prep, cache_dir, workers)
    cache_dir = Path(cache_dir or CROP_CACHE)
    crops, y, names = [], [], []
    for m, label in zip(metas, labels["label"]):
        if m.get("key") and m.get("n_crops", 0):
            c = cache.load(cache_dir, m["key"]).crops
            crops.append(c)
            y += [int(label)] * len(c)
            names += [m["filename"]] * len(c)
    if not crops:
        raise MediaError(f"no crops could be made from {data_dir}")
    return np.concatenate(crops), np.asarray(y), names


def summarize(predictions: pd.DataFrame, other_files: Iterable[Path] = ()) -> dict[str, Any]:
    """Counts for the run summary: files by kind, fallbacks by kind and by reason, ignored non-media files."""
    fb = predictions[predictions["fallback"] != ""]
    return {"files": int(len(predictions)), "by_kind": predictions["kind"].value_counts().to_dict(),
            "fake_predicted": int(predictions["label"].sum()), "fallback_files": int(len(fb)),
            "fallbacks": fb["fallback"].value_counts().to_dict(), "fallback_reasons": fb["reason"].value_counts().to_dict(),
            "frames_read": int(predictions["frames_read"].sum()), "faces_found": int(predictions["faces_found"].sum()),
            "ignored_files": sorted(Path(f).name for f in other_files)}


def preprocess_table(metas: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per file: what preprocessing found (frames, faces, crops, cache hit, error)."""
    cols = ["filename", "kind", "frames_read", "faces_found", "n_crops", "cached", "error", "note"]
    return pd.DataFrame([{c: m.get(c, "" if c in ("error", "note") else 0) for c in cols} for m in metas], columns=cols)
