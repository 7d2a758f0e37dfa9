"""Figures the notebooks show and save: fake-probability distributions and the crops the model sees."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import cache
from ..filerecord import FileRecord
from ..paths import CROP_CACHE


def prob_histogram(predictions: pd.DataFrame, labels: pd.DataFrame | None = None, threshold: float = 0.5) -> plt.Figure:
    """Histogram of prob_fake, split by true label when labels are given, with the threshold marked."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(0, 1, 21)
    if labels is not None:
        df = predictions.merge(labels[["filename", "label"]].rename(columns={"label": "truth"}), on="filename")
        for truth, name, color in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
            ax.hist(df.loc[df["truth"] == truth, "prob_fake"], bins=bins, alpha=0.6, label=f"true {name}", color=color)
        ax.legend()
    else:
        ax.hist(predictions["prob_fake"], bins=bins, color="tab:gray")
    ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set(xlabel="prob_fake", ylabel="files", title="Fake probability per file")
    fig.tight_layout()
    return fig


def crop_grid(records: list[FileRecord], cache_dir: Path | None = None, n_files: int = 8, per_file: int = 4,
              predictions: pd.DataFrame | None = None) -> plt.Figure:
    """A few crops of the first files that have crops: what the model actually sees."""
    cache_dir = Path(cache_dir or CROP_CACHE)
    chosen = [r for r in records if r.has_crops][:n_files]
    fig, axes = plt.subplots(max(1, len(chosen)), per_file, figsize=(1.6 * per_file, 1.7 * max(1, len(chosen))),
                             squeeze=False)
    probs = dict(zip(predictions["filename"], predictions["prob_fake"])) if predictions is not None else {}
    for row, r in zip(axes, chosen):
        crops = cache.load_crops(cache_dir, r)
        idx = np.linspace(0, len(crops) - 1, min(per_file, len(crops))).round().astype(int)
        for ax, i in zip(row, idx):
            ax.imshow(crops[i])
        title = r.filename[:24] + (f"  p={probs[r.filename]:.2f}" if r.filename in probs else "")
        row[0].set_title(title, fontsize=7, loc="left")
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return fig
