"""Local validation: macro F1 (fake = 1), confusion matrix, per-source figures, an inverted-label alarm, threshold
tuning, and bootstrap intervals that resample whole groups (``bootstrap``, ``paired_difference``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score

from .errors import ParameterError

INVERSION_GAP = 0.2  # flipped predictions this much better in macro F1 → the labels look inverted


def read_labels(path: Path) -> pd.DataFrame:
    """A labels.csv with at least ``filename,label`` (label 0 = real, 1 = fake)."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError("labels", str(path), "a CSV with columns filename,label (or '' for none)", why="no such file")
    # text columns stay text: an origin such as FaceForensics++'s "000" must not become the number 0
    try:
        df = pd.read_csv(path, dtype={c: str for c in ("filename", "source", "kind", "origin", "split")},
                         keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ParameterError("labels", str(path), "a UTF-8 CSV with columns filename,label",
                             why=f"it cannot be read ({str(e).splitlines()[0]})") from e
    missing = {"filename", "label"} - set(df.columns)
    if missing:
        raise ParameterError("labels", str(path), "a CSV with columns filename,label", why=f"missing columns {sorted(missing)}")
    if not df["label"].astype(str).isin(["0", "1"]).all():
        raise ParameterError("labels", str(path), "labels 0 (real) and 1 (fake)", why="other label values found")
    return df.assign(label=df["label"].astype(int))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over both classes, as the competition scores it (a class with no true and no predicted file scores
    0, as scikit-learn's ``f1_score(average="macro", labels=[0, 1], zero_division=0)``; counted directly, which is
    what keeps thousands of bootstrap resamples fast)."""
    t, p = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    tp, fp = float(np.sum((t == 1) & (p == 1))), float(np.sum((t == 0) & (p == 1)))
    fn, tn = float(np.sum((t == 1) & (p == 0))), float(np.sum((t == 0) & (p == 0)))
    fake = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    real = 2 * tn / (2 * tn + fn + fp) if tn + fn + fp else 0.0
    return (fake + real) / 2


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> list[list[int]]:
    """[[true real→real, real→fake], [fake→real, fake→fake]]."""
    return confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist()


def _scores(y: np.ndarray, pred: np.ndarray, prob: np.ndarray) -> dict[str, Any]:
    both = len(set(y.tolist())) == 2
    return {"n": int(len(y)), "macro_f1": macro_f1(y, pred), "accuracy": float(np.mean(y == pred)) if len(y) else None,
            "auc": float(roc_auc_score(y, prob)) if both else None, "confusion": confusion(y, pred),
            "fake_share_true": float(np.mean(y)) if len(y) else None, "fake_share_pred": float(np.mean(pred)) if len(y) else None}


def evaluate(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    """Metrics of ``predictions`` (filename, prob_fake, label) against ``labels``; per source when there is a column."""
    df = predictions.merge(labels.rename(columns={"label": "truth"}), on="filename", how="inner")
    y, pred, prob = df["truth"].to_numpy(), df["label"].to_numpy(), df["prob_fake"].to_numpy()
    out = _scores(y, pred, prob)
    out["unlabelled_files"] = sorted(set(predictions["filename"]) - set(labels["filename"]))
    out["flipped_macro_f1"] = macro_f1(y, 1 - pred)
    out["labels_look_inverted"] = bool(out["flipped_macro_f1"] - out["macro_f1"] > INVERSION_GAP)
    if "source" in df.columns:
        out["per_source"] = {str(s): _scores(g["truth"].to_numpy(), g["label"].to_numpy(), g["prob_fake"].to_numpy())
                             for s, g in df.groupby("source")}
    if out["labels_look_inverted"]:
        warnings.warn(inversion_message(out), stacklevel=2)
    return out


def inversion_message(m: dict[str, Any]) -> str:
    return ("LABELS LOOK INVERTED: macro F1 of the flipped predictions is "
            f"{m['flipped_macro_f1']:.3f} against {m['macro_f1']:.3f}. Check the model's id2label and the labels file "
            "before submitting (fake must be 1).")


def per_source_table(m: dict[str, Any]) -> pd.DataFrame:
    """The per-source figures of ``evaluate`` as a table (empty when there is no source column)."""
    rows = [{"source": s, **{k: v for k, v in d.items() if k != "confusion"}} for s, d in m.get("per_source", {}).items()]
    return pd.DataFrame(rows)


def threshold_curve(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct cut of ``scores`` (midpoints between neighbours, plus both ends) and its macro F1, in one pass."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order].astype(float)
    cut = np.r_[0, np.flatnonzero(np.diff(s) != 0) + 1, len(s)]  # number predicted fake at each distinct cut
    tp = np.r_[0.0, np.cumsum(t)][cut]
    fp, pos, neg = cut - tp, t.sum(), len(t) - t.sum()
    fn, tn = pos - tp, neg - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = (np.nan_to_num(2 * tp / (2 * tp + fp + fn)) + np.nan_to_num(2 * tn / (2 * tn + fn + fp))) / 2
    padded = np.r_[s[0] + 1e-9, s, s[-1] - 1e-9]  # padded[c]: the c-th highest score (c ≥ 1)
    return (padded[cut] + padded[cut + 1]) / 2, f1


def tune_threshold(scores: np.ndarray, y: np.ndarray, default: float = 0.5) -> tuple[float, float]:
    """The threshold with the best macro F1 on (scores, y), ties broken towards ``default``; and that F1."""
    thresholds, f1 = threshold_curve(scores, y)
    best = np.flatnonzero(np.isclose(f1, f1.max()))
    k = best[np.argmin(np.abs(thresholds[best] - default))]
    return float(np.clip(thresholds[k], 0.0, 1.0)), float(f1[k])


def rank_threshold(scores: np.ndarray, share: float) -> float:
    """The threshold of the rank rule: the ``share`` of ``scores`` that are highest are called fake (round(share × n)
    files; ties at the cut all go one way). It needs no calibration: whatever the scale of the scores on unseen
    media, the most suspicious ``share`` is called fake."""
    s = np.sort(np.asarray(scores, float))[::-1]
    k = int(round(float(share) * len(s)))
    if not len(s) or k <= 0:
        return float(s[0]) + 1e-9 if len(s) else 0.5
    if k >= len(s):
        return float(s[-1])
    return float((s[k - 1] + s[k]) / 2) if s[k - 1] > s[k] else float(s[k - 1])


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (ties averaged)."""
    return float(pd.Series(np.asarray(x, float)).rank().corr(pd.Series(np.asarray(y, float)).rank()))


# ------------------------------------------------------------------------------ intervals by resampling whole groups
Statistic = Callable[[np.ndarray, np.ndarray], float]  # (labels, scores) -> a figure such as AUC; nan where undefined


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (ties count half, as ``roc_auc_score``), from the ranks of the scores; nan when ``y`` holds one class
    only."""
    y = np.asarray(y).astype(int)
    pos = int(np.sum(y == 1))
    neg = len(y) - pos
    if not pos or not neg:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, float))
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, ties given the mean of the ranks they share (numpy only: this module ships)."""
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def f1_at(threshold: float) -> Statistic:
    """Macro F1 of ``scores ≥ threshold``."""
    return lambda y, s: macro_f1(np.asarray(y), (np.asarray(s) >= threshold).astype(int))


def reals_called_real(threshold: float) -> Statistic:
    """Share of the reals (label 0) scored below ``threshold``; nan when there is none."""
    def stat(y: np.ndarray, s: np.ndarray) -> float:
        reals = np.asarray(s)[np.asarray(y) == 0]
        return float(np.mean(reals < threshold)) if len(reals) else float("nan")

    return stat


@dataclass(frozen=True)
class Interval:
    """A figure and its bootstrap interval (``level``, percentile method) from ``n`` resamples of whole groups."""

    value: float
    low: float
    high: float
    level: float = 0.9
    n: int = 0  # resamples in which the figure was defined

    def excludes(self, x: float = 0.0) -> bool:
        """True when ``x`` lies outside the interval (e.g. a difference whose interval excludes zero)."""
        return bool(x < self.low or x > self.high)

    def text(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _group_index(groups: np.ndarray) -> list[np.ndarray]:
    """Row indices of each group, in first-seen order."""
    _, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)] if len(inverse) else []


def _resamples(groups: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` bootstrap resamples of row indices, drawn by whole group (all rows of one origin move together)."""
    members = _group_index(groups)
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))]) for _ in range(n)]


def _interval(value: float, draws: list[float], level: float) -> Interval:
    ok = np.asarray([d for d in draws if np.isfinite(d)], float)
    if not len(ok) or not np.isfinite(value):
        return Interval(value, float("nan"), float("nan"), level, int(len(ok)))
    lo, hi = np.quantile(ok, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(value), float(lo), float(hi), level, int(len(ok)))


def bootstrap(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, stat: Statistic = auc, n: int = 1000,
              level: float = 0.9, seed: int = 0) -> Interval:
    """``stat(y, scores)`` with its bootstrap interval, resampling whole ``groups`` (e.g. ``origin``: the clips and
    photos of one subject move together, so the interval is not narrowed by near-copies)."""
    y, scores = np.asarray(y), np.asarray(scores, float)
    draws = [stat(y[i], scores[i]) for i in _resamples(groups, n, seed)]
    return _interval(stat(y, scores), draws, level)


def paired_difference(y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, groups: np.ndarray,
                      stat: Statistic = auc, n: int = 1000, level: float = 0.9, seed: int = 0) -> Interval:
    """``stat`` of recipe A minus recipe B on the same files, with the interval of that difference from the same
    resamples for both (paired): A is better than B only when the interval excludes zero."""
    y, a, b = np.asarray(y), np.asarray(scores_a, float), np.asarray(scores_b, float)
    draws = [stat(y[i], a[i]) - stat(y[i], b[i]) for i in _resamples(groups, n, seed)]
    return _interval(stat(y, a) - stat(y, b), draws, level)
