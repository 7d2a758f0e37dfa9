"""Preprocess files into cached crops (decode → detect → crop, in worker processes), then predict files from crops."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import sys
from collections import defaultdict, deque
from pathlib import Path
from time import perf_counter
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import aggregate as agg
from . import cache, checks, faces, frames, tta
from .cache import CropEntry
from .errors import MediaError
from .filerecord import SUMMARY_COLUMNS, FileRecord
from .media import media_kind
from .options import PrepSettings
from .paths import CROP_CACHE

FALLBACK_PROB = "fallback_prob"  # the fallback a file with no usable crop gets
FALLBACK_EXCEPTION = "exception"  # the same value, for a file whose preprocessing raised an unexpected exception


def _crops_of(fr: frames.FrameRead, prep: PrepSettings, record: FileRecord) -> list[np.ndarray]:
    """Detect (every ``detect_every``-th frame, boxes interpolated between) and crop every frame read; fills
    ``record``'s boxes, detections, faces found and kept frame indices."""
    boxes, record.detections = faces.detect_sequence(fr.frames, prep.detector, prep.detect_width, prep.detect_every,
                                                     prep.detect_scale)
    crops = []
    for frame, index, box in zip(fr.frames, fr.indices, boxes):
        c = faces.crop(frame, box, prep.face_margin, prep.size, prep.no_face)
        if c is not None:
            crops.append(c)
            record.frame_indices.append(index)
    record.boxes = [list(b) if b else None for b in boxes]
    record.faces_found = sum(b is not None for b in boxes)
    record.frame_shape = list(fr.frames[0].shape[:2]) if fr.frames else None
    return crops


def prepare_file(path: Path, prep: PrepSettings) -> CropEntry:
    """Decode, detect and crop one file. A file that cannot be read gives an entry with no crops and its reason."""
    t0 = perf_counter()
    empty = np.zeros((0, prep.size, prep.size, 3), np.uint8)
    record = FileRecord(path.name, media_kind(path))
    try:
        fr = frames.read_frames(path, prep.frames)
    except MediaError as e:
        record.error, record.decode_s = str(e), perf_counter() - t0
        return CropEntry(empty, record)
    t1 = perf_counter()
    crops = _crops_of(fr, prep, record)
    record.frames_read, record.note, record.count_reported = len(fr.frames), fr.note, fr.count_reported
    record.decode_s, record.detect_s, record.n_crops = t1 - t0, perf_counter() - t1, len(crops)
    return CropEntry(np.stack(crops) if crops else empty, record)


def _failed(path: Path, reason: str, exception: bool = False) -> FileRecord:
    """The record of a file whose preprocessing failed (not cached, so a rerun tries again)."""
    return FileRecord(path.name, media_kind(path), error=reason, exception=exception)


def _prepare_cached(job: tuple[Path, PrepSettings, Path]) -> FileRecord:
    """Worker: the file's record, its crops computed and cached on a miss."""
    path, prep, cache_dir = job
    record = _prepare_one(path, prep, cache_dir)
    record.worker_rss_mb = _peak_rss_mb()
    return record


def _prepare_one(path: Path, prep: PrepSettings, cache_dir: Path) -> FileRecord:
    try:
        key = cache.entry_key(path, prep)
    except OSError as e:
        return _failed(path, f"cannot read the file: {e}")
    hit = cache.load_record(cache_dir, key)
    if hit is not None:
        # identical bytes under another name share the entry: the name is this file's
        return hit.but(filename=path.name, key=key, cached=True, decode_s=0.0, detect_s=0.0,
                       bytes=cache.entry_path(cache_dir, key).stat().st_size)
    try:
        entry = prepare_file(path, prep)
    except Exception as e:  # one broken file never aborts a run: recorded as its fallback reason, not cached
        return _failed(path, f"{type(e).__name__}: {e}", exception=True)
    dest = cache.save(cache_dir, key, entry)
    return entry.record.but(key=key, cached=False, bytes=dest.stat().st_size)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MB); workers report theirs (they are not this process's children)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def _failed_job(job: tuple[Path, PrepSettings, Path], reason: str) -> FileRecord:
    """The record of a job that failed on every try (its worker died each time): its file gets the fallback."""
    return _failed(job[0], reason, exception=True)


def slots(workers: int | Any) -> int:
    """Files preprocessed at once: the worker processes, or an engine's (``lib.cluster``) worker threads."""
    return max(1, checks.workers(workers)) if isinstance(workers, int) else workers.slots


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def _pool(n: int) -> Any:
    """Worker processes started clean (forkserver, else spawn): forking a process whose OpenCV or OpenMP threads are
    running (the model side uses both) can leave a child waiting forever on a lock copied in the locked state."""
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn").Pool(n, initializer=_worker_init)


def prepare_stream(files: Iterable[Path], prep: PrepSettings, cache_dir: Path | None = None,
                   workers: int | Any = -1, ahead: int = 0, progress: bool = True) -> Iterator[FileRecord]:
    """The record of each file, in order, as soon as its crops are cached. ``workers``: processes (-1 auto, 0 none),
    or an engine of ``lib.cluster`` that deals the files out as tasks on a Dask cluster.

    Worker processes run at most ``ahead`` files (0: 4 per worker) beyond the one being consumed, so a consumer
    that is slower (the model) bounds the work, the disk and the memory in flight.
    """
    cache_dir = Path(cache_dir or CROP_CACHE)
    jobs = [(Path(f), prep, cache_dir) for f in files]
    if not isinstance(workers, int):  # an engine of lib.cluster: the files are tasks on a Dask cluster
        yield from workers.stream(_prepare_cached, jobs, ahead, progress, failed=_failed_job)
        return
    n = checks.workers(workers)
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
                record = pending.popleft().get()
                for job in itertools.islice(todo, 1):
                    pending.append(pool.apply_async(_prepare_cached, (job,)))
                bar.update()
                yield record


def preprocess(files: Iterable[Path], prep: PrepSettings, cache_dir: Path | None = None,
               workers: int | Any = -1, progress: bool = True) -> list[FileRecord]:
    """Fill the crop cache for ``files``; returns one record per file, in order (``cached`` tells hits)."""
    files = list(files)
    return list(prepare_stream(files, prep, cache_dir, workers, ahead=len(files), progress=progress))


def stage_times(records: list[FileRecord]) -> dict[str, float]:
    """Decode and detect seconds spent in this run (summed over workers; cache hits cost none)."""
    return {"decode_s": float(sum(r.decode_s for r in records)),
            "detect_s": float(sum(r.detect_s for r in records)),
            "cache_hits": int(sum(r.cached for r in records)),
            "worker_peak_rss_mb": float(max((r.worker_rss_mb for r in records), default=0.0)),
            "cache_misses": int(sum(not r.cached for r in records))}


def _views_stream(records: Iterable[FileRecord], cache_dir: Path, views: list[tta.View], seen: list[FileRecord],
                  keep_cache: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """TTA views of each file's cached crops, in order; every record passing through is appended to ``seen``."""
    for i, r in enumerate(records):
        seen.append(r)
        if not r.key:
            continue
        crops = cache.load_crops(cache_dir, r) if r.n_crops > 0 else None
        if not keep_cache:
            cache.entry_path(cache_dir, r.key).unlink(missing_ok=True)
        if crops is not None:
            yield i, tta.apply(crops, views)


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


def predict_frames(lm: Any, records: list[FileRecord], tta_name: str = "none", batch_size: int = 64,
                   cache_dir: Path | None = None, progress: bool = True) -> tuple[dict[int, np.ndarray], float]:
    """Per-frame P(fake) of every cached file (TTA views averaged per frame), and the seconds spent in the model."""
    views = tta.get(tta_name)
    total = len(views) * sum(r.n_crops for r in records if r.key)
    stream = _views_stream(records, Path(cache_dir or CROP_CACHE), views, [])
    return _run_model(lm, stream, len(views), batch_size, total, progress)


def infer_files(files: list[Path], lm: Any, prep: PrepSettings, tta_name: str = "none", batch_size: int = 64,
                cache_dir: Path | None = None, workers: int | Any = -1, keep_cache: bool = True, ahead: int = 0,
                progress: bool = True) -> tuple[list[FileRecord], dict[int, np.ndarray], dict[str, float]]:
    """Preprocess and predict ``files`` with the two overlapping.

    Worker processes decode, detect and cache crops at most ``ahead`` files ahead of the model, which packs the
    crops (and TTA views) of consecutive files into fixed ``batch_size`` batches. With ``keep_cache=False`` a file's
    cache entry is deleted once read, so the disk holds at most the look-ahead's crops. Returns records, per-frame
    probabilities and timings: ``preprocess_s`` is the time the model side waited for crops, ``predict_s`` the rest
    of the wall time, ``decode_s``/``detect_s`` the CPU seconds summed over workers.
    """
    views = tta.get(tta_name)
    cache_dir = Path(cache_dir or CROP_CACHE)
    stream = _Waited(prepare_stream(files, prep, cache_dir, workers, ahead, progress))
    records: list[FileRecord] = []
    t0 = perf_counter()
    probs, model_s = _run_model(lm, _views_stream(stream, cache_dir, views, records, keep_cache), len(views),
                                batch_size, None, progress)
    wall = perf_counter() - t0
    sizes = sorted((r.bytes for r in records), reverse=True)
    peak = sum(sizes) if keep_cache else sum(sizes[:(ahead or 4 * slots(workers)) + 1])
    return records, probs, {"preprocess_s": stream.wait_s, "predict_s": wall - stream.wait_s, "model_s": model_s,
                            "cache_peak_bytes": peak, **stage_times(records)}


def _fallback(record: FileRecord, no_face: str, has_probs: bool) -> tuple[str, str]:
    """The fallback a file needed and why ("" when none)."""
    read, found = record.frames_read, record.faces_found
    if record.exception:  # a bug or an unforeseen input, not a known kind of bad file
        return FALLBACK_EXCEPTION, record.error
    if record.error:
        return FALLBACK_PROB, record.error
    if not has_probs:
        return FALLBACK_PROB, f"no face in any of {read} frames" if read else "no frames read"
    if found < read:
        return f"no_face:{no_face}", f"no face in {read - found} of {read} frames"
    return "", ""


def file_predictions(records: list[FileRecord], frame_probs: dict[int, np.ndarray], aggregate: str = "mean",
                     threshold: float = 0.5, fallback_prob: float = 0.0, no_face: str = "skip") -> pd.DataFrame:
    """One row per file: prob_fake, label and the fallback used (with its reason)."""
    combine = agg.AGGREGATORS.get(aggregate)
    rows = []
    for i, r in enumerate(records):
        fallback, reason = _fallback(r, no_face, i in frame_probs)
        p = combine(np.asarray(frame_probs[i], np.float64)) if i in frame_probs else float(fallback_prob)
        rows.append({"filename": r.filename, "kind": r.kind, "prob_fake": p, "label": int(p >= threshold),
                     "frames_read": r.frames_read, "faces_found": r.faces_found, "crops": r.n_crops,
                     "fallback": fallback, "reason": reason, "note": r.note})
    return pd.DataFrame(rows)


def labelled_crops(data_dir: Path, labels_csv: Path, prep: PrepSettings, workers: int = -1,
                   cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All crops of a labelled folder (through the cache), with the label and filename of each crop."""
    from .metrics import read_labels

    labels = read_labels(labels_csv)
    files = [Path(data_dir) / f for f in labels["filename"]]
    records = preprocess(files, prep, cache_dir, workers)
    cache_dir = Path(cache_dir or CROP_CACHE)
    crops, y, names = [], [], []
    for r, label in zip(records, labels["label"]):
        if r.has_crops:
            c = cache.load_crops(cache_dir, r)
            crops.append(c)
            y += [int(label)] * len(c)
            names += [r.filename] * len(c)
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


def preprocess_table(records: list[FileRecord]) -> pd.DataFrame:
    """One row per file: what preprocessing found (frames, faces, crops, cache hit, error)."""
    return pd.DataFrame([{c: getattr(r, c) for c in SUMMARY_COLUMNS} for r in records], columns=list(SUMMARY_COLUMNS))
