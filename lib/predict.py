"""The one road from media to predictions: crops (cache, worker processes) → model → one prob_fake and label per
file → predictions.csv and a checked submission.csv.

``infer.ipynb``, the scoring-server bundle's ``task.ipynb``, the bundle's local check and the speed bench all call
``predict_folder`` (or ``predict_files``), so what is measured and checked is what runs on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import media, pipeline, shards, submission
from .filerecord import FileRecord
from .models import LoadedModel, resolve_threshold
from .options import InferOptions, PrepSettings

PREDICTIONS = "predictions.csv"


@dataclass
class Prediction:
    """What a prediction run produced: one row per file, the per-file records, per-frame probabilities, timings."""

    table: pd.DataFrame  # filename, kind, prob_fake, label, frames_read, faces_found, crops, fallback, reason, note
    records: list[FileRecord]
    frame_probs: dict[int, np.ndarray]  # row index -> P(fake) per kept frame (TTA views averaged)
    times: dict[str, float]
    prep: PrepSettings
    threshold: float


def predict_files(files: list[Path], lm: LoadedModel, opts: InferOptions, cache_dir: Path | None = None,
                  workers: int | Any = -1, keep_cache: bool = True, ahead: int = 0, progress: bool = True) -> Prediction:
    """Predict ``files`` with ``lm``: crops at the model's size, TTA, aggregation, threshold and fallbacks of ``opts``."""
    prep = opts.crops(lm.size)
    threshold = resolve_threshold(opts.threshold, lm)
    records, probs, times = pipeline.infer_files(files, lm, prep, opts.tta, opts.batch_size, cache_dir, workers,
                                                 keep_cache, ahead, progress)
    table = pipeline.file_predictions(records, probs, opts.aggregate, threshold, opts.fallback_prob, opts.no_face)
    return Prediction(table, records, probs, times, prep, threshold)


def predict_folder(data_dir: Path, lm: LoadedModel, opts: InferOptions, out_dir: Path | None = None,
                   cache_dir: Path | None = None, workers: int | Any = -1, keep_cache: bool = True,
                   progress: bool = True, shard: str = "") -> Prediction:
    """Predict every media file of the flat folder ``data_dir`` (or its share ``shard="i/n"``, ``lib.shards``); with
    ``out_dir``, write predictions.csv and submission.csv there and check the submission against the folder (one
    row per media file of the share). ``workers``: processes, or an engine of ``lib.cluster`` (Dask)."""
    files = shards.select(media.list_media(data_dir), shard)
    pred = predict_files(files, lm, opts, cache_dir, workers, keep_cache, progress=progress)
    if out_dir is not None:
        write_outputs(pred, Path(out_dir), Path(data_dir), shard)
    return pred


def write_outputs(pred: Prediction, out_dir: Path, data_dir: Path, shard: str = "") -> Path:
    """predictions.csv and submission.csv in ``out_dir``; the submission is checked against ``data_dir`` (its
    share ``shard`` when given)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pred.table.to_csv(out_dir / PREDICTIONS, index=False)
    path = submission.write_submission(pred.table, out_dir / submission.SUBMISSION)
    submission.check_submission(path, data_dir, shard)
    return path
