"""The one road from media to predictions: crops (cache, worker processes) → model → one prob_fake and label per
file → predictions.csv and a checked submission.csv.

``infer.ipynb``, the scoring-server bundle's ``task.ipynb``, the bundle's local check and the speed bench all call
``predict_folder`` (or ``predict_files``), so what is measured and checked is what runs on the server. Each opens
and closes the engine its preprocessing runs on (``lib.engines``: worker processes here, or a cluster).

Every media file gets one row of predictions.csv, whatever its name (names that are not valid UTF-8 escaped, see
``lib.names``); submission.csv holds every name that UTF-8 can carry. A full disk stops the run with
``DiskFullError`` after the files predicted so far are written to predictions.csv (no submission.csv then).

One file at a time, from the terminal or a notebook cell (``predict_paths``), on the same road:
    python -m lib.predict clip.mp4 face.jpg --model models/detector --threshold model --save-crops crops/
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import engines, media, pipeline, shards, submission
from .devices import DEVICES, PRECISIONS
from .engines import FILE_TIMEOUT, Engine
from .errors import DiskFullError, ModelLoadError, ParameterError
from .filerecord import FileRecord
from .models import LoadedModel, has_file_head, resolve_threshold
from .metrics import rank_threshold
from .options import FRAME_AGGREGATES, InferOptions, PrepSettings, is_rank_rule, top_share

PREDICTIONS = "predictions.csv"


@dataclass
class Prediction:
    """What a prediction run produced: one row per file, the per-file records, per-frame probabilities, timings."""

    table: pd.DataFrame  # pipeline.PREDICTION_COLUMNS: filename, kind, prob_fake, label, ..., reason, note, name_escaped
    records: list[FileRecord]
    frame_probs: dict[int, np.ndarray]  # row index -> P(fake) per kept frame (TTA views averaged)
    times: dict[str, float]
    prep: PrepSettings
    threshold: float
    unnamed: list[str] = field(default_factory=list)  # files submission.csv cannot name (escaped), once written
    engine: dict[str, Any] = field(default_factory=dict)  # where it ran and what went wrong there (Engine.info)


def predict_files(files: list[Path], lm: LoadedModel, opts: InferOptions, cache_dir: Path | None = None,
                  workers: int | Engine = -1, keep_cache: bool = True, ahead: int = 0, progress: bool = True,
                  cluster: str = "", file_timeout: float = FILE_TIMEOUT) -> Prediction:
    """Predict ``files`` with ``lm``: crops at the model's size, TTA, aggregation, threshold and fallbacks of ``opts``.
    Preprocessing runs where ``cluster`` and ``workers`` say (``lib.engines.opened``: opened and closed here), each
    file within its time limit (``file_timeout``). A rank rule ``threshold: top:q`` calls the share q of these files
    with the highest P(fake) fake (with a shard, of the shard's files); ``Prediction.threshold`` is the cut it made.

    A full disk raises ``DiskFullError`` whose ``partial`` is the Prediction of the files done before it."""
    check_options(lm, opts)
    prep = opts.crops(lm.size)
    rank = is_rank_rule(opts.threshold)
    threshold = 0.5 if rank else resolve_threshold(opts.threshold, lm)

    def table(records: list[FileRecord], probs: dict[int, np.ndarray], times: dict[str, float]) -> Prediction:
        rows = pipeline.file_predictions(records, probs, opts.aggregate, threshold, opts.fallback_prob, opts.no_face)
        used = threshold
        if rank and len(rows):  # top:q: the files' own ranking decides, whatever the scale of their scores
            used = rank_threshold(rows["prob_fake"].to_numpy(), top_share(str(opts.threshold)))
            rows["label"] = (rows["prob_fake"] >= used).astype(int)
        return Prediction(rows, records, probs, times, prep, used, engine=engine.info())

    with engines.opened(cluster, workers, file_timeout) as engine:
        try:
            done = pipeline.infer_files(files, lm, prep, opts.tta, opts.batch_size, cache_dir, engine, keep_cache,
                                        ahead, progress, opts.follow_links)
        except DiskFullError as e:
            e.partial = table(*e.partial)
            raise
        return table(*done)


def check_options(lm: LoadedModel, opts: InferOptions) -> None:
    """What a model asks of the options: a model with a file head (it scores a file from all its crops at once) needs
    ``aggregate: file_head``, and only such a model takes it; a trace-signal model needs the face margin its signals'
    geometry was fitted on. A mismatch is a ParameterError before any file is read."""
    whole = has_file_head(lm)
    if whole != (opts.aggregate == "file_head"):
        valid = "file_head" if whole else " | ".join(FRAME_AGGREGATES)
        what = "scores" if whole else "has no head that scores"
        raise ParameterError("aggregate", opts.aggregate, valid, why=f"{lm.name} {what} a file from all its crops at once")
    margin = getattr(getattr(lm.module, "config", None), "margin", None)
    if whole and margin is not None and abs(float(margin) - opts.face_margin) > 1e-9:
        raise ParameterError("face_margin", opts.face_margin, f"{float(margin):g}", why=f"{lm.name}'s trace signals "
                             f"were fitted on crops with face_margin {float(margin):g}")


def predict_folder(data_dir: Path, lm: LoadedModel, opts: InferOptions, out_dir: Path | None = None,
                   cache_dir: Path | None = None, workers: int | Engine = -1, keep_cache: bool = True,
                   progress: bool = True, shard: str = "", cluster: str = "",
                   file_timeout: float = FILE_TIMEOUT) -> Prediction:
    """Predict every media file of the flat folder ``data_dir`` (or its share ``shard="i/n"``, ``lib.shards``); with
    ``out_dir``, write predictions.csv and submission.csv there and check the submission against the folder (one
    row per media file of the share). Preprocessing runs in ``workers`` processes here (-1 auto, 0 this process), or
    on the cluster ``cluster`` names ("local:N", "tcp://host:port"); ``file_timeout`` bounds each file's time."""
    files = shards.select(media.list_media(data_dir), shard)
    try:
        pred = predict_files(files, lm, opts, cache_dir, workers, keep_cache, progress=progress, cluster=cluster,
                             file_timeout=file_timeout)
    except DiskFullError as e:
        if out_dir is not None:
            e.message = f"{e.message} {_write_partial(e.partial, Path(out_dir))}."
        raise
    if out_dir is not None:
        write_outputs(pred, Path(out_dir), Path(data_dir), shard)
    return pred


def _write_partial(pred: Prediction, out_dir: Path) -> str:
    """Write the rows a stopped run finished; returns what was written, in words."""
    if not len(pred.table):
        return "Nothing was written: no file was finished"
    try:
        path = write_predictions(pred.table, out_dir)
    except OSError as e:
        return f"Nothing was written: predictions.csv could not be written either ({e})"
    return f"Their {len(pred.table)} rows are in {path}; no submission.csv was written"


def write_predictions(table: pd.DataFrame, out_dir: Path) -> Path:
    """predictions.csv: every row, names as ``lib.names`` writes them, CSV quoting for CR/LF (RFC 4180 line ends)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / PREDICTIONS, index=False, encoding="utf-8", lineterminator="\r\n")
    return out_dir / PREDICTIONS


def write_outputs(pred: Prediction, out_dir: Path, data_dir: Path, shard: str = "") -> Path:
    """predictions.csv and submission.csv in ``out_dir``; the submission is checked against ``data_dir`` (its share
    ``shard`` when given).

    A media file whose name UTF-8 cannot carry has no submission row: it is named in a warning and kept in
    ``pred.unnamed``; any other problem of the submission raises ``submission.SubmissionError`` (after writing)."""
    write_predictions(pred.table, out_dir)
    path = submission.write_submission(pred.table, out_dir / submission.SUBMISSION)
    submission.check_submission(path, data_dir, unnamed_ok=True, shard=shard)
    pred.unnamed = submission.unnamed_files(data_dir, shard)
    if pred.unnamed:
        warnings.warn(submission.unnamed_message(pred.unnamed), stacklevel=2)
    return path


def predict_paths(paths: list[str | Path], model: str | LoadedModel, save_crops: str | Path | None = None,
                  cache_dir: Path | None = None, device: str = "auto", precision: str = "auto",
                  **options: object) -> pd.DataFrame:
    """One or a few files, through the very road infer takes (crop cache included): one row per file with
    prob_fake, label, frames read, faces found and any fallback's reason. ``options`` are InferOptions fields
    (frames, tta, threshold, ...); ``save_crops`` writes the crops the model saw as PNGs, one folder per file."""
    from .models import load_model

    files = [Path(p).expanduser().resolve() for p in paths]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ParameterError("files", missing[0], "existing image or video files", why="no such file")
    lm = model if isinstance(model, LoadedModel) else load_model(str(model), device, precision)
    pred = predict_files(files, lm, InferOptions(**options), cache_dir, workers=0, progress=False)
    if save_crops is not None:
        _save_crops(pred, Path(save_crops), cache_dir)
    return pred.table.assign(path=[str(f) for f in files])


def _save_crops(pred: Prediction, folder: Path, cache_dir: Path | None) -> None:
    from PIL import Image

    from . import cache
    from .paths import CROP_CACHE

    for record, row in zip(pred.records, pred.table.itertuples()):
        if not record.has_crops:
            continue
        out = folder / Path(record.filename).stem
        out.mkdir(parents=True, exist_ok=True)
        for i, (crop, index) in enumerate(zip(cache.load_crops(Path(cache_dir or CROP_CACHE), record),
                                              record.frame_indices)):
            Image.fromarray(crop).save(out / f"{i:03d}_frame{index}.png")


def _option_arguments(ap: argparse.ArgumentParser) -> None:
    """One --option per InferOptions field, typed like its default ('threshold' also takes 'model')."""
    for f in fields(InferOptions):
        kind = type(f.default)
        ap.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=f.default,
                        type=_threshold if f.name == "threshold" else kind, help=f"(default: {f.default})")


def _threshold(text: str) -> float | str:
    return text if text == "model" or is_rank_rule(text) else float(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lib.predict", description="Predict a few files with a model, "
                                 "through the same road as infer.ipynb, and print one line per file.")
    ap.add_argument("files", nargs="+", help="image or video files")
    ap.add_argument("--model", required=True, help="model folder (or a hub id available offline)")
    ap.add_argument("--save-crops", help="write the crops the model saw as PNGs into this folder")
    ap.add_argument("--cache-dir", help="crop cache (default: the kit's cache/crops)")
    ap.add_argument("--device", default="auto", choices=DEVICES)
    ap.add_argument("--precision", default="auto", choices=PRECISIONS)
    _option_arguments(ap)
    args = vars(ap.parse_args(argv))
    common = {k: args.pop(k) for k in ("files", "model", "save_crops", "cache_dir", "device", "precision")}
    try:
        table = predict_paths(common["files"], common["model"], common["save_crops"], common["cache_dir"],
                              common["device"], common["precision"], **args)
    except (ParameterError, ModelLoadError) as e:
        ap.exit(2, f"error: {e}\n")
    cols = ["filename", "prob_fake", "label", "frames_read", "faces_found", "crops", "fallback", "reason"]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
