"""Closed-form heads on fixed per-file features: a class-balanced L2 logistic regression, optionally on only the
features that separate every training kind of fake from the reals the same way (``tau`` > 0).

The second is the kit's answer to "validation says 0.9, unseen generators say 0.6": a feature whose fake-minus-real
effect (Cohen's d) flips sign between kinds, or is weak in one of them, is a cue of some generators rather than of
forgery, and a detector leaning on it fails on the next generator. Keeping the consistent ones trades a little of
the in-distribution score for the held-out one (``lib.training.validation`` measures both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

MIN_FAKES = 5  # a kind of fake with fewer files does not vote on which features are consistent
MIN_FEATURES = 8  # when fewer pass tau, the most consistent ones are kept anyway


@dataclass
class LinearHead:
    """Logit = weight · f + bias on raw features (the standardisation folded in); ``kept`` the features used."""

    weight: np.ndarray
    bias: float
    kept: np.ndarray
    effects: dict[str, np.ndarray]  # kind -> Cohen's d of every (standardised) feature, fakes of that kind vs reals


def cohens_d(z: np.ndarray, y: np.ndarray, kinds: np.ndarray) -> dict[str, np.ndarray]:
    """Per fake kind with at least MIN_FAKES rows: the standardised mean difference of each feature against reals."""
    reals = z[y == 0]
    out = {}
    for kind in sorted(set(kinds[y == 1])):
        fakes = z[(y == 1) & (kinds == kind)]
        if len(fakes) >= MIN_FAKES:
            out[kind] = (fakes.mean(0) - reals.mean(0)) / np.sqrt((fakes.var(0) + reals.var(0)) / 2 + 1e-9)
    return out


def consistency(effects: dict[str, np.ndarray]) -> np.ndarray:
    """Per feature: its weakest effect over the kinds when every kind's effect has the same sign, else 0."""
    d = np.stack(list(effects.values()))
    return np.where((np.sign(d) == np.sign(d[0])).all(0), np.abs(d).min(0), 0.0)


def consistent_features(effects: dict[str, np.ndarray], tau: float, n_features: int, k: int = 0) -> np.ndarray:
    """Indices of the features whose effect has one sign in every kind: the ``k`` most consistent ones, or (k = 0)
    those with at least ``tau`` in each kind, at least MIN_FEATURES. All of them when neither is asked for or no kind
    can vote (with a single kind, its own effect ranks them)."""
    if (tau <= 0 and k <= 0) or not effects:
        return np.arange(n_features)
    strength = consistency(effects)
    if k > 0:
        return np.sort(np.argsort(-strength, kind="stable")[:k])
    kept = np.flatnonzero(strength >= tau)
    return kept if len(kept) >= MIN_FEATURES else np.argsort(-strength)[:MIN_FEATURES]


def fit(x: np.ndarray, y: np.ndarray, kinds: np.ndarray, tau: float = 0.0, c: float = 0.1,
        seed: int = 0, k: int = 0) -> LinearHead:
    """Standardise ``x`` (rows: files), keep the consistent features, fit the class-balanced L2 regression."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    effects = cohens_d(z, y, kinds)
    kept = consistent_features(effects, tau, x.shape[1], k)
    lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=seed).fit(z[:, kept], y)
    weight = np.zeros(x.shape[1])
    weight[kept] = lr.coef_[0] / std[kept]
    bias = float(lr.intercept_[0] - np.dot(lr.coef_[0], mean[kept] / std[kept]))
    return LinearHead(weight, bias, kept, effects)


def choose_k(x: np.ndarray, files: "pd.DataFrame", candidates: list[int], c: float = 0.1, seed: int = 0,
             extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[int, dict[int, float]]:
    """The number of consistent features whose held-out AUC, averaged over an inner leave-one-kind-out of the
    training files (``files``: one row per row of ``x``, with label, kind, origin, media), is best; and each
    candidate's mean AUC. ``extra`` rows (features, labels, kinds: e.g. self-blended pseudo-fakes) always train."""
    from . import validation

    folds = [f for f in validation.folds(files, "kind", MIN_FAKES) if not f.too_few]
    y, kinds = files["label"].to_numpy(), files["kind"].astype(str).to_numpy()
    if len(folds) < 2:
        return candidates[0], {}
    scores = {}
    for k in candidates:
        aucs = []
        for fold in folds:
            xs, ys, ks = x[fold.train], y[fold.train], kinds[fold.train]
            if extra is not None:
                xs, ys, ks = np.vstack([xs, extra[0]]), np.r_[ys, extra[1]], np.r_[ks, extra[2]]
            head = fit(xs, ys, ks, 0.0, c, seed, k)
            auc = validation.fold_metrics(y[fold.test], x[fold.test] @ head.weight + head.bias,
                                          files["media"].astype(str).to_numpy()[fold.test], 0.0)["auc"]
            if auc is not None:
                aucs.append(auc)
        scores[k] = float(np.mean(aucs)) if aucs else float("nan")
    best = max(candidates, key=lambda k: (np.nan_to_num(scores[k], nan=-1), -k))
    return best, scores
