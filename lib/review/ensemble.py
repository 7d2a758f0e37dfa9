"""Combine the per-file predictions of several runs (mean, weighted, rank average, majority vote), fit weights and
threshold on local labels with cross-validation, and say when the competition's rules forbid the result.

Each function takes a matrix ``probs`` (files × runs, P(fake)) and ``votes`` (files × runs, each run's own 0/1 label).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from .. import checks
from ..checks import alternatives, rule
from ..errors import ParameterError
from ..experiments import read_record, read_records
from ..metrics import macro_f1, tune_threshold
from ..parameters import EXP, SEED, Param, Schema
from ..paths import SUBMISSIONS
from ..registry import Registry

Combiner = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
ENSEMBLES: Registry[Combiner] = Registry("method")

RULE = ("The AIFactory competition allows ONE model in the final submission: an ensemble of different models is "
        "forbidden. Test-time augmentation views and frame aggregation of one model stay allowed, so combining runs "
        "of the same model (other TTA, frames or aggregation) is fine. Set allow_model_ensemble: True only for "
        "competitions whose rules allow model ensembles.")
_GRID_STEP = 0.1  # weight grid on the simplex for up to _GRID_MAX_RUNS runs; random weights beyond
_GRID_MAX_RUNS = 4
_RANDOM_WEIGHTS = 400


@ENSEMBLES.register("mean")
def _mean(probs: np.ndarray, votes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Plain mean of P(fake)."""
    return probs.mean(axis=1)


@ENSEMBLES.register("weighted")
def _weighted(probs: np.ndarray, votes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of P(fake) (weights normalised to sum to 1)."""
    return probs @ (weights / weights.sum())


@ENSEMBLES.register("rank")
def _rank(probs: np.ndarray, votes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of each run's rank of the file, scaled to [0, 1] (relative to the files combined, not calibrated)."""
    ranks = pd.DataFrame(probs).rank(axis=0).to_numpy()
    return ((ranks - 1) / max(len(probs) - 1, 1)).mean(axis=1)


@ENSEMBLES.register("vote")
def _vote(probs: np.ndarray, votes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Share of runs whose own label is fake (threshold 0.5 → majority; a tie counts as fake)."""
    return votes.mean(axis=1)


@dataclass
class Inputs:
    """The runs combined: their records, file names, P(fake) and labels per run (files × runs)."""

    exps: list[str]
    records: list[dict[str, Any]]
    filenames: list[str]
    probs: np.ndarray
    votes: np.ndarray

    @property
    def models(self) -> list[str]:
        """The distinct models behind the runs (an input ensemble counts with its own models)."""
        found = [m for r in self.records for m in (r.get("models") or [r.get("params", {}).get("model", "?")])]
        return list(dict.fromkeys(map(str, found)))


def _resolve(p: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """ensemble.ipynb's resolved values: the runs, the weights, the labels file, the run name."""
    weights = parse_weights(p["weights"], len(v["runs"]))
    if weights is not None and p["method"] != "weighted":
        raise ParameterError("weights", p["weights"], "'' unless method is 'weighted'")
    needs = "tune_threshold" if p["tune_threshold"] else "weights" if p["method"] == "weighted" and weights is None else ""
    if needs and v["labels"] is None:
        raise ParameterError(needs, p[needs], why="fitting weights or a threshold needs labels: give labels or "
                             + ("weights" if needs == "weights" else "tune_threshold: False"))
    return {"runs": v["runs"], "weights": weights, "labels": v["labels"], "exp": v["exp"]}


ENSEMBLE = Schema("ensemble.ipynb", (
    Param("runs", str, "latest", "run names to combine, comma-separated (their submissions/<exp>/predictions.csv); "
          "latest: the two newest infer runs on the same files", lambda name, value: parse_runs(value)),
    Param("method", str, "mean", alternatives(ENSEMBLES), rule(checks.choice, ENSEMBLES)),
    Param("weights", str, "", 'weights for method weighted, comma-separated in the order of runs; "" → fitted on '
          "labels"),  # checked against runs and method: _resolve
    Param("threshold", float, 0.5, "combined score ≥ threshold → 1 (fake); for vote 0.5 is a majority, a tie counts "
          "as fake", rule(checks.number, 0.0, 1.0, "a number in [0, 1]")),
    Param("tune_threshold", bool, False, "choose the threshold on the labels (cross-validated) instead of the value "
          "above", checks.boolean),
    Param("labels", str, "", 'labels.csv (filename,label[,origin]) for local macro F1 and any fitting; "" → none',
          checks.optional_file),
    Param("folds", int, 5, "cross-validation folds for fitted weights or threshold",
          rule(checks.positive_int, "cross-validation folds")),
    SEED.but(help="random seed of the folds (and of random weights for more than four runs)"),
    Param("allow_model_ensemble", bool, False, "write a submission from runs of different models (the AIFactory rules "
          "forbid it)", checks.boolean),
    EXP), _resolve)


LATEST = "latest"  # runs: the two most recent infer runs that predicted the same files


def parse_runs(value: str, root: Path = SUBMISSIONS) -> list[str]:
    """Comma-separated run names → list (at least two, no repeats); ``latest`` → ``latest_runs(root)``."""
    if str(value).strip() == LATEST:
        return latest_runs(root)
    exps = [e.strip() for e in str(value).split(",") if e.strip()]
    if len(exps) < 2 or len(set(exps)) != len(exps):
        raise ParameterError("runs", value, "two or more distinct run names, comma-separated (e.g. 'exp002,exp003')")
    return exps


def latest_runs(root: Path = SUBMISSIONS) -> list[str]:
    """The newest infer run that has an earlier one on the same files, and the newest such earlier run, oldest first."""
    runs = [r for r in read_records(root)[-50:]
            if r.get("kind") == "infer" and (Path(root) / r["exp"] / "predictions.csv").is_file()]
    files = {r["exp"]: set(pd.read_csv(Path(root) / r["exp"] / "predictions.csv", dtype={"filename": str},
                                       keep_default_na=False)["filename"]) for r in runs}
    for i in range(len(runs) - 1, 0, -1):
        newest = runs[i]["exp"]
        same = [r["exp"] for r in runs[:i] if files[r["exp"]] == files[newest]]
        if same:
            return [same[-1], newest]
    raise ParameterError("runs", LATEST, "two or more distinct run names, comma-separated (e.g. 'exp002,exp003')",
                         why=f"'latest' needs two infer runs on the same files in {root}, found "
                             f"{[r['exp'] for r in runs] or 'none'}: run infer.ipynb twice first (e.g. tta none, "
                             "then flip)")


def load_runs(exps: list[str], root: Path = SUBMISSIONS) -> Inputs:
    """Read ``predictions.csv`` and ``run.json`` of each run; every run must cover the same files."""
    records, frames = [], []
    known = [r["exp"] for r in read_records(root)]
    for exp in exps:
        rec, path = read_record(Path(root) / exp), Path(root) / exp / "predictions.csv"
        if rec is None or not path.is_file():
            raise ParameterError("runs", exp, known or "no runs recorded yet", why=f"no run.json + predictions.csv in {path.parent}")
        records.append(rec)
        frames.append(pd.read_csv(path, dtype={"filename": str}, keep_default_na=False).set_index("filename"))
    names = sorted(frames[0].index)
    for exp, df in zip(exps, frames):
        if sorted(df.index) != names:
            diff = sorted(set(df.index) ^ set(names))
            raise ParameterError("runs", exp, "runs predicted on the same folder", why=f"files differ: {diff[:5]}")
    probs = np.column_stack([df.loc[names, "prob_fake"].to_numpy(float) for df in frames])
    votes = np.column_stack([df.loc[names, "label"].to_numpy(int) for df in frames])
    return Inputs(exps, records, names, probs, votes)


def parse_weights(value: str, n_runs: int) -> np.ndarray | None:
    """Comma-separated weights (one per run, ≥ 0, not all 0) → array; '' → None (fit them)."""
    if not str(value).strip():
        return None
    try:
        w = np.array([float(x) for x in str(value).split(",")])
    except ValueError:
        w = np.array([])
    if len(w) != n_runs or (w < 0).any() or w.sum() <= 0:
        raise ParameterError("weights", value, f"{n_runs} non-negative numbers, comma-separated, or '' to fit them")
    return w


def combine(probs: np.ndarray, votes: np.ndarray, method: str, weights: np.ndarray | None = None) -> np.ndarray:
    """One score in [0, 1] per file from the runs' predictions (weights: uniform when None)."""
    w = np.ones(probs.shape[1]) if weights is None else np.asarray(weights, float)
    return ENSEMBLES.get(method)(probs, votes, w)


def candidate_weights(n_runs: int, seed: int = 0) -> np.ndarray:
    """Weights to try: a 0.1 grid on the simplex for up to four runs, else random (Dirichlet) weights and the corners."""
    if n_runs <= _GRID_MAX_RUNS:
        steps = round(1 / _GRID_STEP)
        grid = [c for c in itertools.product(range(steps + 1), repeat=n_runs) if sum(c) == steps]
        return np.array(grid, float) / steps
    rng = np.random.default_rng(seed)
    return np.vstack([np.eye(n_runs), np.full(n_runs, 1 / n_runs), rng.dirichlet(np.ones(n_runs), _RANDOM_WEIGHTS)])


@dataclass
class Fit:
    """What was chosen on labelled files: the weights and the threshold."""

    weights: np.ndarray
    threshold: float


def fit(probs: np.ndarray, votes: np.ndarray, y: np.ndarray, method: str, weights: np.ndarray | None,
        threshold: float, tune: bool, seed: int = 0) -> Fit:
    """Weights (fitted when ``method='weighted'`` and none are given) and threshold (tuned when ``tune``) that
    maximise macro F1 on (probs, y); ties go to the weights nearest uniform and the threshold nearest ``threshold``."""
    if method == "weighted" and weights is None:
        cands = candidate_weights(probs.shape[1], seed)
        scores = [(tune_threshold(combine(probs, votes, method, w), y, threshold)[1] if tune else
                   macro_f1(y, (combine(probs, votes, method, w) >= threshold).astype(int))) for w in cands]
        best = np.flatnonzero(np.isclose(scores, max(scores)))
        weights = cands[best[np.argmin(np.abs(cands[best] - 1 / probs.shape[1]).sum(axis=1))]]
    w = np.ones(probs.shape[1]) / probs.shape[1] if weights is None else np.asarray(weights, float) / np.sum(weights)
    thr = tune_threshold(combine(probs, votes, method, w), y, threshold)[0] if tune else float(threshold)
    return Fit(w, thr)


def _splitter(y: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> Any:
    """Stratified folds (grouped by origin when given, so a fake and its source video stay on one side)."""
    if groups is not None:
        return StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups)
    return StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y)


def cross_validate(probs: np.ndarray, votes: np.ndarray, y: np.ndarray, method: str, weights: np.ndarray | None,
                   threshold: float, tune: bool, folds: int = 5, seed: int = 0,
                   groups: np.ndarray | None = None) -> dict[str, Any]:
    """Out-of-fold labels: each fold predicted with weights/threshold fitted on the other folds; their macro F1."""
    k = min(folds, int(np.bincount(y, minlength=2).min()))
    if k < 2:
        return {"folds": 0, "macro_f1": None, "oof_label": None, "why": "fewer than 2 files of a class"}
    oof, fits = np.zeros(len(y), int), []
    for train, test in _splitter(y, groups, k, seed):
        f = fit(probs[train], votes[train], y[train], method, weights, threshold, tune, seed)
        oof[test] = (combine(probs, votes, method, f.weights)[test] >= f.threshold).astype(int)
        fits.append({"weights": f.weights.round(3).tolist(), "threshold": round(f.threshold, 4)})
    return {"folds": k, "grouped": groups is not None, "macro_f1": macro_f1(y, oof), "oof_label": oof, "fits": fits}


def mixes_models(inp: Inputs) -> bool:
    """True when the runs come from more than one model (a model ensemble, which the AIFactory rules forbid)."""
    return len(inp.models) > 1


def rule_message(inp: Inputs, allow: bool) -> str:
    """What the rules say about combining these runs, and what the notebook does about it."""
    if not mixes_models(inp):
        return f"One model ({inp.models[0]}): combining its runs (TTA views, frames, aggregation) is allowed."
    verdict = ("allow_model_ensemble is True: a submission is written, at your own risk." if allow else
               "NO SUBMISSION WRITTEN: these runs come from different models "
               f"({', '.join(inp.models)}). Set allow_model_ensemble: True only where the rules allow it.")
    return f"{RULE}\n{verdict}"


def labelled(inp: Inputs, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Row indices of the labelled files, their labels, and their ``origin`` groups when the labels have them."""
    lab = labels.set_index("filename")
    rows = np.array([i for i, n in enumerate(inp.filenames) if n in lab.index], int)
    if not len(rows):
        raise ParameterError("labels", "", "a labels.csv naming the files the runs predicted", why="no file is labelled")
    names = [inp.filenames[i] for i in rows]
    groups = lab.loc[names, "origin"].astype(str).to_numpy() if "origin" in lab.columns else None
    return rows, lab.loc[names, "label"].to_numpy(int), groups


def evaluate(inp: Inputs, labels: pd.DataFrame, method: str, weights: np.ndarray | None, threshold: float,
             tune: bool, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Fit on every labelled file (the submission's settings), and the honest score: cross-validated when anything
    was fitted on the labels, else the plain local macro F1. Also each single run's local macro F1 and the gain."""
    rows, y, groups = labelled(inp, labels)
    p, v = inp.probs[rows], inp.votes[rows]
    final = fit(p, v, y, method, weights, threshold, tune, seed)
    in_sample = macro_f1(y, (combine(p, v, method, final.weights) >= final.threshold).astype(int))
    fitted = tune or (method == "weighted" and weights is None)
    cv = cross_validate(p, v, y, method, weights, threshold, tune, folds, seed, groups) if fitted else None
    singles = {e: macro_f1(y, v[:, j]) for j, e in enumerate(inp.exps)}
    honest = cv["macro_f1"] if cv else in_sample
    best = max(singles, key=singles.get)
    return {"fit": final, "fitted": fitted, "in_sample_macro_f1": in_sample, "cv": cv, "macro_f1": honest,
            "singles": singles, "best_single": best,
            "gain": None if honest is None else honest - singles[best], "n_labelled": int(len(y))}


def score_table(result: dict[str, Any], method: str) -> pd.DataFrame:
    """Each single run's local macro F1 and the ensemble's (in-sample and cross-validated), with the gain."""
    rows = [{"run": e, "macro F1": f, "how": "its own labels"} for e, f in result["singles"].items()]
    rows.append({"run": f"ensemble ({method})", "macro F1": result["in_sample_macro_f1"],
                 "how": "in-sample (optimistic)" if result["fitted"] else "nothing fitted on labels"})
    if result["cv"]:
        rows.append({"run": f"ensemble ({method})", "macro F1": result["cv"]["macro_f1"],
                     "how": f"{result['cv']['folds']}-fold cross-validated (reported)"})
    out = pd.DataFrame(rows)
    out["gain vs best single"] = out["macro F1"] - result["singles"][result["best_single"]]
    return out


def correlation(inp: Inputs) -> pd.DataFrame:
    """Pearson correlation of P(fake) between runs (low correlation: more to gain from combining)."""
    return pd.DataFrame(inp.probs, columns=inp.exps).corr()


def plot_correlation(corr: pd.DataFrame):  # -> matplotlib Figure
    """Heatmap of the correlation between runs, values written in the cells."""
    import matplotlib.pyplot as plt

    n = len(corr)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.0 * n + 1.5))
    im = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="coolwarm")
    ax.set_xticks(range(n), corr.columns, rotation=45, ha="right")
    ax.set_yticks(range(n), corr.index)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{corr.iat[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title("Correlation of P(fake) between runs", fontsize=9)
    fig.tight_layout()
    return fig


def predictions(inp: Inputs, scores: np.ndarray, threshold: float) -> pd.DataFrame:
    """One row per file: the combined prob_fake and label, and each input run's P(fake)."""
    df = pd.DataFrame({"filename": inp.filenames, "prob_fake": scores, "label": (scores >= threshold).astype(int)})
    for j, e in enumerate(inp.exps):
        df[f"prob_{e}"] = inp.probs[:, j]
    return df


def inputs_record(inp: Inputs) -> list[dict[str, Any]]:
    """What the run record says about each input run."""
    return [{"exp": e, "kind": r.get("kind"), "model": r.get("params", {}).get("model"),
             "macro_f1": (r.get("metrics") or {}).get("macro_f1"), "public": (r.get("scores") or {}).get("public"),
             "data_dir": r.get("params", {}).get("data_dir")} for e, r in zip(inp.exps, inp.records)]


def record_metrics(preds: pd.DataFrame, labels: pd.DataFrame, result: dict[str, Any]) -> dict[str, Any]:
    """The run record's metrics: ``macro_f1`` is the honest (cross-validated when fitted) score; the rest of
    ``lib.metrics.evaluate``'s figures are in-sample and named so."""
    from ..metrics import evaluate as evaluate_predictions

    m = evaluate_predictions(preds, labels)
    cv = result["cv"] or {}
    return {**m, "macro_f1": result["macro_f1"], "in_sample_macro_f1": result["in_sample_macro_f1"],
            "macro_f1_is": f"{cv['folds']}-fold cross-validated" if cv.get("folds") else "in-sample, nothing fitted",
            "cv_fits": cv.get("fits"), "singles_macro_f1": result["singles"], "best_single": result["best_single"],
            "gain_vs_best_single": result["gain"]}


def unfitted(n_runs: int, weights: np.ndarray | None, threshold: float) -> Fit:
    """The weights (uniform when None) and threshold as given, when there are no labels to fit them on."""
    w = np.ones(n_runs) if weights is None else np.asarray(weights, float)
    return Fit(w / w.sum(), float(threshold))
