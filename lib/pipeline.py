"""Preprocess files into cached crops (decode → detect → crop, in worker processes), then predict files from crops."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import sys
from collections import defaultdict, deque
from pathlib import Path
from time import perf_counter
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from . import aggregate as agg
from . import cache, faces, frames, tta
from .cache import CropEntry, PrepSettings
from .errors import MediaError, ParameterError
from .media import media_kind
from .paths import CROP_CACHE
from .progress import tqdm

FALLBACK_PROB = "fallback_prob"  # the fallback a file with no usable crop gets
FALLBACK_EXCEPTION = "exception"  # the same value, for a file whose preprocessing raised an unexpected exception


def resolve_workers(workers: int) -> int:
    """``-1`` → min(cpu − 1, 8) worker processes (at least 1); ``0`` → work in this process."""
    if not isinstance(workers, int) or workers < -1:
        raise ParameterError("workers", workers, "-1 (auto), 0 (no worker processes) or a positive integer")
    return max(1, min((os.cpu_count() or 2) - 1, 8)) if workers == -1 else workers


def _crops_of(fr: frames.FrameRead, prep: PrepSettings) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Detect (every ``detect_every``-th frame, boxes interpolated between) and crop every frame read."""
    boxes, detections = faces.detect_sequence(fr.frames, prep.detector, prep.detect_width, prep.detect_every,
                                              prep.detect_scale)
    crops, used = [], []
    for frame, index, box in zip(fr.frames, fr.indices, boxes):
        c = faces.crop(frame, box, prep.face_margin, prep.size, prep.no_face)
        if c is not None:
            crops.append(c)
            used.append(index)
    meta = {"frame_indices": used, "boxes": [list(b) if b else None for b in boxes], "detections": detections,
            "faces_found": sum(b is not None for b in boxes),
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
    return {**_prepare_one(path, prep, cache_dir), "worker_rss_mb": _peak_rss_mb()}


def _prepare_one(path: Path, prep: PrepSettings, cache_dir: Path) -> dict[str, Any]:
    try:
        key = cache.entry_key(path, prep)
    except OSError as e:
        return _failed(path, f"cannot read the file: {e}")
    meta = cache.load_meta(cache_dir, key)
    if meta is not None:
        # identical bytes under another name share the entry: the name is this file's
        return {**_summary(meta), "filename": path.name, "key": key, "cached": True, "decode_s": 0.0, "detect_s": 0.0,
                "bytes": cache.entry_path(cache_dir, key).stat().st_size}
    try:
        entry = prepare_file(path, prep)
    except Exception as e:  # one broken file never aborts a run: recorded as its fallback reason, not cached
        return _failed(path, f"{type(e).__name__}: {e}", exception=True)
    entry.meta["n_crops"] = len(entry.crops)
    dest = cache.save(cache_dir, key, entry)
    return {**_summary(entry.meta), "key": key, "cached": False, "bytes": dest.stat().st_size}


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MB); workers report theirs (they are not this process's children)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def _pool(n: int) -> Any:
    """Worker processes started clean (forkserver, else spawn): forking a process whose OpenCV or OpenMP threads are
    running (the model side uses both) can leave a child waiting forever on a lock copied in the locked state."""
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn").Pool(n, initializer=_worker_init)


def prepare_stream(files: Iterable[Path], prep: PrepSettings, cache_dir: Path | None = None, workers: int = -1,
                   ahead: int = 0, progress: bool = True) -> Iterator[dict[str, Any]]:
    """Metadata of each file, in order, as soon as its crops are cached.

    Worker processes run at most ``ahead`` files (0: 4 per worker) beyond the one being consumed, so a consumer
    that is slower (the model) bounds the work, the disk and the memory in flight.
    """
    cache_dir = Path(cache_dir or CROP_CACHE)
    jobs = [(Path(f), prep, cache_dir) for f in files]
    n = resolve_workers(workers)
    with tqdm(total=len(jobs), desc="preprocess", unit="file", disable=not progress) as bar:
        if n == 0 or len(jobs) <= 1:
            for job in jobs:
                yield _prepare_cached(job)
                bar.update()
            return
        with _pool(min(n, len(jobs))) as pool:
            todo, pending = iter(jobs), deque()
            for job in itertools.islice(todo, ahead or 4 * n):
                pending.append(pool.apply_async(_prepare_cached, (job,)))
            while pending:
                meta = pending.popleft().get()
                for job in itertools.islice(todo, 1):
                    pending.append(pool.apply_async(_prepare_cached, (job,)))
                bar.update()
                yield meta


def preprocess(files: Iterable[Path], prep: PrepSettings, cache_dir: Path | None = None, workers: int = -1,
               progress: bool = True) -> list[dict[str, Any]]:
    """Fill the crop cache for ``files``; returns one metadata dict per file, in order (``cached`` tells hits)."""
    files = list(files)
    return list(prepare_stream(files, prep, cache_dir, workers, ahead=len(files), progress=progress))


def stage_times(metas: list[dict[str, Any]]) -> dict[str, float]:
    """Decode and detect seconds spent in this run (summed over workers; cache hits cost none)."""
    return {"decode_s": float(sum(m.get("decode_s", 0.0) for m in metas)),
            "detect_s": float(sum(m.get("detect_s", 0.0) for m in metas)),
            "cache_hits": int(sum(bool(m.get("cached")) for m in metas)),
            "worker_peak_rss_mb": float(max((m.get("worker_rss_mb", 0.0) for m in metas), default=0.0)),
            "cache_misses": int(sum(not m.get("cached") for m in metas))}


def _views_stream(metas: Iterable[dict[str, Any]], cache_dir: Path, tta_name: str, seen: list[dict[str, Any]],
                  keep_cache: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """TTA views of each file's cached crops, in order; every meta passing through is appended to ``seen``."""
    for i, m in enumerate(metas):
        seen.append(m)
        if not m.get("key"):
            continue
        crops = cache.load(cache_dir, m["key"]).crops if m.get("n_crops", 0) > 0 else None
        if not keep_cache:
            cache.entry_path(cache_dir, m["key"]).unlink(missing_ok=True)
        if crops is not None:
            yield i, tta.views(crops, tta_name)


class _Waited:
    """An iterator that sums the seconds its consumer spent waiting for items."""

    def __init__(self, items: Iterable[Any]):
        self.items, self.wait_s = iter(items), 0.0

    def __iter__(self) -> "_Waited":
        return self

    def __next__(self) -> Any:
        t = perf_counter()
        try:
            return next(self.items)
        finally:
            self.wait_s += perf_counter() - t


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


def _run_model(lm: Any, views: Iterable[tuple[int, np.ndarray]], n_views: int, batch_size: int,
               total: int | None, progress: bool) -> tuple[dict[int, np.ndarray], float]:
    """Per-frame P(fake) per file (views averaged) from a stream of views, in fixed-size batches; and model seconds."""
    from .models import predict_crops

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError("batch_size", batch_size, "an integer ≥ 1 (crops per forward pass)")
    chunks: dict[int, list[np.ndarray]] = defaultdict(list)
    model_s = 0.0
    with tqdm(total=total, desc="model", unit="crop", disable=not progress) as bar:
        for batch, owners in _batches(views, batch_size):
            t0 = perf_counter()
            probs = predict_crops(lm, batch)
            model_s += perf_counter() - t0
            start = 0
            for owner, count in owners:
                chunks[owner].append(probs[start:start + count])
                start += count
            bar.update(len(batch))
    return {i: np.concatenate(c).reshape(n_views, -1).mean(axis=0) for i, c in chunks.items()}, model_s


def predict_frames(lm: Any, metas: list[dict[str, Any]], tta_name: str = "none", batch_size: int = 64,
                   cache_dir: Path | None = None, progress: bool = True) -> tuple[dict[int, np.ndarray], float]:
    """Per-frame P(fake) of every cached file (TTA views averaged per frame), and the seconds spent in the model."""
    v = tta.n_views(tta_name)
    total = v * sum(m.get("n_crops", 0) for m in metas if m.get("key"))
    views = _views_stream(metas, Path(cache_dir or CROP_CACHE), tta_name, [])
    return _run_model(lm, views, v, batch_size, total, progress)


def infer_files(files: list[Path], lm: Any, prep: PrepSettings, tta_name: str = "none", batch_size: int = 64,
                cache_dir: Path | None = None, workers: int = -1, keep_cache: bool = True, ahead: int = 0,
                progress: bool = True) -> tuple[list[dict[str, Any]], dict[int, np.ndarray], dict[str, float]]:
    """Preprocess and predict ``files`` with the two overlapping: the one path every run takes (infer, kernels).

    Worker processes decode, detect and cache crops at most ``ahead`` files ahead of the model, which packs the
    crops (and TTA views) of consecutive files into fixed ``batch_size`` batches. With ``keep_cache=False`` a file's
    cache entry is deleted once read, so the disk holds at most the look-ahead's crops. Returns metas, per-frame
    probabilities and timings: ``preprocess_s`` is the time the model side waited for crops, ``predict_s`` the rest
    of the wall time, ``decode_s``/``detect_s`` the CPU seconds summed over workers.
    """
    tta.TTA.get(tta_name)
    cache_dir = Path(cache_dir or CROP_CACHE)
    stream = _Waited(prepare_stream(files, prep, cache_dir, workers, ahead, progress))
    metas: list[dict[str, Any]] = []
    t0 = perf_counter()
    views = _views_stream(stream, cache_dir, tta_name, metas, keep_cache)
    probs, model_s = _run_model(lm, views, tta.n_views(tta_name), batch_size, None, progress)
    wall = perf_counter() - t0
    sizes = sorted((m.get("bytes", 0) for m in metas), reverse=True)
    peak = sum(sizes) if keep_cache else sum(sizes[:(ahead or 4 * max(1, resolve_workers(workers))) + 1])
    return metas, probs, {"preprocess_s": stream.wait_s, "predict_s": wall - stream.wait_s, "model_s": model_s,
                          "cache_peak_bytes": peak, **stage_times(metas)}


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
