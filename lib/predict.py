"""The one road from media to predictions: crops (cache, worker processes) → model → one prob_fake and label per
file → predictions.csv and a checked submission.csv.

``infer.ipynb``, the scoring-server bundle's ``task.ipynb``, the bundle's local check and the speed bench all call
``predict_folder`` (or ``predict_files``), so what is measured and checked is what runs on the server.

Every media file gets one row of predictions.csv, whatever its name (names that are not valid UTF-8 escaped, see
``lib.names``); submission.csv holds every name that UTF-8 can carry. A full disk stops the run with
``DiskFullError`` after the files predicted so far are written to predictions.csv (no submission.csv then).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import media, pipeline, submission
from .errors import DiskFullError
from .filerecord import FileRecord
from .models import LoadedModel, resolve_threshold
from .options import InferOptions, PrepSettings

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


def predict_files(files: list[Path], lm: LoadedModel, opts: InferOptions, cache_dir: Path | None = None,
                  workers: int = -1, keep_cache: bool = True, ahead: int = 0, progress: bool = True) -> Prediction:
    """Predict ``files`` with ``lm``: crops at the model's size, TTA, aggregation, threshold and fallbacks of ``opts``.

    A full disk raises ``DiskFullError`` whose ``partial`` is the Prediction of the files done before it."""
    prep = opts.crops(lm.size)
    threshold = resolve_threshold(opts.threshold, lm)

    def table(records: list[FileRecord], probs: dict[int, np.ndarray], times: dict[str, float]) -> Prediction:
        rows = pipeline.file_predictions(records, probs, opts.aggregate, threshold, opts.fallback_prob, opts.no_face)
        return Prediction(rows, records, probs, times, prep, threshold)

    try:
        done = pipeline.infer_files(files, lm, prep, opts.tta, opts.batch_size, cache_dir, workers, keep_cache,
                                    ahead, progress, opts.follow_links)
    except DiskFullError as e:
        e.partial = table(*e.partial)
        raise
    return table(*done)


def predict_folder(data_dir: Path, lm: LoadedModel, opts: InferOptions, out_dir: Path | None = None,
                   cache_dir: Path | None = None, workers: int = -1, keep_cache: bool = True,
                   progress: bool = True) -> Prediction:
    """Predict every media file of the flat folder ``data_dir``; with ``out_dir``, write predictions.csv and
    submission.csv there and check the submission against the folder (one row per media file)."""
    try:
        pred = predict_files(media.list_media(data_dir), lm, opts, cache_dir, workers, keep_cache, progress=progress)
    except DiskFullError as e:
        if out_dir is not None:
            e.message = f"{e.message} {_write_partial(e.partial, Path(out_dir))}."
        raise
    if out_dir is not None:
        write_outputs(pred, Path(out_dir), Path(data_dir))
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


def write_outputs(pred: Prediction, out_dir: Path, data_dir: Path) -> Path:
    """predictions.csv and submission.csv in ``out_dir``; the submission is checked against ``data_dir``.

    A media file whose name UTF-8 cannot carry has no submission row: it is named in a warning and kept in
    ``pred.unnamed``; any other problem of the submission raises ``submission.SubmissionError`` (after writing)."""
    write_predictions(pred.table, out_dir)
    path = submission.write_submission(pred.table, out_dir / submission.SUBMISSION)
    submission.check_submission(path, data_dir, unnamed_ok=True)
    pred.unnamed = submission.unnamed_files(data_dir)
    if pred.unnamed:
        warnings.warn(submission.unnamed_message(pred.unnamed), stacklevel=2)
    return path
