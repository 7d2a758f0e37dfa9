"""Preprocess files into cached crops (decode → detect → crop, on an engine of ``lib.engines``), then predict files
from crops."""

from __future__ import annotations

import shutil
import sys
from collections import defaultdict
from pathlib import Path
from time import perf_counter
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from . import aggregate as agg
from . import cache, engines, faces, frames, media, names, tta
from .cache import CropEntry
from .engines import FILE_TIMEOUT, Engine, Job, failed_record, peak_rss_mb
from .errors import DiskFullError, MediaError, size_text
from .filerecord import SUMMARY_COLUMNS, FileRecord
from .media import media_kind
from .options import PrepSettings
from .paths import CROP_CACHE
from .progress import tqdm

FALLBACK_PROB = "fallback_prob"  # the fallback a file with no usable crop gets
FALLBACK_EXCEPTION = "exception"  # the same value, for a file whose preprocessing raised an unexpected exception
FALLBACK_TIMEOUT = "timeout"  # the same value, for a file that ran past its time limit (file_timeout, lib.engines)
DISK_ADVICE = ("Free space there, or set cache_dir to a folder on a bigger disk, and rerun: files already cached are "
               "not recomputed.")
_FILE = "{file}"  # stands for the file's path in the texts of a cached record (identical bytes under other names)


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
    record = FileRecord(names.escape(path.name), media_kind(path))
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


def prepare_cached(job: Job) -> FileRecord:
    """Worker: the file's record, its crops computed and cached on a miss."""
    record = _prepare_one(job.path, job.prep, job.cache_dir, job.follow_links)
    record.worker_rss_mb = peak_rss_mb()
    return record


def _prepare_one(path: Path, prep: PrepSettings, cache_dir: Path, follow_links: bool = True) -> FileRecord:
    """The file's record: a cache hit, else decoded, detected, cropped and cached. An entry that fails to load is
    moved aside and recomputed; a link out of the data folder is refused when ``follow_links`` is False."""
    target = media.link_outside(path)
    if target is not None and not follow_links:
        why = f"a link to {target}, outside the data folder: not read (follow_links=False)"
        return _for_file(failed_record(path, why), path, target, follow_links)
    try:
        key = cache.entry_key(path, prep)
    except OSError as e:
        return _for_file(_portable(failed_record(path, f"cannot read the file: {e}"), path), path, target, follow_links)
    hit, repair = cache.lookup(cache_dir, key, prep.size)
    if hit is not None:  # identical bytes under another name share the entry: names and texts are this file's
        record = hit.record.but(key=key, cached=True, decode_s=0.0, detect_s=0.0,
                                bytes=cache.entry_size(cache_dir, key))
        return _for_file(record, path, target, follow_links)
    try:
        entry = prepare_file(path, prep)
    except Exception as e:  # one broken file never aborts a run: recorded as its fallback reason, not cached
        failed = _portable(failed_record(path, f"{type(e).__name__}: {e}", exception=True), path)
        return _for_file(failed, path, target, follow_links, repair)
    entry.record = _portable(entry.record, path)
    dest = cache.save(cache_dir, key, entry)  # a full disk raises DiskFullError: the run stops (see infer_files)
    return _for_file(entry.record.but(key=key, cached=False, bytes=dest.stat().st_size), path, target, follow_links,
                     repair)


def _portable(record: FileRecord, path: Path) -> FileRecord:
    """The record with its path written as ``{file}`` in its texts, so that a hit under another name names that one."""
    def sub(text: str) -> str:
        for form in (str(path), repr(str(path))[1:-1]):
            text = text.replace(form, _FILE)
        return text

    return record.but(error=sub(record.error), note=sub(record.note))


def _for_file(record: FileRecord, path: Path, target: Path | None, follow_links: bool, repair: str = "") -> FileRecord:
    """The record as this run reports it: this file's (escaped) name in its texts, its link and cache repair."""
    name = names.escape(path.name)
    note = record.note.replace(_FILE, name)
    if target is not None and follow_links:
        note = "; ".join(filter(None, [note, f"a link to {target}, outside the data folder: followed"]))
    link = "" if target is None else "followed" if follow_links else "refused"
    return record.but(filename=name, name_escaped=not names.is_utf8(path.name), error=record.error.replace(_FILE, name),
                      note=note, link=link, cache_repair=f"{repair}; recomputed" if repair else "")


def prepare_stream(files: Iterable[Path], prep: PrepSettings, cache_dir: Path | None = None,
                   workers: int | Engine = -1, ahead: int = 0, progress: bool = True, follow_links: bool = True,
                   cluster: str = "", file_timeout: float = FILE_TIMEOUT) -> Iterator[FileRecord]:
    """The record of each file, in order, as soon as its crops are cached, on the engine (``lib.engines``) that
    ``cluster`` and ``workers`` name (processes: -1 auto, 0 none), or on ``workers`` when it is an engine already.

    At most ``ahead`` files (0: 4 per worker) run beyond the one being consumed, so a consumer that is slower (the
    model) bounds the work, the disk and the memory in flight. A file past its time limit (``file_timeout``) or whose
    worker dies on every try gets its fallback record. A cache entry that had to be repaired is reported as it passes;
    a full disk raises ``DiskFullError``.
    """
    cache_dir = Path(cache_dir or CROP_CACHE)
    jobs = [Job(Path(f), prep, cache_dir, follow_links) for f in files]
    with engines.opened(cluster, workers, file_timeout) as engine:
        for record in engine.stream(prepare_cached, jobs, ahead, progress):
            yield _reported(record)


def _reported(record: FileRecord) -> FileRecord:
    if record.cache_repair:
        tqdm.write(f"{record.filename}: {record.cache_repair}", file=sys.stderr)
    return record


def preprocess(files: Iterable[Path], prep: PrepSettings, cache_dir: Path | None = None,
               workers: int | Engine = -1, progress: bool = True, follow_links: bool = True, cluster: str = "",
               file_timeout: float = FILE_TIMEOUT) -> list[FileRecord]:
    """Fill the crop cache for ``files``; returns one record per file, in order (``cached`` tells hits). Where it
    runs: ``cluster`` and ``workers`` as ``prepare_stream`` takes them."""
    files, records = list(files), []
    try:
        records.extend(prepare_stream(files, prep, cache_dir, workers, len(files), progress, follow_links, cluster,
                                      file_timeout))
    except DiskFullError as e:
        raise full_disk(e, Path(cache_dir or CROP_CACHE), records, len(files), None,
                        f"the {len(records)} files before it are cached") from e
    return records


def full_disk(e: DiskFullError, cache_dir: Path, done: list[FileRecord], n_files: int, window: int | None,
              outcome: str) -> DiskFullError:
    """The error a run stops with when the cache's disk is full: the folder, the space still needed (the mean
    entry size so far times the files left, or the look-ahead's files when entries are deleted once read), and
    ``outcome`` (what was kept)."""
    sizes = [r.bytes for r in done if r.key] or [e.needed]
    each = max(sum(sizes) / len(sizes), 1)
    left = n_files - len(done)
    need = each * (min(left, window) if window else left)
    try:
        free = f"; {size_text(shutil.disk_usage(cache_dir).free)} free now"
    except OSError:
        free = ""
    msg = (f"the disk holding the crop cache {cache_dir} is full ({e.detail}) after {len(done)} of {n_files} files: "
           f"about {size_text(need)} more is needed there for the other {left} files ({size_text(each)} each{free}). "
           f"{outcome}.")
    return DiskFullError(str(cache_dir), int(need), e.detail, msg, DISK_ADVICE)


def stage_times(records: list[FileRecord]) -> dict[str, float]:
    """Decode and detect seconds spent in this run (summed over workers; cache hits cost none)."""
    return {"decode_s": float(sum(r.decode_s for r in records)),
            "detect_s": float(sum(r.detect_s for r in records)),
            "cache_hits": int(sum(r.cached for r in records)),
            "worker_peak_rss_mb": float(max((r.worker_rss_mb for r in records), default=0.0)),
            "cache_misses": int(sum(not r.cached for r in records)),
            "cache_repaired": int(sum(bool(r.cache_repair) for r in records))}


def _views_stream(records: Iterable[FileRecord], cache_dir: Path, views: list[tta.View], seen: list[FileRecord],
                  keep_cache: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """TTA views of each file's cached crops, in order; every record passing through is appended to ``seen``."""
    for i, r in enumerate(records):
        crops = None
        if r.has_crops:
            crops, r = _read_crops(cache_dir, r)
        seen.append(r)
        if r.key and not keep_cache:
            cache.entry_path(cache_dir, r.key).unlink(missing_ok=True)
        if crops is not None:
            yield i, tta.apply(crops, views)


def _read_crops(cache_dir: Path, r: FileRecord) -> tuple[np.ndarray | None, FileRecord]:
    """A record's crops. An entry that fails to load here, after its worker checked it, is moved aside and the file
    gets its fallback, with the report as its reason (a rerun recomputes it)."""
    try:
        return cache.load_crops(cache_dir, r), r
    except cache.CORRUPT as e:
        report = cache.quarantine(cache_dir, r.key, f"{type(e).__name__}: {e}")
        tqdm.write(f"{r.filename}: {report}", file=sys.stderr)
        return None, r.but(key=None, n_crops=0, error=f"{report}; a rerun recomputes it", cache_repair=report)


def _until_disk_full(records: Iterable[FileRecord], stopped: list[DiskFullError]) -> Iterator[FileRecord]:
    """``records`` until a full disk stops them (the error is appended to ``stopped``)."""
    try:
        yield from records
    except DiskFullError as e:
        stopped.append(e)


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


class FrameProbs(dict):
    """Per-frame P(fake) of each file (row index -> array, TTA views averaged per frame); ``file`` holds the P(fake)
    that a model with a file head (``models.has_file_head``) gave each file from all its crops at once (empty for
    other models: the aggregator combines the frames)."""

    def __init__(self, frames: dict[int, np.ndarray] | None = None, file: dict[int, float] | None = None):
        super().__init__(frames or {})
        self.file = dict(file or {})


def _run_model(lm: Any, views: Iterable[tuple[int, np.ndarray]], n_views: int, batch_size: int,
               total: int | None, progress: bool) -> tuple[FrameProbs, float]:
    """Per-frame P(fake) per file (views averaged) from a stream of views, in fixed-size batches (and each file's
    P(fake) when the model has a file head); and model seconds."""
    from .models import crop_outputs, file_scores, has_file_head

    chunks: dict[int, list[np.ndarray]] = defaultdict(list)
    model_s = 0.0
    with tqdm(total=total, desc="model", unit="crop", disable=not progress) as bar:
        for batch, owners in _batches(views, batch_size):
            t0 = perf_counter()
            out = crop_outputs(lm, batch)
            model_s += perf_counter() - t0
            start = 0
            for owner, count in owners:
                chunks[owner].append(out[start:start + count])
                start += count
            bar.update(len(batch))
    per_file = {i: np.concatenate(c) for i, c in chunks.items()}
    per_file = {i: a.reshape(n_views, -1, *a.shape[1:]).mean(axis=0) for i, a in per_file.items()}
    if not has_file_head(lm):
        return FrameProbs(per_file), model_s
    t0 = perf_counter()
    scored = {i: file_scores(lm, f) for i, f in per_file.items()}
    return FrameProbs({i: s[1] for i, s in scored.items()}, {i: s[0] for i, s in scored.items()}), \
        model_s + perf_counter() - t0


def predict_frames(lm: Any, records: list[FileRecord], tta_name: str = "none", batch_size: int = 64,
                   cache_dir: Path | None = None, progress: bool = True) -> tuple[dict[int, np.ndarray], float]:
    """Per-frame P(fake) of every cached file (TTA views averaged per frame), and the seconds spent in the model."""
    views = tta.get(tta_name)
    total = len(views) * sum(r.n_crops for r in records if r.key)
    stream = _views_stream(records, Path(cache_dir or CROP_CACHE), views, [])
    return _run_model(lm, stream, len(views), batch_size, total, progress)


def infer_files(files: list[Path], lm: Any, prep: PrepSettings, tta_name: str = "none", batch_size: int = 64,
                cache_dir: Path | None = None, workers: int | Engine = -1, keep_cache: bool = True, ahead: int = 0,
                progress: bool = True, follow_links: bool = True, cluster: str = "",
                file_timeout: float = FILE_TIMEOUT) -> tuple[list[FileRecord], dict[int, np.ndarray], dict[str, float]]:
    """Preprocess and predict ``files`` with the two overlapping.

    Workers (``cluster`` and ``workers``, as ``prepare_stream`` takes them) decode, detect and cache crops at most
    ``ahead`` files ahead of the model, which packs the crops (and TTA views) of consecutive files into fixed
    ``batch_size`` batches. With ``keep_cache=False`` a file's cache entry is deleted once read, so the disk holds at
    most the look-ahead's crops. Returns records, per-frame probabilities and timings: ``preprocess_s`` is the time
    the model side waited for crops, ``predict_s`` the rest of the wall time, ``decode_s``/``detect_s`` the CPU
    seconds summed over workers.

    A full disk stops the preprocessing: the files already read are still predicted, and the ``DiskFullError``
    raised then carries them as ``partial`` (records, probabilities, timings).
    """
    views = tta.get(tta_name)
    cache_dir = Path(cache_dir or CROP_CACHE)
    stopped: list[DiskFullError] = []
    records: list[FileRecord] = []
    with engines.opened(cluster, workers, file_timeout) as engine:
        stream = _Waited(_until_disk_full(prepare_stream(files, prep, cache_dir, engine, ahead, progress,
                                                         follow_links), stopped))
        t0 = perf_counter()
        probs, model_s = _run_model(lm, _views_stream(stream, cache_dir, views, records, keep_cache), len(views),
                                    batch_size, None, progress)
        wall = perf_counter() - t0
        window = (ahead or 4 * engine.slots) + 1
    sizes = sorted((r.bytes for r in records), reverse=True)
    times = {"preprocess_s": stream.wait_s, "predict_s": wall - stream.wait_s, "model_s": model_s,
             "cache_peak_bytes": sum(sizes) if keep_cache else sum(sizes[:window]), **stage_times(records)}
    if stopped:
        error = full_disk(stopped[0], cache_dir, records, len(files), None if keep_cache else window,
                          f"The {len(records)} files before it were predicted")
        error.partial = (records, probs, times)
        raise error from stopped[0]
    return records, probs, times


def _fallback(record: FileRecord, no_face: str, has_probs: bool) -> tuple[str, str]:
    """The fallback a file needed and why ("" when none)."""
    read, found = record.frames_read, record.faces_found
    if record.timed_out:  # a decoder that hangs, most likely: its worker was stopped
        return FALLBACK_TIMEOUT, record.error
    if record.exception:  # a bug or an unforeseen input, not a known kind of bad file
        return FALLBACK_EXCEPTION, record.error
    if record.error:
        return FALLBACK_PROB, record.error
    if not has_probs:
        return FALLBACK_PROB, f"no face in any of {read} frames" if read else "no frames read"
    if found < read:
        return f"no_face:{no_face}", f"no face in {read - found} of {read} frames"
    return "", ""


PREDICTION_COLUMNS = ["filename", "kind", "prob_fake", "label", "frames_read", "faces_found", "crops", "fallback",
                      "reason", "note", "name_escaped"]


def file_predictions(records: list[FileRecord], frame_probs: dict[int, np.ndarray], aggregate: str = "mean",
                     threshold: float = 0.5, fallback_prob: float = 0.0, no_face: str = "skip") -> pd.DataFrame:
    """One row per file: prob_fake, label and the fallback used (with its reason)."""
    combine = agg.AGGREGATORS.get(aggregate)
    whole = getattr(frame_probs, "file", {})  # a model with a file head scored these files from all their crops
    rows = []
    for i, r in enumerate(records):
        fallback, reason = _fallback(r, no_face, i in frame_probs)
        p = whole[i] if i in whole else combine(np.asarray(frame_probs[i], np.float64)) if i in frame_probs \
            else float(fallback_prob)
        rows.append({"filename": r.filename, "kind": r.kind, "prob_fake": p, "label": int(p >= threshold),
                     "frames_read": r.frames_read, "faces_found": r.faces_found, "crops": r.n_crops,
                     "fallback": fallback, "reason": names.escape(reason), "note": names.escape(r.note),
                     "name_escaped": r.name_escaped})
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


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


def summarize(predictions: pd.DataFrame, other_files: Iterable[Path] = (),
              records: Iterable[FileRecord] = ()) -> dict[str, Any]:
    """Counts for the run summary: files by kind, fallbacks by kind and by reason, ignored non-media files; names
    that only predictions.csv can hold (escaped); with the records, links out of the data folder and cache repairs."""
    fb = predictions[predictions["fallback"] != ""]
    escaped = predictions["name_escaped"].astype(bool) if "name_escaped" in predictions else None
    out = {"files": int(len(predictions)), "by_kind": predictions["kind"].value_counts().to_dict(),
           "fake_predicted": int(predictions["label"].sum()), "fallback_files": int(len(fb)),
           "fallbacks": fb["fallback"].value_counts().to_dict(), "fallback_reasons": fb["reason"].value_counts().to_dict(),
           "frames_read": int(predictions["frames_read"].sum()), "faces_found": int(predictions["faces_found"].sum()),
           "ignored_files": sorted(names.escape(Path(f).name) for f in other_files),
           "escaped_names": predictions.loc[escaped, "filename"].tolist() if escaped is not None else []}
    records = list(records)
    if records:
        links = {how: [r.filename for r in records if r.link == how] for how in ("followed", "refused")}
        out["links_outside_data_dir"] = {**{how: len(v) for how, v in links.items()}, "files": links}
        out["cache_repaired"] = [f"{r.filename}: {r.cache_repair}" for r in records if r.cache_repair]
    return out


def preprocess_table(records: list[FileRecord]) -> pd.DataFrame:
    """One row per file: what preprocessing found (frames, faces, crops, cache hit, error)."""
    return pd.DataFrame([{c: getattr(r, c) for c in SUMMARY_COLUMNS} for r in records], columns=list(SUMMARY_COLUMNS))
