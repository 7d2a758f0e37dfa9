"""Validation by file: per-file P(fake) from crop logits, macro F1 and AUC, the threshold choice, the per-kind
report and the training curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..metrics import macro_f1, rank_threshold, tune_threshold
from ..options import is_rank_rule, top_share
from .data import CropSet


def file_scores(val: CropSet, logits: np.ndarray, aggregate: str = "mean") -> pd.DataFrame:
    """Per-file P(fake) from its crops' logits, aggregated as infer does (``lib.aggregate``; default: the mean),
    with label and kind."""
    import torch

    from ..aggregate import AGGREGATORS

    combine = AGGREGATORS.get(aggregate)
    prob = torch.softmax(torch.from_numpy(logits).double(), -1)[:, 1].numpy()
    per_file = pd.Series(prob).groupby(val.file_index).agg(lambda p: combine(p.to_numpy()))
    return val.files.assign(prob_fake=per_file.reindex(range(len(val.files))).to_numpy())


def file_metrics(scores: pd.DataFrame, threshold: float = 0.5) -> dict[str, float | None]:
    """Macro F1 at ``threshold`` and AUC over files."""
    from sklearn.metrics import roc_auc_score

    y, p = scores["label"].to_numpy(), scores["prob_fake"].to_numpy()
    auc = float(roc_auc_score(y, p)) if len(set(y)) == 2 else None
    return {"val_f1": macro_f1(y, (p >= threshold).astype(int)), "val_auc": auc}


THRESHOLD_RULES = ("max_f1", "reals")  # the best macro F1 | the threshold_reals share of reals called real


def threshold_of(prob: np.ndarray, y: np.ndarray, rule: str = "max_f1", reals: float = 0.9) -> float:
    """The threshold of scores by ``rule``: ``max_f1`` (ties towards 0.5) or ``reals`` (the ``reals`` quantile of the
    real files' scores: that share of reals called real, whatever the fakes do), both from the labels; or the rank
    rule ``top:q`` (``lib.metrics.rank_threshold``: the scores' own most suspicious share q, labels unused)."""
    if is_rank_rule(rule):
        return rank_threshold(prob, top_share(rule))
    if rule == "reals":
        real = prob[y == 0]
        return float(np.quantile(real, reals)) + 1e-9 if len(real) else 0.5
    return tune_threshold(prob, y, default=0.5)[0]


def choose_threshold(scores: pd.DataFrame, rule: str = "max_f1", reals: float = 0.9) -> tuple[float, float]:
    """(threshold, macro F1 there) of file-level scores, by ``rule`` (see ``threshold_of``)."""
    prob, y = scores["prob_fake"].to_numpy(), scores["label"].to_numpy()
    t = threshold_of(prob, y, rule, reals)
    return t, macro_f1(y, (prob >= t).astype(int))


def kind_report(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per kind: files, accuracy at ``threshold``, mean P(fake); for fake kinds also AUC and macro F1 against all
    the real val files (a fake kind alone has one class)."""
    from sklearn.metrics import roc_auc_score

    real = scores[scores["label"] == 0]
    rows = []
    for kind, g in scores.groupby("kind", sort=True):
        pred = (g["prob_fake"] >= threshold).astype(int)
        row: dict[str, Any] = {"kind": kind, "label": int(g["label"].iloc[0]), "files": len(g),
                               "accuracy": float((pred == g["label"]).mean()),
                               "mean_prob_fake": float(g["prob_fake"].mean())}
        if row["label"] == 1 and len(real):
            both = pd.concat([real, g])
            row["auc_vs_real"] = float(roc_auc_score(both["label"], both["prob_fake"]))
            row["f1_vs_real"] = macro_f1(both["label"].to_numpy(), (both["prob_fake"] >= threshold).astype(int).to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def plot_curves(history: pd.DataFrame):  # -> matplotlib Figure
    """Loss (train, val) and val F1/AUC by epoch; with a ``held_out`` column (leave-one-out folds), the held-out
    AUC of each fold by epoch."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    groups = history.groupby("held_out") if "held_out" in history.columns else [("", history)]
    for name, h in groups:
        label = f" {name}" if name else ""
        a.plot(h["epoch"], h["train_loss"], "o-", label=f"train loss{label}")
        if "val_loss" in h.columns and not name:
            a.plot(h["epoch"], h["val_loss"], "o-", label="val loss (CE)")
        if "val_f1" in h.columns and not name:
            b.plot(h["epoch"], h["val_f1"], "o-", label="val macro F1 (files, threshold 0.5)")
        if "val_auc" in h.columns and h["val_auc"].notna().any():
            b.plot(h["epoch"], h["val_auc"], "o-", label=f"{'held-out' if name else 'val'} AUC (files){label}")
    a.set_xlabel("epoch")
    a.legend(fontsize=7)
    b.set_ylim(0, 1.02)
    b.set_xlabel("epoch")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig
