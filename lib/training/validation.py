"""Leave-one-out validation: each fake kind (or source) in turn is held out with reals it has never seen, so the
figures estimate how a detector does on a generator that is in none of its training data.

The protocol, for ``by`` = "kind" (or "source"), over one row per labelled file with ``label``, ``kind``,
``source``, ``origin`` (the group a fake shares with the real it was made from) and ``media`` (image/video):

* one fold per fake kind K; K's fakes, and every file of a group that holds a K fake, are held out (fakes of other
  kinds in such a group are dropped from that fold: neither trained nor tested);
* the real-only groups are dealt into as many shares as there are folds, per media type, in the order of the SHA-1
  of the group name, so every fold is scored against photos and videos it has not trained on, and every real-only
  group is held out exactly once;
* the model of fold K trains on every file of the other groups; its held-out files get one score each;
* per fold: AUC of K's fakes against the fold's reals, the same AUC within each media type (weighted by fakes: a
  photo-vs-video shortcut cannot raise it), macro F1 and the share of reals called real at a threshold chosen on
  the *other* folds' scores (never on this fold's labels);
* kinds with fewer than ``min_files`` fakes are run and reported, flagged ``too_few``, and left out of the mean and
  the worst; the final threshold is the one with the best macro F1 over every fold's held-out scores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import macro_f1

LEAVE_OUT_BY = ("kind", "source")
VALIDATE = ("split", "leave_one_out")


@dataclass
class Fold:
    """One held-out group of fakes: the files it trains on and the files it scores (row numbers of ``files``)."""

    name: str  # the kind (or source) held out
    train: np.ndarray
    test: np.ndarray
    dropped: int  # fakes of other kinds that share a group with a held-out fake
    fakes: int
    too_few: bool


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def real_shares(files: pd.DataFrame, n: int) -> dict[str, int]:
    """Share (0..n-1) of every group without a fake, dealt per media type in SHA-1 order of the group name."""
    faked = set(files.loc[files["label"] == 1, "origin"])
    groups = files.loc[~files["origin"].isin(faked)].groupby("origin")["media"].first()
    shares: dict[str, int] = {}
    for media in sorted(groups.astype(str).unique()):
        for i, g in enumerate(sorted(groups[groups.astype(str) == media].index, key=_sha1)):
            shares[g] = i % n
    return shares


def folds(files: pd.DataFrame, by: str = "kind", min_files: int = 10) -> list[Fold]:
    """The leave-one-out folds of ``files`` (one per fake kind or source, in order of name)."""
    fake = files["label"].to_numpy() == 1
    names = sorted(files.loc[fake, by].astype(str).unique())
    shares = real_shares(files, len(names))
    out = []
    for j, name in enumerate(names):
        held = fake & (files[by].astype(str).to_numpy() == name)
        groups = set(files.loc[held, "origin"]) | {g for g, s in shares.items() if s == j}
        in_test = files["origin"].isin(groups).to_numpy()
        other = fake & ~held
        out.append(Fold(name, np.flatnonzero(~in_test), np.flatnonzero(in_test & ~other), int((in_test & other).sum()),
                        int(held.sum()), int(held.sum()) < min_files))
    return out


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def fold_metrics(y: np.ndarray, scores: np.ndarray, media: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUC, AUC within media type, macro F1, reals called real and fakes called fake of one fold's held-out files."""
    parts = [(_auc(y[media == m], scores[media == m]), int(y[media == m].sum())) for m in np.unique(media[y == 1])]
    parts = [(a, n) for a, n in parts if a is not None]
    pred = scores >= threshold
    return {"fakes": int(y.sum()), "reals": int((y == 0).sum()), "auc": _auc(y, scores),
            "auc_within_media": sum(a * n for a, n in parts) / sum(n for _, n in parts) if parts else None,
            "threshold": float(threshold), "f1": macro_f1(y, pred.astype(int)),
            "reals_called_real": float((~pred[y == 0]).mean()) if (y == 0).any() else None,
            "fakes_called_fake": float(pred[y == 1].mean()) if (y == 1).any() else None}


def evaluate(fold_list: list[Fold], scores: list[np.ndarray], files: pd.DataFrame, rule: str = "max_f1",
             reals: float = 0.9) -> tuple[pd.DataFrame, dict]:
    """Per-fold table and summary (mean and worst over folds with enough fakes; the final threshold) from each
    fold's held-out scores (aligned with ``fold.test``); thresholds by ``rule`` (``evaluate.threshold_of``)."""
    from .evaluate import threshold_of

    y_all = files["label"].to_numpy()
    media = files["media"].astype(str).to_numpy()
    rows = []
    for i, (fold, s) in enumerate(zip(fold_list, scores)):
        others = [j for j in range(len(fold_list)) if j != i]
        oy = np.concatenate([y_all[fold_list[j].test] for j in others]) if others else y_all[fold.test]
        os_ = np.concatenate([scores[j] for j in others]) if others else s
        thr = threshold_of(os_, oy, rule, reals)  # chosen without this fold's labels
        rows.append({"held_out": fold.name, "too_few": fold.too_few, "trained_on": len(fold.train),
                     "dropped": fold.dropped, **fold_metrics(y_all[fold.test], s, media[fold.test], thr)})
    table = pd.DataFrame(rows)
    counted = table[~table["too_few"] & table["auc"].notna()]
    all_y = np.concatenate([y_all[f.test] for f in fold_list])
    all_s = np.concatenate(scores)
    threshold = threshold_of(all_s, all_y, rule, reals)
    oof_f1 = macro_f1(all_y, (all_s >= threshold).astype(int))
    worst = counted.loc[counted["auc"].idxmin()] if len(counted) else None
    summary = {"folds": len(table), "counted": len(counted),
               "too_few": table.loc[table["too_few"], "held_out"].tolist(),
               "mean_auc": _mean(counted["auc"]), "worst_auc": float(worst["auc"]) if worst is not None else None,
               "worst": str(worst["held_out"]) if worst is not None else None,
               "mean_auc_within_media": _mean(counted["auc_within_media"]), "mean_f1": _mean(counted["f1"]),
               "reals_called_real": _mean(counted["reals_called_real"]), "threshold": threshold, "oof_f1": oof_f1}
    return table, summary


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None


def describe(fold_list: list[Fold], files: pd.DataFrame) -> pd.DataFrame:
    """Files per fold: held-out fakes and reals, training files, dropped fakes, and whether it counts."""
    y = files["label"].to_numpy()
    return pd.DataFrame([{"held_out": f.name, "fakes": f.fakes, "reals": int((y[f.test] == 0).sum()),
                          "train_files": len(f.train), "dropped": f.dropped,
                          "counted": not f.too_few} for f in fold_list])
