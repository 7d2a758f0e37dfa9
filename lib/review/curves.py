"""Labelled scores at a glance: ROC and precision-recall curves (overall and per source or kind) with the
threshold's operating point, a reliability diagram, and macro F1, AUC and the share of reals called real with
bootstrap intervals that resample whole groups (``lib.metrics.bootstrap``, by ``origin``: the clips and photos of
one subject move together).

report.ipynb, infer.ipynb (with labels) and train.ipynb (its validation scores) show the same figures from here.
``scores`` is a table with ``truth`` (0/1) and ``prob_fake`` per file, and any of ``filename``, ``source``,
``kind``, ``media`` and ``origin`` (``lib.review.analysis.labelled_scores`` makes one from predictions and labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from .. import metrics
from .analysis import reliability

GROUP_COLUMNS = ("source", "kind", "media")  # per-group curves and intervals, for each column present
LEVEL = 0.9


@dataclass
class Summary:
    """The headline figures with intervals, the same per group, and the figures."""

    table: pd.DataFrame  # figure, value, low, high, resamples
    groups: pd.DataFrame  # by, group, files, fakes, AUC and share called right, each with its interval
    figures: dict[str, Any] = field(default_factory=dict)  # name -> matplotlib Figure
    threshold: float = 0.5
    resampled_by: str = "origin"
    level: float = LEVEL
    resamples: int = 1000

    def record(self) -> dict[str, Any]:
        """The intervals as plain numbers, for run.json."""
        rows = {r["figure"]: {k: _plain(r[k]) for k in ("value", "low", "high")} for _, r in self.table.iterrows()}
        return {"threshold": self.threshold, "level": self.level, "resampled_by": self.resampled_by,
                "resamples": self.resamples, **rows}


def _plain(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def resample_units(scores: pd.DataFrame, by: str = "origin") -> tuple[np.ndarray, str]:
    """The unit each row is resampled with: its ``by`` value (a row with none stands alone), or its filename when
    the labels have no such column; and the column that was used."""
    names = scores["filename"].astype(str) if "filename" in scores.columns else pd.Series(
        [f"row{i}" for i in range(len(scores))], index=scores.index)
    if by in scores.columns:
        values = scores[by].astype(str)
        return np.where(values.str.strip() == "", "file:" + names, values), by
    return names.to_numpy(), "filename"


def fakes_called_fake(threshold: float) -> metrics.Statistic:
    """Share of the fakes (label 1) scored at or above ``threshold``; nan when there is none."""
    def stat(y: np.ndarray, s: np.ndarray) -> float:
        fakes = np.asarray(s)[np.asarray(y) == 1]
        return float(np.mean(fakes >= threshold)) if len(fakes) else float("nan")

    return stat


def called_right(threshold: float) -> metrics.Statistic:
    """Share of the files whose label ``scores ≥ threshold`` gets right (accuracy)."""
    return lambda y, s: float(np.mean((np.asarray(s) >= threshold) == np.asarray(y))) if len(y) else float("nan")


def headline(scores: pd.DataFrame, threshold: float, units: np.ndarray, n: int = 1000, level: float = LEVEL,
             seed: int = 0) -> pd.DataFrame:
    """Macro F1, AUC, reals called real and fakes called fake at ``threshold``, each with its bootstrap interval
    from ``n`` resamples of whole ``units``."""
    y, s = scores["truth"].to_numpy(), scores["prob_fake"].to_numpy(float)
    stats = {"macro F1": metrics.f1_at(threshold), "AUC": metrics.auc,
             "reals called real": metrics.reals_called_real(threshold),
             "fakes called fake": fakes_called_fake(threshold)}
    rows = []
    for name, stat in stats.items():
        iv = metrics.bootstrap(y, s, units, stat, n, level, seed)
        rows.append({"figure": name, "value": iv.value, "low": iv.low, "high": iv.high, "resamples": iv.n})
    return pd.DataFrame(rows)


def _with_other_class(scores: pd.DataFrame, rows: pd.Index) -> pd.Index:
    """``rows``, and every file of the other class when ``rows`` hold one class only: a kind of fake ranked against
    every real (as a held-out kind is), a source of reals against every fake."""
    classes = scores.loc[rows, "truth"].unique()
    if len(classes) != 1:
        return rows
    return rows.union(scores.index[scores["truth"] != classes[0]])


def group_intervals(scores: pd.DataFrame, threshold: float, units: np.ndarray, columns: tuple[str, ...] = GROUP_COLUMNS,
                    n: int = 1000, level: float = LEVEL, seed: int = 0) -> pd.DataFrame:
    """Per value of each grouping column present: files, fakes, AUC (a one-class group ranked against every file of
    the other class) and the share of its files called right at ``threshold``, each with its interval."""
    scores = scores.reset_index(drop=True)
    y, s = scores["truth"].to_numpy(), scores["prob_fake"].to_numpy(float)
    rows = []
    for col in (c for c in columns if c in scores.columns and scores[c].nunique() > 1):
        for value, g in scores.groupby(col, sort=True):
            both = _with_other_class(scores, g.index).to_numpy()
            a = metrics.bootstrap(y[both], s[both], units[both], metrics.auc, n, level, seed)
            idx = g.index.to_numpy()
            r = metrics.bootstrap(y[idx], s[idx], units[idx], called_right(threshold), n, level, seed)
            rows.append({"by": col, "group": value, "files": len(g), "fakes": int(g["truth"].sum()),
                         "units": len(set(units[idx])), "AUC": a.value, "AUC low": a.low, "AUC high": a.high,
                         "AUC against": _against(scores, g),
                         "called right": r.value, "called right low": r.low, "called right high": r.high})
    return pd.DataFrame(rows)


def _against(scores: pd.DataFrame, group: pd.DataFrame) -> str:
    """What a group's AUC ranks: its own files, or its one class against every file of the other."""
    if group["truth"].nunique() == 2:
        return "its own files"
    return "+ every real" if group["truth"].iloc[0] == 1 else "+ every fake"


def operating_point(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(false-positive rate, true-positive rate, precision) of ``s ≥ threshold``; nan where undefined."""
    called = s >= threshold
    tp, fp = float(np.sum(called & (y == 1))), float(np.sum(called & (y == 0)))
    pos, neg = float(np.sum(y == 1)), float(np.sum(y == 0))
    nan = float("nan")
    return fp / neg if neg else nan, tp / pos if pos else nan, tp / (tp + fp) if tp + fp else nan


def _draw(roc_ax: plt.Axes, pr_ax: plt.Axes, y: np.ndarray, s: np.ndarray, threshold: float, label: str,
          color: str | None = None, lw: float = 1.0) -> None:
    """One ROC and one PR curve with the threshold's operating point (nothing for one class)."""
    if len(np.unique(y)) < 2:
        return
    fpr, tpr, _ = roc_curve(y, s)
    precision, recall, _ = precision_recall_curve(y, s)
    color = roc_ax.plot(fpr, tpr, label=f"{label} AUC {metrics.auc(y, s):.2f}", color=color, lw=lw)[0].get_color()
    pr_ax.plot(recall, precision, color=color, lw=lw)
    x, t, p = operating_point(y, s, threshold)
    dot = {"color": color, "ms": 7 if lw > 1 else 5, "mec": "k", "mew": 0.6, "zorder": 3}
    roc_ax.plot([x], [t], "o", **dot)
    if np.isfinite(p):
        pr_ax.plot([t], [p], "o", **dot)


def curves_figure(scores: pd.DataFrame, threshold: float, by: str | None = None) -> plt.Figure:
    """ROC and precision-recall curves of every file (black), and of each value of ``by`` when given (a one-class
    group against every file of the other class); dots mark the operating point of ``threshold``."""
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    y, s = scores["truth"].to_numpy(), scores["prob_fake"].to_numpy(float)
    _draw(roc_ax, pr_ax, y, s, threshold, f"all files (n={len(y)})", color="k", lw=2)
    if by is not None:
        for value, g in scores.reset_index(drop=True).groupby(by, sort=True):
            rows = _with_other_class(scores.reset_index(drop=True), g.index).to_numpy()
            _draw(roc_ax, pr_ax, y[rows], s[rows], threshold, f"{value} (n={len(g)})", lw=1)
    roc_ax.plot([0, 1], [0, 1], color="0.75", ls="--", lw=1)
    pr_ax.axhline(float(np.mean(y)) if len(y) else 0.0, color="0.75", ls="--", lw=1)
    roc_ax.set(xlabel="false-positive rate (reals called fake)", ylabel="true-positive rate (fakes called fake)",
               xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), title="ROC" + (f" by {by}" if by else ""))
    pr_ax.set(xlabel="recall (fakes called fake)", ylabel="precision (called fake that are fake)",
              xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), title="Precision-recall" + (f" by {by}" if by else ""))
    roc_ax.legend(fontsize=7, loc="lower right", title=f"dots: threshold {threshold:.3g}", title_fontsize=7)
    fig.tight_layout()
    return fig


def summarize(scores: pd.DataFrame, threshold: float, by: str = "origin", n: int = 1000, level: float = LEVEL,
              seed: int = 0, columns: tuple[str, ...] = GROUP_COLUMNS, with_reliability: bool = True) -> Summary:
    """Everything above for labelled ``scores`` at ``threshold``: intervals from ``n`` resamples of whole ``by``
    groups, the curves overall and per grouping column with more than one value, and the reliability diagram
    (left out with ``with_reliability=False``, where the error analysis draws it already)."""
    scores = scores.reset_index(drop=True)
    units, used = resample_units(scores, by)
    figures = {"curves": curves_figure(scores, threshold)}
    for col in (c for c in columns if c in scores.columns and scores[c].nunique() > 1):
        figures[f"curves_by_{col}"] = curves_figure(scores, threshold, col)
    if with_reliability:
        figures["reliability"] = reliability(scores, threshold=threshold)
    return Summary(headline(scores, threshold, units, n, level, seed),
                   group_intervals(scores, threshold, units, columns, n, level, seed), figures, float(threshold), used,
                   level, n)


def interval_text(table: pd.DataFrame, digits: int = 3) -> pd.Series:
    """``value [low, high]`` per row of a table with value/low/high columns."""
    return table.apply(lambda r: metrics.Interval(r["value"], r["low"], r["high"]).text(digits), axis=1)
