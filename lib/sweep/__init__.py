"""Sweeps: Optuna searches the parameters of any of the kit's notebooks (infer, train, ensemble) through papermill.

Every trial is an ordinary run ``<study>-t<N>`` (its own ``submissions/<exp>/``, run record and EXPERIMENTS.md
row). The study's own folder ``submissions/<study>/`` holds the Optuna storage ``study.db`` (SQLite: a killed
study resumes where it stopped; ``optuna trials --storage sqlite:///submissions/<study>/study.db --study-name
<study>`` reads it), ``trials.csv``, the plots and its run record (kind ``sweep``); the best parameters become
``params/<study>-best.yaml``.

    python -m lib.sweep --notebook infer --fixed params/demo.yaml --space "tta: [none, flip]" --study s1
    papermill notebooks/sweep.ipynb out.ipynb -p notebook infer -p space "tta: [none, flip]" -p study s1

Modules: ``space`` (the search space and its checks against a notebook's parameters), ``trial`` (one papermill run,
watched and recorded), ``study`` (the sweep's own parameters; Optuna: samplers, pruning, resume), ``report`` (trials
table, best params, plots, rule reminders), ``notebooks`` (every kit notebook's schema: ``python -m
lib.sweep.notebooks`` writes their parameters cells and docs/parameters.md).
"""

from __future__ import annotations

from typing import Any

from .report import Reporter, best_params_path, save_figures, trials_table
from .space import Dim, parse_space
from .study import PRUNERS, SAMPLERS, SWEEP, Plan, check, run

DEFAULTS: dict[str, Any] = SWEEP.defaults  # notebooks/sweep.ipynb's defaults (its parameters cell is SWEEP's)

__all__ = ["DEFAULTS", "PRUNERS", "SAMPLERS", "SWEEP", "Dim", "Plan", "Reporter", "best_params_path", "check",
           "parse_space", "run", "save_figures", "sweep", "trials_table"]


def sweep(**params: Any) -> tuple[Any, Reporter]:
    """Check the sweep parameters (defaults for those not given) and run or resume the study."""
    return run(check({**DEFAULTS, **params}))
