"""Where in the video: P(fake) of every sampled frame against its frame number, with the file's aggregate and the
threshold marked and the frames without a face shown as gaps (a partly manipulated clip, or a detector that lost
the face, shows up here)."""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..filerecord import FileRecord
from ..frames import sample_indices


def read_indices(record: FileRecord, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame number of every frame read and whether its crop was kept (scored).

    The record keeps the numbers of the kept frames and a box (or None) per frame read. When every frame read was
    kept they are the numbers; otherwise the sampling is redone from the reported frame count when it agrees with
    the kept frames, else a frame without a face is placed halfway between its scored neighbours."""
    kept_idx = np.asarray(record.frame_indices, dtype=float)
    n_read = len(record.boxes) or record.frames_read
    if len(kept_idx) == n_read:
        return kept_idx, np.ones(n_read, bool)
    has_face = np.array([b is not None for b in record.boxes], bool) if record.boxes else np.zeros(n_read, bool)
    if has_face.sum() != len(kept_idx):  # not the skip rule: the kept frames cannot be placed among those read
        return np.arange(n_read, dtype=float), np.zeros(n_read, bool)
    if record.count_reported:
        planned = sample_indices(int(record.count_reported), frames).astype(float)
        if len(planned) == n_read and np.array_equal(planned[has_face], kept_idx):
            return planned, has_face
    positions = np.full(n_read, np.nan)
    positions[has_face] = kept_idx
    known = np.flatnonzero(has_face)
    x = np.interp(np.arange(n_read), known, positions[known]) if len(known) else np.arange(n_read, dtype=float)
    return x, has_face


def series(record: FileRecord, probs: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame numbers, P(fake) per frame read (nan where no crop was scored) and where no face was found."""
    positions, kept = read_indices(record, frames)
    values = np.full(len(positions), np.nan)
    probs = np.asarray(probs, float)
    if kept.sum() == len(probs):
        values[kept] = probs
    no_face = np.array([b is None for b in record.boxes], bool) if len(record.boxes) == len(positions) else ~kept
    return positions, values, no_face


def draw(ax: plt.Axes, record: FileRecord, probs: np.ndarray, aggregate: float, threshold: float, frames: int,
         title: str) -> None:
    """One video's timeline on ``ax``."""
    x, y, gaps = series(record, probs, frames)
    ax.plot(x, y, "o-", ms=3, lw=1.2, color="tab:purple", label="P(fake) per frame")  # nan breaks the line
    edges = np.r_[x[0] - 0.5, (x[1:] + x[:-1]) / 2, x[-1] + 0.5] if len(x) else np.zeros(1)
    for i in np.flatnonzero(gaps):  # the band reaches halfway to the frames read beside it
        ax.axvspan(edges[i], edges[i + 1], color="0.85", lw=0, label="no face found")
        ax.plot([x[i]], [0.02], "x", color="0.4", ms=4)
    ax.axhline(aggregate, color="tab:purple", ls="-", lw=3, alpha=0.35, label="the file's score (aggregate)")
    ax.text(x.max() if len(x) else 0, aggregate, f" {aggregate:.3f}", fontsize=7, va="bottom", ha="right",
            color="tab:purple")
    ax.axhline(threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set(ylim=(-0.02, 1.02), xlabel="frame", ylabel="P(fake)")
    ax.set_title(textwrap.shorten(title, 70), fontsize=8, loc="left")
    if gaps.any():
        ax.text(0.01, 0.9, f"{int(gaps.sum())} of {len(gaps)} frames without a face (grey)", transform=ax.transAxes,
                fontsize=6.5)


def figure(items: list[dict[str, Any]], frames: int, threshold: float, columns: int = 2) -> plt.Figure:
    """Small multiples: one timeline per item (``record``, ``probs``, ``prob_fake``, ``title``)."""
    n = max(1, len(items))
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 2.4 * rows), squeeze=False)
    for ax, it in zip(axes.ravel(), items):
        draw(ax, it["record"], it["probs"], it["prob_fake"], threshold, frames, it["title"])
    for ax in axes.ravel()[len(items):]:
        ax.axis("off")
    if not items:
        axes[0][0].text(0.5, 0.5, "no video among the files listed", ha="center", fontsize=9)
        fig.tight_layout()
        return fig
    shown: dict[str, Any] = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            shown.setdefault(label, handle)
    fig.legend(list(shown.values()), list(shown), loc="upper center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return fig
