"""Error analysis of labelled scores: the most confident mistakes with the crops the model saw and its per-frame
probabilities, figures by source and kind, and a reliability diagram. infer.ipynb runs it on a labelled folder,
train.ipynb on its validation (or leave-one-out) scores; both save it in the run folder and list it in run.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..metrics import macro_f1

META = ("source", "kind", "media", "frames_read", "faces_found", "crops", "fallback", "reason", "held_out")  # shown when present
Crops = Callable[[int], tuple[np.ndarray, np.ndarray]]  # row of the scores table -> (crops, P(fake) of each crop)


@dataclass
class Analysis:
    """The mistakes, the per-group table and the figures of one set of labelled scores."""

    errors: pd.DataFrame  # the most confident false positives and false negatives
    groups: pd.DataFrame  # per source / kind: files, AUC, F1, reals called real, fakes called fake
    figures: dict[str, Any] = field(default_factory=dict)  # name -> matplotlib Figure

    def save(self, folder: Path) -> dict[str, str]:
        """Write errors.csv, error_groups.csv and each figure as PNG into ``folder``; returns name -> file name."""
        folder = Path(folder)
        written = {"errors": "errors.csv", "groups": "error_groups.csv"}
        self.errors.to_csv(folder / written["errors"], index=False)
        self.groups.to_csv(folder / written["groups"], index=False)
        for name, fig in self.figures.items():
            written[name] = f"{name}.png"
            fig.savefig(folder / written[name], dpi=110)
        return written


def confident_errors(scores: pd.DataFrame, threshold: float, n: int = 6) -> pd.DataFrame:
    """The ``n`` most confident false positives (reals with the highest prob_fake) and false negatives (fakes with
    the lowest), from ``scores`` with ``truth`` (0/1) and ``prob_fake``; keeps the scores' row number as ``row``."""
    s = scores.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))
    fp = s[(s["truth"] == 0) & (s["prob_fake"] >= threshold)].nlargest(n, "prob_fake").assign(error="false positive")
    fn = s[(s["truth"] == 1) & (s["prob_fake"] < threshold)].nsmallest(n, "prob_fake").assign(error="false negative")
    return pd.concat([fp, fn], ignore_index=True)


def group_table(scores: pd.DataFrame, threshold: float, by: tuple[str, ...] = ("source", "kind")) -> pd.DataFrame:
    """Per value of each ``by`` column present: files, reals called real, fakes called fake, macro F1, and AUC (a
    group of one class is ranked against every real of the scores, as a held-out kind is)."""
    from sklearn.metrics import roc_auc_score

    reals = scores[scores["truth"] == 0]
    rows = []
    for col in (c for c in by if c in scores.columns):
        for value, g in scores.groupby(col, sort=True):
            pred = (g["prob_fake"] >= threshold).astype(int)
            both = g if g["truth"].nunique() == 2 else pd.concat([reals, g]).drop_duplicates()
            rows.append({"by": col, "group": value, "files": len(g), "fakes": int(g["truth"].sum()),
                         "auc": float(roc_auc_score(both["truth"], both["prob_fake"])) if both["truth"].nunique() == 2
                         else None, "macro_f1": macro_f1(g["truth"].to_numpy(), pred.to_numpy()),
                         "reals_called_real": float((pred[g["truth"] == 0] == 0).mean()) if (g["truth"] == 0).any()
                         else None,
                         "fakes_called_fake": float((pred[g["truth"] == 1] == 1).mean()) if (g["truth"] == 1).any()
                         else None})
    return pd.DataFrame(rows)


def reliability(scores: pd.DataFrame, bins: int = 10, threshold: float | None = None) -> plt.Figure:
    """Reliability diagram: share of fakes against mean prob_fake in equal-width bins, with the files per bin (and
    the threshold as a dashed line when given)."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(scores["prob_fake"], edges[1:-1]), 0, bins - 1)
    table = scores.assign(bin=idx).groupby("bin").agg(p=("prob_fake", "mean"), fake=("truth", "mean"),
                                                      n=("truth", "size"))
    fig, (a, b) = plt.subplots(2, 1, figsize=(4.8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    a.plot([0, 1], [0, 1], color="0.7", ls="--", lw=1)
    a.plot(table["p"], table["fake"], "o-")
    a.set(ylabel="share of fakes", title="Reliability of prob_fake", xlim=(0, 1), ylim=(0, 1))
    b.bar((edges[:-1] + edges[1:])[table.index] / 2, table["n"], width=1 / bins, color="0.6")
    b.set(xlabel="prob_fake (bin mean)", ylabel="files")
    if threshold is not None:
        for ax in (a, b):
            ax.axvline(threshold, color="k", ls=":", lw=1)
        a.text(threshold, 0.02, f" threshold {threshold:.3g}", fontsize=7, va="bottom")
    fig.tight_layout()
    return fig


def error_grid(errors: pd.DataFrame, crops_of: Crops, per_file: int = 5) -> plt.Figure:
    """One row per mistake: the file's name, score and metadata, then up to ``per_file`` of its crops, each titled
    with its P(fake)."""
    import textwrap

    n = max(1, len(errors))
    fig, axes = plt.subplots(n, per_file + 1, figsize=(1.6 * per_file + 3.0, 1.8 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1.5] + [1] * per_file})
    for ax_row, (_, e) in zip(axes, errors.iterrows()):
        crops, probs = crops_of(int(e["row"]))
        pick = np.linspace(0, len(crops) - 1, min(per_file, len(crops))).round().astype(int) if len(crops) else []
        for ax, i in zip(ax_row[1:], pick):
            ax.imshow(crops[i])
            ax.set_title(f"p={probs[i]:.2f}", fontsize=7)
        meta = ", ".join(f"{k} {e[k]}" for k in META if k in e and pd.notna(e[k]) and e[k] != "")
        text = f"{e['error']}\n{str(e['filename'])[:60]}\nprob_fake {e['prob_fake']:.3f}\n" + textwrap.fill(meta, 34)
        ax_row[0].text(0, 0.5, text, transform=ax_row[0].transAxes, fontsize=6.5, va="center",
                       color="tab:red" if e["error"] == "false positive" else "tab:blue")
    for ax in axes.ravel():
        ax.axis("off")
    if not len(errors):
        axes[0][0].text(0, 0.5, "no mistakes at this threshold", fontsize=9)
    fig.tight_layout()
    return fig


def analyse(scores: pd.DataFrame, threshold: float, crops_of: Crops, n: int = 6) -> Analysis:
    """Everything above for ``scores`` (filename, truth, prob_fake and any metadata columns)."""
    errors = confident_errors(scores, threshold, n)
    figures = {"error_crops": error_grid(errors, crops_of), "reliability": reliability(scores)}
    shown = [c for c in ("error", "filename", "truth", "prob_fake", *META) if c in errors.columns]
    return Analysis(errors[shown], group_table(scores, threshold), figures)


def labelled_scores(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The prediction rows of labelled files, in prediction order: ``truth`` (0/1) beside ``prob_fake``, ``media``
    (image/video: the table's ``kind``), the labels' source, kind (of fake) and origin when present, and ``pred_row``
    (the row of ``table``, i.e. of the prediction's records and frame probabilities)."""
    extra = [c for c in ("source", "kind", "origin") if c in truth.columns]
    labels = truth[["filename", "label", *extra]].rename(columns={"label": "truth"})
    rows = table.rename(columns={"kind": "media"}).assign(pred_row=np.arange(len(table)))
    scores = rows.merge(labels, on="filename", how="inner").sort_values("pred_row", kind="stable")
    return scores.reset_index(drop=True)


def for_prediction(pred: Any, truth: pd.DataFrame, cache_dir: Path | None = None, n: int = 6) -> Analysis:
    """The analysis of a ``predict.Prediction`` against labels (``filename,label[,source,kind]``): the crops come
    from the crop cache, the per-frame probabilities from the prediction; unlabelled files are left out."""
    from .. import cache
    from ..paths import CROP_CACHE

    scores = labelled_scores(pred.table, truth)

    def crops_of(row: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(scores.loc[row, "pred_row"])
        record = pred.records[i]
        if not record.has_crops:
            return np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0)
        return cache.load_crops(Path(cache_dir or CROP_CACHE), record), pred.frame_probs.get(i, np.zeros(0))

    return analyse(scores, pred.threshold, crops_of, n)
