"""report.ipynb's steps: its parameters and their checks, the predictions (a model on a labelled folder, or a
finished infer run whose crops and predictions are reused), the files shown with heat maps and timelines, and the
page (``lib.review.page``) with every section.

The figures and numbers come from ``curves`` (ROC, PR, reliability, intervals), ``robustness`` (the perturbation
grid), ``saliency`` (heat maps) and ``timeline`` (per-frame P(fake)); this module only wires them together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import cache, checks, media, models, names, predict
from ..checks import rule
from ..errors import ParameterError
from ..experiments import RECORD, read_record
from ..aggregate import AGGREGATORS
from ..options import CROP_KEYS, InferOptions
from ..parameters import CROP, DATA_DIR, DEVICE, EXP, MODEL, SEED, WHERE, Param, Schema, fields_of, labels_overlap
from ..paths import CACHE, CROP_CACHE, SUBMISSIONS, resolve
from . import analysis, robustness

AUTO = "auto"
REPORT_FILE = "report.html"
# what a finished infer run decides when ``run`` is set: its model and folder, crop settings and inference options
_FROM_RUN = ("model", "data_dir", *CROP_KEYS, "tta", "aggregate", "batch_size", "fallback_prob")


def check_threshold(value: Any, source: str) -> tuple[float | str, str]:
    """The threshold to use and where it comes from: ``auto`` → the model's stored one if it has one, else 0.5."""
    stored = (models.read_training(source) or {}).get("threshold")
    if value == AUTO:
        return ("model", "stored with the model by train.ipynb") if stored is not None else (0.5, "0.5: the model "
                                                                                                 "stores none")
    if value == "model" and stored is None:
        raise ParameterError("threshold", value, "auto, or a number in [0, 1]", why=f"{source} stores no threshold")
    if value != "model":
        checks.number("threshold", value, 0.0, 1.0, "auto, model, or a number in [0, 1]")
    return value, "stored with the model by train.ipynb" if value == "model" else "given"


def training_overlap(source: str, data_dir: Path) -> str:
    """A warning when the model was trained on the report's folder (a dataset folder of its training record's
    ``data``, or that folder's media/), else ""."""
    import glob

    training = models.read_training(source) or {}
    here = Path(data_dir).resolve()
    for entry in (training.get("params") or {}).get("data") or []:
        folders = {Path(p).resolve() for p in glob.glob(str(resolve(str(entry))))}
        if here in folders or here.parent in folders and here.name == "media":
            return (f"The model was trained on {entry} (training run {training.get('exp')!r}), which holds this "
                    "folder: these figures are on files it was fitted on, not held-out ones. Its own held-out "
                    "figures are in that run's record.")
    return ""


def _from_run(value: str) -> tuple[Path, dict[str, Any]]:
    """A finished infer run (a folder, or a name under submissions/) and its record."""
    folder = Path(value).expanduser()
    folder = folder if folder.is_dir() else resolve(value) if resolve(value).is_dir() else SUBMISSIONS / value
    record = read_record(folder) if folder.is_dir() else None
    if not record or record.get("kind") != "infer" or record.get("status") != "complete" \
            or not (folder / predict.PREDICTIONS).is_file():
        raise ParameterError("run", value, "'' or a finished infer run: a folder under submissions/ with run.json and "
                             "predictions.csv", why=f"{folder} holds no complete infer run ({RECORD}, predictions.csv)")
    return folder.resolve(), record


def _given(p: dict[str, Any]) -> tuple[dict[str, Any], Path | None, dict[str, Any] | None]:
    """The parameters that decide the predictions: the run's own when ``run`` is set (labels stay the report's
    unless ``auto``), else the report's."""
    if not p["run"]:
        return p, None, None
    folder, record = _from_run(p["run"])
    rp = record["params"]
    merged = {**p, **{k: rp[k] for k in _FROM_RUN if k in rp}}
    merged["labels"] = p["labels"] if p["labels"] != AUTO else rp.get("labels", AUTO)
    merged["threshold"] = record.get("threshold_used", rp.get("threshold"))
    merged["cache_dir"] = rp.get("cache_dir") or p["cache_dir"]
    return merged, folder, record


def _labels(q: dict[str, Any], data_dir: Path) -> Path:
    """The labels file (``auto``: data_dir/labels.csv), which must name files of ``data_dir``."""
    if q["labels"] == AUTO:
        found = data_dir / "labels.csv"
        labels = found.resolve() if found.is_file() else None
    else:
        labels = checks.optional_file("labels", q["labels"])
    if labels is None:
        raise ParameterError("labels", q["labels"], "a labels CSV (filename,label[,source,kind,origin])",
                             why=f"the report needs labels and {data_dir} has no labels.csv")
    labels_overlap(labels, data_dir, q["labels"])
    return labels


def stored_aggregate(source: str) -> str:
    """How the model's training scored a file from its crops (``training.json``), else logit_mean."""
    return (models.read_training(source) or {}).get("aggregate") or "logit_mean"


def _resolve(p: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """The report's settings: the model, folder and options (a finished infer run's when ``run`` is set), the
    labels, the threshold and where it comes from; every path resolved."""
    q, run_dir, record = _given(p)
    source = checks.model_source(q["model"])
    if q["aggregate"] == AUTO:
        q = {**q, "aggregate": stored_aggregate(source)}
    data_dir = checks.existing_dir("data_dir", q["data_dir"], "an existing flat folder of .jpg/.png/.mp4 files")
    threshold, threshold_from = check_threshold(q["threshold"], source) if run_dir is None else \
        (q["threshold"], f"used by the infer run {run_dir.name}")
    return {"model": q["model"], "source": source, "data_dir": data_dir, "labels": _labels(q, data_dir),
            "options": InferOptions.from_params({**q, "threshold": threshold}), "threshold_from": threshold_from,
            "run_dir": run_dir, "run_record": record, "robustness": v["robustness"], "workers": v["workers"],
            "cluster": v["cluster"], "file_timeout": v["file_timeout"],
            "cache_dir": resolve(q["cache_dir"]) if q["cache_dir"] else None,
            "perturb_dir": v["perturb_dir"] or CACHE / "perturbed", "exp": v["exp"],
            "notes": [n for n in (training_overlap(source, data_dir),) if n]}


def _exp(name: str, value: Any) -> str:
    return checks.exp_name(value or datetime.now().strftime("report-%Y%m%d-%H%M%S"), name)


def _resample_by(name: str, value: Any) -> str:
    if not checks.text(name, value, "a labels column such as origin (the files of one subject)"):
        raise ParameterError(name, value, "a labels column such as origin (the files of one subject)")
    return value


_CROP = {p.name: p for p in CROP}
_IGNORED = "; ignored when run is set"
REPORT = Schema("report.ipynb", (
    MODEL.but(help="model folder or hub id (the demo detector: make demo / make lab)" + _IGNORED, check=None),
    DATA_DIR.but(help="labelled flat folder of media; relative paths are from the project root" + _IGNORED,
                 check=None),
    Param("labels", str, AUTO, "labels.csv (filename,label[,source,kind,origin]); auto → data_dir/labels.csv (with "
          "run: the run's labels)"),
    Param("run", str, "", "a finished infer run (submissions/<exp> or its name): its model, data, crop settings and "
          'predictions are reused; "" → model + data_dir'),
    _CROP["frames"].but(default=8, help="frames sampled per video, evenly spaced (models/detector was fitted on 8)"),
    *(_CROP[k] for k in CROP_KEYS if k != "frames"),
    *fields_of(InferOptions, "tta"),
    Param("aggregate", str, AUTO, "frames → file: auto (the aggregate train.ipynb stored with the model: file_head for "
          "trace_signals, logit_mean for a linear probe; logit_mean when it stores none) | "
          + checks.alternatives(AGGREGATORS), rule(checks.choice, (AUTO, *AGGREGATORS))),
    *fields_of(InferOptions, "batch_size", "fallback_prob"),
    Param("threshold", str, AUTO, "auto: the threshold train.ipynb stored with the model, else 0.5 | model | a number "
          "in [0, 1]"),
    *WHERE, *DEVICE,
    Param("resample_by", str, "origin", "labels column whose groups the bootstrap resamples whole (the files of one "
          "subject); filename when absent", _resample_by),
    Param("resamples", int, 1000, "bootstrap resamples per interval", rule(checks.positive_int, "bootstrap resamples")),
    Param("level", float, 0.9, "level of the intervals (0.9: 90 %)",
          rule(checks.number, 0.5, 0.999, "the intervals' level, e.g. 0.9 for 90 %")),
    SEED.but(help="seeds the bootstrap"),
    Param("robustness", list, list(robustness.PERTURBATIONS), "perturbations scored again: jpeg90_crf23 | "
          "jpeg70_crf30 | jpeg50_crf36 (images JPEG quality / videos H.264 CRF) | half | quarter (downscale) | blur; "
          "[] → none", lambda name, value: robustness.check(value)),
    Param("perturb_dir", str, "", 'cache of perturbed media, keyed by source content and perturbation; "" → '
          "cache/perturbed", checks.optional_path),
    Param("n_errors", int, 4, "most confident false positives and false negatives (each) shown with heat maps; "
          "their videos get timelines", rule(checks.int_at_least, 0, "an integer ≥ 0")),
    Param("n_correct", int, 1, "most confident correct fakes and reals (each) shown beside them",
          rule(checks.int_at_least, 0, "an integer ≥ 0")),
    EXP.but(help='run name: outputs go to submissions/<exp>/; "" → report-<timestamp>', check=_exp)), _resolve)


def labelled_files(data_dir: Path, truth: pd.DataFrame) -> tuple[list[Path], int]:
    """The media files of ``data_dir`` that the labels name, and how many others were left out."""
    listed = set(truth["filename"].astype(str))
    files = media.list_media(data_dir)
    chosen = [f for f in files if names.escape(f.name) in listed]
    return chosen, len(files) - len(chosen)


def reuse_run(pred: predict.Prediction, run_dir: Path) -> float:
    """Put the infer run's own prob_fake and label into ``pred.table`` (its frame probabilities stay this run's);
    returns the largest |difference| between the two, 0 when the model and settings are unchanged."""
    old = pd.read_csv(run_dir / predict.PREDICTIONS, dtype={"filename": str}, keep_default_na=False)
    old = old.drop_duplicates("filename").set_index("filename")
    known = pred.table["filename"].isin(old.index)
    mine = pred.table.loc[known, "prob_fake"].to_numpy(float)
    theirs = old.loc[pred.table.loc[known, "filename"], "prob_fake"].to_numpy(float)
    pred.table.loc[known, "prob_fake"] = theirs
    pred.table.loc[known, "label"] = old.loc[pred.table.loc[known, "filename"], "label"].to_numpy(int)
    return float(np.max(np.abs(mine - theirs))) if len(mine) else 0.0


def chosen_files(scores: pd.DataFrame, threshold: float, n_errors: int, n_correct: int) -> pd.DataFrame:
    """The files shown with heat maps: the ``n_errors`` most confident false positives and false negatives, and
    the ``n_correct`` most confident correct fakes and reals; ``row`` is the row of ``scores``."""
    errors = analysis.confident_errors(scores, threshold, n_errors).rename(columns={"error": "why"})
    s = scores.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))
    right_fake = s[(s["truth"] == 1) & (s["prob_fake"] >= threshold)].nlargest(n_correct, "prob_fake")
    right_real = s[(s["truth"] == 0) & (s["prob_fake"] < threshold)].nsmallest(n_correct, "prob_fake")
    out = pd.concat([errors, right_fake.assign(why="correct fake"), right_real.assign(why="correct real")],
                    ignore_index=True)
    return out.assign(threshold=threshold)


@dataclass
class Crops:
    """The crops the model saw of each labelled file, from the crop cache, with their P(fake) and frame numbers."""

    pred: predict.Prediction
    scores: pd.DataFrame
    cache_dir: Path | None = None

    def __call__(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = int(self.scores.loc[row, "pred_row"])
        record = self.pred.records[i]
        if not record.has_crops:
            return np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0), np.zeros(0, int)
        crops = cache.load_crops(Path(self.cache_dir or CROP_CACHE), record)
        return crops, self.pred.frame_probs.get(i, np.zeros(len(crops))), np.asarray(record.frame_indices)


def timeline_items(crops: Crops, chosen: pd.DataFrame) -> list[dict[str, Any]]:
    """The videos among the mistakes of ``chosen``, as ``timeline.figure`` items."""
    items = []
    for _, f in chosen[chosen["why"].str.startswith("false")].iterrows():
        i = int(crops.scores.loc[int(f["row"]), "pred_row"])
        record = crops.pred.records[i]
        if record.kind != "video":
            continue
        items.append({"record": record, "probs": crops.pred.frame_probs.get(i, np.zeros(0)),
                      "prob_fake": float(f["prob_fake"]), "title": f"{f['why']}: {f['filename']}"})
    return items


@dataclass
class Facts:
    """What produced the report, for its last section and run.json."""

    params: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    git: dict[str, Any]
    timings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Name/value tables of each part."""
        def table(d: dict[str, Any]) -> pd.DataFrame:
            return pd.DataFrame({"name": list(d), "value": [_shown(v) for v in d.values()]})

        return {"parameters": table(self.params), "model": table(self.model), "data": table(self.data),
                "code": table(self.git), "timings (s)": table(self.timings)}


def _shown(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return v if isinstance(v, str) else json.dumps(v, default=str)


GROUPS = {"false positives (reals called fake)": ("false positive",), "false negatives (fakes called real)":
          ("false negative",), "correct, for comparison": ("correct fake", "correct real")}


def where_it_looks(lm: models.LoadedModel, chosen: pd.DataFrame, crops: Crops, per_file: int = 3
                   ) -> tuple[dict[str, Any], str]:
    """A heat-map figure per group of ``chosen`` files (mistakes of each kind, correct ones) and what the maps are;
    a model with no spatial feature map gets the crops alone, and the reason."""
    from . import saliency

    figures = {}
    try:
        what = saliency.method(lm)
        for title, whys in GROUPS.items():
            rows = saliency.rows_for(lm, chosen[chosen["why"].isin(whys)], crops, per_file)
            figures[title] = saliency.figure(rows, per_file)
    except saliency.Unavailable as e:
        shown = chosen.rename(columns={"why": "error"})
        return {"the crops it saw": analysis.error_grid(shown, lambda r: crops(r)[:2])}, f"no heat map: {e}"
    return figures, what


@dataclass
class Results:
    """Everything the page shows."""

    scores: pd.DataFrame
    threshold: float
    threshold_from: str
    summary: Any  # curves.Summary
    grid: Any  # robustness.Robustness
    grid_times: dict[str, Any]
    looks: dict[str, Any]
    looks_method: str
    timelines: Any  # Figure
    n_timelines: int
    histogram: Any  # Figure
    crop_grid: Any  # Figure
    facts: Facts


def build_page(r: Results, title: str) -> Any:
    """The page: overview, curves, robustness, where it looks, timelines, provenance."""
    from .page import Page

    subtitle = (f"{r.facts.model.get('source', '')} on {r.facts.data.get('data_dir', '')}: {len(r.scores)} labelled "
                f"files; commit {str(r.facts.git.get('commit') or '?')[:10]}")
    page = Page(title, subtitle)
    _overview(page.section("overview", "Overview"), r)
    _curves(page.section("curves", "Curves and intervals"), r)
    _robustness(page.section("robustness", "Robustness"), r)
    _looks(page.section("where-it-looks", "Where it looks"), r)
    _timelines(page.section("timelines", "Per-video timelines"), r)
    _provenance(page.section("provenance", "Parameters, model, data, code"), r)
    return page


def _overview(s: Any, r: Results) -> None:
    from .curves import interval_text
    from .page import figure_html, table_html

    y, sm = r.scores["truth"], r.summary
    s.text(f"{len(y)} labelled files ({int((y == 0).sum())} real, {int(y.sum())} fake); threshold {r.threshold:.4g} "
           f"({r.threshold_from}). Intervals: {sm.level:.0%} bootstrap, {sm.resamples} resamples of whole "
           f"'{sm.resampled_by}' groups ({len(set(_units(r.scores, sm.resampled_by)))} of them), so near-copies move "
           "together.")
    for note in r.facts.notes:
        s.text(note, note=True)
    shown = sm.table.assign(**{f"{sm.level:.0%} interval": interval_text(sm.table)})
    s.side_by_side([("", table_html(shown[["figure", f"{sm.level:.0%} interval"]], css="big")
                     + _facts_list(r)),
                    ("", figure_html(r.histogram, "prob_fake per file by true label; dashed: the threshold"))])


def _facts_list(r: Results) -> str:
    """The overview's points: mistakes, robustness at its worst, what the heat maps are."""
    import html

    y, called = r.scores["truth"], r.scores["prob_fake"] >= r.threshold
    points = [f"mistakes at the threshold: {int(((y == 0) & called).sum())} of {int((y == 0).sum())} reals called "
              f"fake, {int(((y == 1) & ~called).sum())} of {int(y.sum())} fakes called real"]
    table = r.grid.table
    if len(table) > 1:
        worst = table.iloc[1:].loc[table["AUC"].iloc[1:].idxmin()]
        points.append(f"robustness: AUC {table['AUC'].iloc[0]:.3f} on the files as they are, lowest "
                      f"{worst['AUC']:.3f} under '{worst['perturbation']}' ({worst['what']})")
    points.append(f"heat maps: {r.looks_method.split(';')[0]}")
    return '<ul class="facts">' + "".join(f"<li>{html.escape(p)}</li>" for p in points) + "</ul>"


def _units(scores: pd.DataFrame, by: str) -> np.ndarray:
    from .curves import resample_units

    return resample_units(scores, by)[0]


def _curves(s: Any, r: Results) -> None:
    s.text("Dots mark the threshold's operating point. A group with one class is ranked against every file of the other "
           "(a kind of fake against every real, a source of reals against every fake).")
    for name, fig in r.summary.figures.items():
        if name.startswith("curves"):
            s.figure(fig, name.replace("_", " ").replace("curves", "ROC and precision-recall", 1))
    s.heading("Per group, with intervals")
    s.table(r.summary.groups)
    s.figure(r.summary.figures["reliability"], "Reliability: share of fakes against mean prob_fake per bin (a "
             "calibrated model lies on the diagonal)")


def _robustness(s: Any, r: Results) -> None:
    from .robustness import GEOMETRY_CRF, X264_PRESET

    cost = sum(t["perturb_s"] + t["predict_s"] for t in r.grid_times.values())
    making = sum(t["perturb_s"] for t in r.grid_times.values())
    s.text(f"The same labelled files perturbed and scored again at the same threshold. Videos: libx264 preset "
           f"{X264_PRESET}; downscaled and blurred videos re-encoded at CRF {GEOMETRY_CRF}. Perturbed files are cached "
           f"by content and recipe. This grid took {cost:.0f} s ({making:.0f} s making perturbed files).")
    if r.grid.failed and any(r.grid.failed.values()):
        s.text(f"Files left out where a perturbation failed: {r.grid.failed}", note=True)
    s.figure(r.grid.figure, "AUC and macro F1 per perturbation (bars: intervals; dotted: chance AUC)")
    s.table(r.grid.table)


def _looks(s: Any, r: Results) -> None:
    s.text(f"{r.looks_method}. Red pushes towards fake, blue towards real; each map is scaled to its own largest "
           "value. Above each map: the crop's fake-vs-real logit margin (P(fake) = sigmoid of it) = the map's total + "
           "the rest (the bias, which no place carries). Shown: the frames that pushed the call most.")
    for title, fig in r.looks.items():
        s.heading(title)
        s.figure(fig, title)


def _timelines(s: Any, r: Results) -> None:
    s.text(f"P(fake) of each sampled frame for the {r.n_timelines} video(s) among the mistakes above; the thick line "
           "is the file's score (the aggregate), the dashed one the threshold, grey bands frames without a face.")
    s.figure(r.timelines, "per-frame P(fake) over the video")


def _provenance(s: Any, r: Results) -> None:
    from .page import figure_html, table_html

    blocks = [(name, table_html(t, css="kv")) for name, t in r.facts.tables().items()]
    s.side_by_side(blocks[:1] + [("", "".join(f"<h3>{n}</h3>{b}" for n, b in blocks[1:]))])
    s.side_by_side([("what the model saw", figure_html(r.crop_grid, "a few crops of the first files, as the model "
                                                                    "saw them"))])
