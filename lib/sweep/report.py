"""What a study leaves in its run folder: the trials table, the best parameters as a params file, plots, the
study's run record (kind ``sweep``), and the reminders of what a local score chosen over many trials is worth."""

from __future__ import annotations

import math
import threading
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from .. import experiments
from ..atomic import write_text
from ..paths import SUBMISSIONS, WORKDIR
from .space import Dim, Plan, decode

if TYPE_CHECKING:
    import optuna

TRIALS_CSV = "trials.csv"
PLOTS = ("objective", "importances", "slice", "parallel")


def best_params_path(study: str) -> Path:
    """``params/<study>-best.yaml`` (under KIT_WORKDIR when it is set, like every run output)."""
    return WORKDIR / "params" / f"{study}-best.yaml"


def rule_notes(kind: str, objective: str, dims: list[Dim], base: dict[str, Any]) -> list[str]:
    """The competition's rule reminders for this sweep: which figures were fitted on the labels they score on."""
    n = {d.name for d in dims}
    notes = ["Choosing settings by a local score over many trials overfits that local set: the best trial's score "
             "is optimistic. Confirm the chosen settings on data the sweep did not see (another split, leave-one-"
             "kind-out, or one leaderboard submission) before trusting the figure."]
    if "threshold" in n:
        notes.append("threshold is searched: a threshold picked by its score on these labels is fitted on them; "
                     "the best figure is optimistic unless it came from cross-validation or leave-one-out.")
    fits_ensemble = base.get("tune_threshold") is True or "tune_threshold" in n or (
        base.get("method") == "weighted" and not base.get("weights")) or "method" in n
    if kind == "ensemble" and fits_ensemble and objective != "metrics.macro_f1":
        notes.append(f"the ensemble fits weights or a threshold on the labels: only metrics.macro_f1 is cross-"
                     f"validated; {objective} is in-sample, so it is optimistic.")
    if kind == "train" and objective == "metrics.macro_f1":
        notes.append("train's metrics.macro_f1 is the val F1 at the threshold chosen on those same val labels: "
                     "optimistic. The honest objectives are metrics.loo_mean_auc or metrics.loo_worst_auc "
                     "(leave-one-kind-out, once training records them).")
    elif kind == "train" and not objective.startswith("metrics.loo_"):
        notes.append(f"{objective} is measured on the val split that also chose the best epoch (early stopping): "
                     "somewhat optimistic; metrics.loo_mean_auc / metrics.loo_worst_auc (leave-one-kind-out) are "
                     "the honest training objectives.")
    return notes


def state_name(t: "optuna.trial.FrozenTrial") -> str:
    """complete | pruned | failed | interrupted | running | waiting."""
    if t.user_attrs.get("interrupted"):
        return "interrupted"
    name = t.state.name.lower()
    return "failed" if name == "fail" else name


def trials_table(study: "optuna.Study", dims: list[Dim]) -> pd.DataFrame:
    """One row per trial: number, run name, state, objective value, the searched parameters, seconds, reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"trial": t.number, "exp": t.user_attrs.get("exp", ""), "state": state_name(t), "value": t.value}
        row.update({d.name: t.params.get(d.name) for d in dims})
        row.update(seconds=t.user_attrs.get("seconds"), epochs_reported=len(t.intermediate_values) or None,
                   retry_of=t.user_attrs.get("retry_of"), reason=t.user_attrs.get("reason", ""))
        rows.append(row)
    return pd.DataFrame(rows, columns=["trial", "exp", "state", "value", *[d.name for d in dims], "seconds",
                                       "epochs_reported", "retry_of", "reason"])


def best(study: "optuna.Study") -> "optuna.trial.FrozenTrial | None":
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return study.best_trial if done else None


def write_best_params(study: "optuna.Study", plan: Plan) -> Path | None:
    """The fixed parameters with the best trial's values, as a params file ``papermill -f`` accepts."""
    b = best(study)
    if b is None:
        return None
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")
    params = {**plan.fixed, **{k: decode(v) for k, v in b.params.items()}, "exp": f"{plan.study}-best"}
    head = [f"Best trial of sweep {plan.study}: {b.user_attrs.get('exp')} (trial {b.number}), {plan.objective} = "
            f"{b.value:.6g} ({plan.direction}), the best of {done} completed trials of {plan.kind}.",
            "Chosen by a local score over many trials: optimistic for that local set; confirm on unseen data.",
            f"papermill notebooks/{plan.notebook.name} out.ipynb -f params/{best_params_path(plan.study).name} "
            "(give another exp with -p exp NAME)"]
    path = best_params_path(plan.study)
    text = "".join(f"# {h}\n" for h in head) + yaml.safe_dump(params, sort_keys=False, allow_unicode=True)
    write_text(path, text)
    return path


def objective_figure(table: pd.DataFrame, objective: str, direction: str):  # -> matplotlib Figure
    """The objective by trial: completed trials, the best so far, and where trials were pruned or failed."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 3.8))
    done = table[table["state"] == "complete"]
    ax.plot(done["trial"], done["value"], "o", label="complete")
    if len(done):
        running = done["value"].cummax() if direction == "maximize" else done["value"].cummin()
        ax.step(done["trial"], running, where="post", color="C2", label="best so far")
    for state, marker, color in (("pruned", "v", "C1"), ("failed", "x", "C3"), ("interrupted", "s", "0.5")):
        rows = table[table["state"] == state]
        for i, r in enumerate(rows.itertuples()):
            ax.axvline(r.trial, color=color, ls=":", lw=1, label=state if i == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel=objective, title=f"{objective} by trial ({direction}); dotted: not completed")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def figures(study: "optuna.Study", plan: Plan, table: pd.DataFrame) -> tuple[dict[str, Any], list[str]]:
    """The study's plots (objective by trial; Optuna's parameter importances, slice and parallel-coordinate
    views when enough trials completed), and a note for each plot that could not be drawn and why."""
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as vis

    figs, skipped = {"objective": objective_figure(table, plan.objective, plan.direction)}, []
    done = int((table["state"] == "complete").sum())
    views = {"importances": (vis.plot_param_importances, 2), "slice": (vis.plot_slice, 1),
             "parallel": (vis.plot_parallel_coordinate, 2)}
    for name, (plot, need) in views.items():
        if done < need or (name == "parallel" and len(plan.dims) < 2):
            skipped.append(f"{name}: needs {need} completed trial(s)" + (" and 2 searched parameters"
                                                                        if name == "parallel" else ""))
            continue
        with warnings.catch_warnings(), plt.rc_context():  # Optuna's plots switch the global style to ggplot
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Attempting to set identical low and high")  # one value
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as e:  # e.g. importances when no searched value varied
                skipped.append(f"{name}: {e}")
                continue
        ax = axes.flat[0] if hasattr(axes, "flat") else axes
        figs[name] = ax.figure
    return figs, skipped


def save_figures(figs: dict[str, Any], folder: Path) -> list[Path]:
    """Each figure as ``<name>.png`` in the study's folder (the figures are then closed; Jupyter can still show
    them with ``display``)."""
    import matplotlib.pyplot as plt

    out = []
    for name, fig in figs.items():
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        out.append(folder / f"{name}.png")
    return out


def format_value(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


class Reporter:
    """Keeps the study's outputs current after every trial (trials.csv, best params, run.json) and draws the
    plots at the end of a session."""

    def __init__(self, study: "optuna.Study", plan: Plan, root: Path = SUBMISSIONS):
        self.study, self.plan, self.root = study, plan, Path(root)
        self.lock = threading.Lock()
        old = experiments.read_record(self.root / plan.study)
        self.run = experiments.Run("sweep", plan.study, plan.params, self.root)
        if old:
            self.run.record["started"] = old.get("started", self.run.record["started"])
        self.sessions = (old or {}).get("sessions", 0) + 1
        self.figures: dict[str, Any] = {}
        self.skipped: list[str] = []

    def after_trial(self, study: "optuna.Study", t: "optuna.trial.FrozenTrial") -> None:
        """Optuna callback: print the trial's line and refresh the study's files."""
        params = ", ".join(f"{k}={decode(v)}" for k, v in t.params.items())
        done = t.state.name == "COMPLETE"
        value = f"{self.plan.objective}={t.value:.4f}" if done else t.user_attrs.get("reason", "")
        print(f"{t.user_attrs.get('exp', t.number)} [{state_name(t)}] {value} ({t.user_attrs.get('seconds', 0):.0f} s)"
              f"  {params}", flush=True)
        self.update()

    def update(self) -> pd.DataFrame:
        """trials.csv, the best params file and the study's run record, as they stand now."""
        with self.lock:
            table = trials_table(self.study, self.plan.dims)
            write_text(self.run.dir / TRIALS_CSV, table.to_csv(index=False))
            path = write_best_params(self.study, self.plan)
            b = best(self.study)
            self.run.finish(
                study={"notebook": self.plan.kind, "objective": self.plan.objective,
                       "direction": self.plan.direction, "trials": self.plan.trials,
                       "states": table["state"].value_counts().to_dict(), "storage": "study.db",
                       "space": [d.name for d in self.plan.dims]},
                best=({"trial": b.number, "exp": b.user_attrs.get("exp"), "value": b.value,
                       "params": {k: decode(v) for k, v in b.params.items()}} if b else None),
                best_params=str(path) if path else None, sessions=self.sessions, notes=self.plan.notes,
                rules=self.plan.rules, plots=[f"{n}.png" for n in self.figures], plots_skipped=self.skipped,
                updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            return table

    def finish(self) -> pd.DataFrame:
        """Final outputs of this session: the files, the plots (saved as PNG), the table."""
        table = trials_table(self.study, self.plan.dims)
        self.figures, self.skipped = figures(self.study, self.plan, table)
        save_figures(self.figures, self.run.dir)
        return self.update()
