"""Leave-one-out validation: each fake kind, generator (source) or whole data folder in turn is held out with reals
it has never seen, so the figures estimate how a detector does on a generator, or a dataset, that is in none of its
training data; every held-out figure comes with a bootstrap interval that resamples whole ``origin`` groups.

The protocol over one row per labelled file with ``label``, ``kind``, ``source``, ``origin`` (the group a fake shares
with the real it was made from), ``media`` (image/video) and ``dataset`` (the data folder):

* ``by="kind"`` or ``"source"``: one fold per fake kind (or generator). Generators with fewer than ``min_files`` fakes
  are merged per kind into one fold named ``"<kind>: small sources"`` (``Fold.members`` lists them: the output says
  which were merged). The fold's fakes, and every file of a group that holds one, are held out (fakes of other folds
  in such a group are dropped from that fold: neither trained nor tested); the real-only groups are dealt into as
  many shares as there are folds, per media type, in the order of the SHA-1 of the group name, so every fold is
  scored against photos and videos it has not trained on, and every real-only group is held out exactly once;
* ``by="folder"``: one fold per data folder, held out whole (its own reals and fakes; each folder was assembled
  separately, with its own reals and processing, so this measures dataset shift the way a hidden test set does);
* the model of a fold trains on every file of the other groups; its held-out files get one score each;
* per fold: AUC of the fold's fakes against its reals (with its interval), the same AUC within each media type
  (weighted by fakes: a photo-vs-video shortcut cannot raise it), macro F1 and the share of reals called real at a
  threshold chosen on the *other* folds' scores (never on this fold's labels);
* folds with fewer than ``min_files`` fakes are run and reported, flagged ``too_few``, and left out of the mean, the
  worst and the intervals; the final threshold is the one the rule picks over every fold's held-out scores;
* the mean over folds of AUC, macro F1 and reals called real carry bootstrap intervals too (``lib.metrics.bootstrap``
  on the pooled held-out files, resampled by origin, each fold's figure recomputed on its share of every resample),
  and two recipes scored on the same folds are compared by the interval of their paired difference
  (``paired_mean_difference``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..metrics import Interval, auc, bootstrap, f1_at, macro_f1, paired_difference, reals_called_real

LEAVE_OUT_BY = ("kind", "source", "folder")
VALIDATE = ("split", "leave_one_out")
SMALL = ": small sources"  # suffix of the fold that gathers one kind's generators with too few fakes each
BOOTSTRAP = 1000  # resamples behind every interval
LEVEL = 0.9


@dataclass
class Fold:
    """One held-out group of fakes: the files it trains on and the files it scores (row numbers of ``files``)."""

    name: str  # the kind, source (or merged small sources) or folder held out
    train: np.ndarray
    test: np.ndarray
    dropped: int  # fakes of other folds that share a group with a held-out fake
    fakes: int
    too_few: bool
    members: tuple[str, ...] = field(default_factory=tuple)  # sources merged into a "<kind>: small sources" fold


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


def fold_keys(files: pd.DataFrame, by: str, min_files: int) -> pd.Series:
    """The fold of every fake (None for reals): its kind, its folder, or its source, where a source with fewer than
    ``min_files`` fakes is merged with the other small sources of the same kind (``"<kind>: small sources"``)."""
    if by not in LEAVE_OUT_BY:
        from ..errors import ParameterError

        raise ParameterError("leave_out_by", by, LEAVE_OUT_BY)
    fake = files["label"] == 1
    column = {"kind": "kind", "source": "source", "folder": "dataset"}[by]
    keys = files[column].astype(str).where(fake)
    if by == "source":
        counts = keys[fake].value_counts()
        small = fake & keys.map(counts).lt(min_files)
        keys = keys.where(~small, files["kind"].astype(str) + SMALL)
    return keys


def merged_sources(files: pd.DataFrame, min_files: int = 10) -> dict[str, list[str]]:
    """Per merged fold (``"<kind>: small sources"``), the generators it gathers (leave-one-source-out)."""
    keys = fold_keys(files, "source", min_files)
    merged = files.assign(fold=keys)[keys.str.endswith(SMALL, na=False)]
    return {k: sorted(g["source"].astype(str).unique()) for k, g in merged.groupby("fold")}


def folds(files: pd.DataFrame, by: str = "kind", min_files: int = 10) -> list[Fold]:
    """The leave-one-out folds of ``files`` (one per fake kind, source, merged small sources or folder, by name)."""
    if by == "folder":
        return folder_folds(files, min_files)
    keys = fold_keys(files, by, min_files).to_numpy()
    fake = files["label"].to_numpy() == 1
    names = sorted(set(keys[fake]))
    shares = real_shares(files, len(names))
    members = merged_sources(files, min_files) if by == "source" else {}
    out = []
    for j, name in enumerate(names):
        held = fake & (keys == name)
        groups = set(files.loc[held, "origin"]) | {g for g, s in shares.items() if s == j}
        in_test = files["origin"].isin(groups).to_numpy()
        other = fake & ~held
        out.append(Fold(name, np.flatnonzero(~in_test), np.flatnonzero(in_test & ~other), int((in_test & other).sum()),
                        int(held.sum()), int(held.sum()) < min_files, tuple(members.get(name, ()))))
    return out


def folder_folds(files: pd.DataFrame, min_files: int = 10) -> list[Fold]:
    """One fold per data folder (``dataset``) holding fakes: the whole folder held out, the others trained on."""
    dataset = files["dataset"].astype(str).to_numpy()
    fake = files["label"].to_numpy() == 1
    out = []
    for name in sorted(set(dataset[fake])):
        held = dataset == name
        if len(set(files.loc[held, "origin"]) & set(files.loc[~held, "origin"])):
            raise ValueError(f"folder {name} shares origin groups with other folders")
        n = int((held & fake).sum())
        out.append(Fold(name, np.flatnonzero(~held), np.flatnonzero(held), 0, n, n < min_files))
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


def fold_threshold(fold_list: list[Fold], scores: list[np.ndarray], y_all: np.ndarray, i: int, rule: str = "max_f1",
                   reals: float = 0.9) -> float:
    """Fold ``i``'s threshold, never from its own labels: ``max_f1`` or ``reals`` chosen on the other folds' held-out
    scores (``evaluate.threshold_of``), or ``top:q``, the rank rule inference offers, on the fold's own scores (its
    most suspicious share q is called fake; the rule reads no labels)."""
    from .evaluate import is_rank_rule, threshold_of

    if is_rank_rule(rule):
        return threshold_of(scores[i], y_all[fold_list[i].test], rule)
    others = [j for j in range(len(fold_list)) if j != i]
    oy = np.concatenate([y_all[fold_list[j].test] for j in others]) if others else y_all[fold_list[i].test]
    os_ = np.concatenate([scores[j] for j in others]) if others else scores[i]
    return threshold_of(os_, oy, rule, reals)


def evaluate(fold_list: list[Fold], scores: list[np.ndarray], files: pd.DataFrame, rule: str = "max_f1",
             reals: float = 0.9, n_boot: int = BOOTSTRAP) -> tuple[pd.DataFrame, dict]:
    """Per-fold table (with each counted fold's AUC interval) and summary (mean and worst over folds with enough
    fakes, each with its interval; the final threshold) from each fold's held-out scores (aligned with
    ``fold.test``); thresholds by ``rule`` (``fold_threshold``)."""
    from .evaluate import threshold_of

    y_all, origin = files["label"].to_numpy(), files["origin"].astype(str).to_numpy()
    media = files["media"].astype(str).to_numpy()
    rows = []
    for i, (fold, s) in enumerate(zip(fold_list, scores)):
        thr = fold_threshold(fold_list, scores, y_all, i, rule, reals)
        row = {"held_out": fold.name, "too_few": fold.too_few, "trained_on": len(fold.train), "dropped": fold.dropped,
               **fold_metrics(y_all[fold.test], s, media[fold.test], thr), "auc_low": None, "auc_high": None,
               "members": ", ".join(fold.members)}
        if not fold.too_few and n_boot:
            ci = bootstrap(y_all[fold.test], s, origin[fold.test], auc, n_boot, LEVEL)
            row.update(auc_low=ci.low, auc_high=ci.high)
        rows.append(row)
    table = pd.DataFrame(rows)
    all_y = np.concatenate([y_all[f.test] for f in fold_list])
    all_s = np.concatenate(scores)
    threshold = threshold_of(all_s, all_y, rule, reals)
    summary = summarise(table, fold_list, scores, files, n_boot)
    summary.update(threshold=threshold, oof_f1=macro_f1(all_y, (all_s >= threshold).astype(int)), rule=rule)
    return table, summary


RULES = ("max_f1", "reals", "top:0.5")  # the threshold rules every leave-one-out run compares


def rule_table(fold_list: list[Fold], scores: list[np.ndarray], files: pd.DataFrame, reals: float = 0.9,
               rules: tuple[str, ...] = RULES, n_boot: int = BOOTSTRAP) -> pd.DataFrame:
    """How each threshold rule trades macro F1 against the reals it calls real, over the counted folds (each fold's
    threshold chosen without its labels, ``fold_threshold``): mean macro F1 and reals called real with intervals."""
    rows = []
    for rule in rules:
        _, s = evaluate(fold_list, scores, files, rule, reals, n_boot)
        rows.append({"rule": rule if rule != "reals" else f"reals:{reals:g}", "macro_f1": s["mean_f1"],
                     "f1_low": s.get("mean_f1_low"), "f1_high": s.get("mean_f1_high"),
                     "reals_called_real": s["reals_called_real"], "reals_low": s.get("reals_called_real_low"),
                     "reals_high": s.get("reals_called_real_high")})
    return pd.DataFrame(rows)


KEYS = ("held_out", "dataset", "filename")  # a held-out file in a run's val_predictions.csv


def paired_from_predictions(a: pd.DataFrame, b: pd.DataFrame, counted: list[str],
                            n_boot: int = BOOTSTRAP) -> Interval:
    """Mean held-out AUC of run A minus run B over the folds ``counted``, from two leave-one-out runs' held-out scores
    (val_predictions.csv: held_out, dataset, filename, label, origin, prob_fake) on the same folds, with the interval
    of the paired difference (whole origins resampled)."""
    both = a.merge(b, on=list(KEYS), suffixes=("_a", "_b"))
    if len(both) != len(a) or len(both) != len(b):
        raise ValueError(f"the two runs held out different files ({len(a)} and {len(b)} rows, {len(both)} in common)")
    both = both[both["held_out"].isin(counted)]
    place = {name: i for i, name in enumerate(counted)}
    coded = 2 * both["held_out"].map(place).to_numpy() + both["label_a"].to_numpy()
    return paired_difference(coded, both["prob_fake_a"], both["prob_fake_b"], both["origin_a"].astype(str),
                             mean_over_folds(auc), n_boot, LEVEL)


def interval_text(summary: dict[str, Any], key: str, digits: int = 3) -> str:
    """``value [low, high]`` of a summary figure (the value alone when it has no interval)."""
    value, low, high = summary.get(key), summary.get(f"{key}_low"), summary.get(f"{key}_high")
    if value is None:
        return "n/a"
    if low is None or high is None or not np.isfinite(low):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def summarise(table: pd.DataFrame, fold_list: list[Fold], scores: list[np.ndarray], files: pd.DataFrame,
              n_boot: int = BOOTSTRAP) -> dict[str, Any]:
    """Mean and worst over the counted folds of ``table`` (``evaluate``), with the intervals of the means."""
    counted = table[~table["too_few"] & table["auc"].notna()]
    worst = counted.loc[counted["auc"].idxmin()] if len(counted) else None
    out: dict[str, Any] = {
        "folds": len(table), "counted": len(counted), "too_few": table.loc[table["too_few"], "held_out"].tolist(),
        "merged": {f.name: list(f.members) for f in fold_list if f.members},
        "mean_auc": _mean(counted["auc"]), "worst_auc": float(worst["auc"]) if worst is not None else None,
        "worst": str(worst["held_out"]) if worst is not None else None,
        "worst_auc_low": worst["auc_low"] if worst is not None else None,
        "worst_auc_high": worst["auc_high"] if worst is not None else None,
        "mean_auc_within_media": _mean(counted["auc_within_media"]), "mean_f1": _mean(counted["f1"]),
        "reals_called_real": _mean(counted["reals_called_real"])}
    if n_boot and len(counted):
        keep = [i for i, f in enumerate(fold_list) if f.name in set(counted["held_out"])]
        pooled = pool(fold_list, scores, files, keep, counted["threshold"].to_numpy())
        for key, stat, col in (("mean_auc", auc, "score"), ("mean_f1", f1_at(0.0), "margin"),
                               ("reals_called_real", reals_called_real(0.0), "margin")):
            ci = bootstrap(pooled["coded"], pooled[col], pooled["origin"], mean_over_folds(stat), n_boot, LEVEL)
            out.update({f"{key}_low": ci.low, f"{key}_high": ci.high})
    return out


def pool(fold_list: list[Fold], scores: list[np.ndarray], files: pd.DataFrame, keep: list[int],
         thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """The held-out files of the folds ``keep`` in one table: ``coded`` = 2 × (fold's place in ``keep``) + label,
    score, margin over the fold's threshold, origin (what ``mean_over_folds`` statistics resample)."""
    parts = []
    for place, i in enumerate(keep):
        f = fold_list[i]
        thr = 0.0 if thresholds is None else float(thresholds[place])
        parts.append(pd.DataFrame({"coded": 2 * place + files["label"].to_numpy()[f.test], "score": scores[i],
                                   "margin": scores[i] - thr, "origin": files["origin"].astype(str).to_numpy()[f.test]}))
    return pd.concat(parts, ignore_index=True)


def mean_over_folds(stat: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    """A statistic of coded labels (2 × fold + label, ``pool``): ``stat`` within each fold present, averaged (folds a
    resample leaves undefined are skipped)."""
    def mean_stat(coded: np.ndarray, s: np.ndarray) -> float:
        coded, s = np.asarray(coded), np.asarray(s)
        fold = coded // 2
        values = [stat(coded[fold == k] % 2, s[fold == k]) for k in np.unique(fold)]
        values = [v for v in values if np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")

    return mean_stat


def paired_mean_difference(fold_list: list[Fold], scores_a: list[np.ndarray], scores_b: list[np.ndarray],
                           files: pd.DataFrame, n_boot: int = BOOTSTRAP) -> Interval:
    """Mean held-out AUC of recipe A minus recipe B over the counted folds (same folds, same files), with the
    interval of that paired difference (whole origins resampled): A beats B only when it excludes zero."""
    keep = [i for i, f in enumerate(fold_list) if not f.too_few]
    a, b = pool(fold_list, scores_a, files, keep), pool(fold_list, scores_b, files, keep)
    return paired_difference(a["coded"], a["score"], b["score"], a["origin"], mean_over_folds(auc), n_boot, LEVEL)


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None


def describe(fold_list: list[Fold], files: pd.DataFrame) -> pd.DataFrame:
    """Files per fold: held-out fakes and reals, training files, dropped fakes, whether it counts, and the sources
    merged into it (small generators of one kind)."""
    y = files["label"].to_numpy()
    return pd.DataFrame([{"held_out": f.name, "fakes": f.fakes, "reals": int((y[f.test] == 0).sum()),
                          "train_files": len(f.train), "dropped": f.dropped, "counted": not f.too_few,
                          "merged sources": len(f.members)} for f in fold_list])
