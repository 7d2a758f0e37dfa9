"""Bootstrap intervals that resample whole groups, and paired differences of two recipes on the same files."""

from __future__ import annotations

import numpy as np
import pytest

from lib import metrics


def _data(n: int = 80, signal: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(int)
    return y, y * signal + rng.normal(size=n), rng


def test_interval_holds_the_value_and_narrows_with_more_groups() -> None:
    y, s, _ = _data(400)
    wide = metrics.bootstrap(y, s, np.arange(400) // 40, n=300)  # 10 groups
    narrow = metrics.bootstrap(y, s, np.arange(400), n=300)  # 400 groups
    assert wide.low <= wide.value <= wide.high and narrow.low <= narrow.value <= narrow.high
    assert narrow.high - narrow.low < wide.high - wide.low


def test_copies_of_one_origin_do_not_narrow_the_interval() -> None:
    y, s, _ = _data(60)
    once = metrics.bootstrap(y, s, np.arange(60), n=400, seed=1)
    y3, s3, g3 = np.repeat(y, 3), np.repeat(s, 3), np.repeat(np.arange(60), 3)  # each file three times, one origin
    thrice = metrics.bootstrap(y3, s3, g3, n=400, seed=1)
    assert abs((thrice.high - thrice.low) - (once.high - once.low)) < 0.03
    naive = metrics.bootstrap(y3, s3, np.arange(180), n=400, seed=1)  # copies counted as independent files
    assert naive.high - naive.low < 0.8 * (thrice.high - thrice.low)


def test_paired_difference_excludes_zero_only_when_one_recipe_is_better() -> None:
    y, good, rng = _data(200, signal=2.0)
    noise = rng.normal(size=200)
    groups = np.arange(200)
    better = metrics.paired_difference(y, good, noise, groups, n=300)
    assert better.value > 0.3 and better.excludes(0.0)
    same = metrics.paired_difference(y, good, good + 1e-3 * noise, groups, n=300)
    assert not same.excludes(0.0)


def test_figures_undefined_in_a_resample_are_left_out() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9])
    iv = metrics.bootstrap(y, s, np.array(["a", "a", "b", "b"]), n=200)  # half the resamples hold one class
    assert iv.value == 1.0 and 0 < iv.n < 200
    reals = metrics.bootstrap(y, s, np.arange(4), metrics.reals_called_real(0.5), n=50)
    assert reals.value == 1.0 and reals.low == 1.0
    assert np.isnan(metrics.auc(np.ones(3), np.zeros(3)))


def test_counted_auc_and_macro_f1_equal_scikit_learns() -> None:
    """The statistics are counted directly (fast enough for thousands of resamples) and must equal sklearn's, ties
    and one-class predictions included."""
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 25))
        y, pred, s = rng.integers(0, 2, n), rng.integers(0, 2, n), np.round(rng.random(n), 1)  # rounded: ties
        assert metrics.macro_f1(y, pred) == pytest.approx(
            f1_score(y, pred, average="macro", labels=[0, 1], zero_division=0), abs=1e-12)
        if len(set(y)) == 2:
            assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(metrics.auc(np.ones(4), np.arange(4)))
