"""Per-file fake probability from per-frame fake probabilities (TTA views are averaged per frame first)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .registry import Registry

Aggregator = Callable[[np.ndarray], float]
AGGREGATORS: Registry[Aggregator] = Registry("aggregate")


@AGGREGATORS.register("mean")
def mean(p: np.ndarray) -> float:
    """Mean of the per-frame fake probabilities (the competition baseline: softmax averaged over frames)."""
    return float(np.mean(p))


@AGGREGATORS.register("median")
def median(p: np.ndarray) -> float:
    """Median per-frame probability: robust to a few frames with a bad crop."""
    return float(np.median(p))


@AGGREGATORS.register("max")
def maximum(p: np.ndarray) -> float:
    """The most confident fake frame (catches short manipulations, raises false positives)."""
    return float(np.max(p))


@AGGREGATORS.register("logit_mean")
def logit_mean(p: np.ndarray, eps: float = 1e-6) -> float:
    """Sigmoid of the mean logit (ICPR 2020, polimi)."""
    q = np.clip(p, eps, 1 - eps)
    return float(1 / (1 + np.exp(-np.mean(np.log(q / (1 - q))))))


@AGGREGATORS.register("confident")
def confident(p: np.ndarray, high: float = 0.8, low: float = 0.2) -> float:
    """DFDC 1st place rule: mean of the confident-fake frames if there are enough, else of the confident-real ones, else the mean."""
    n = len(p)
    fakes = p[p > high]
    if len(fakes) > n / 2.5 and len(fakes) > 11:
        return float(np.mean(fakes))
    reals = p[p < low]
    if len(reals) > 0.9 * n:
        return float(np.mean(reals))
    return float(np.mean(p))


@AGGREGATORS.register("file_head")
def file_head(p: np.ndarray) -> float:
    """For models that score a file from all its crops at once (a file head, e.g. strategy trace_signals): the model
    gives the file's P(fake) itself; per-frame probabilities cannot be combined into it."""
    raise ValueError("aggregate file_head is the score a model with a file head gives a whole file (e.g. a "
                     "trace_signals model); this model has none: choose mean, median, max, logit_mean or confident")


def aggregate(frame_probs: np.ndarray, name: str) -> float:
    """Aggregate one file's per-frame fake probabilities with the aggregator ``name``."""
    p = np.asarray(frame_probs, dtype=np.float64)
    if p.size == 0:
        raise ValueError("aggregate: no frame probabilities to aggregate")
    return AGGREGATORS.get(name)(p)
