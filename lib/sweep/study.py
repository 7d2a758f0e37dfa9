"""A study: Optuna over one notebook's parameters, each trial an ordinary run ``<study>-t<N>``, the Optuna storage
a SQLite file in the study's run folder (resumable after a crash or in a new session, readable by Optuna's tools)."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock, Timeout

from .. import checks, experiments
from ..checks import alternatives, rule
from ..errors import ParameterError
from ..parameters import SEED, Param, Schema
from ..paths import NOTEBOOKS, SUBMISSIONS, resolve
from ..registry import Registry
from . import report, space, trial as trials
from .space import Dim, Plan

STORAGE = "study.db"
DIRECTIONS = ("maximize", "minimize")
KIT_NOTEBOOKS = ("infer", "train", "ensemble")  # named without a path (space.kit_schemas has their schemas)
# per-epoch figure of progress.jsonl that stands for an objective while a trial runs, and the sense it improves in
PROGRESS_KEYS = {"macro_f1": ("val_f1", "maximize"), "val_f1": ("val_f1", "maximize"),
                 "val_auc": ("val_auc", "maximize"), "auc": ("val_auc", "maximize"),
                 "loo_mean_auc": ("val_auc", "maximize"), "loo_worst_auc": ("val_auc", "maximize"),
                 "val_loss": ("val_loss", "minimize")}
SAMPLERS: Registry = Registry("sampler")
PRUNERS: Registry = Registry("pruner")


class TrialFailed(RuntimeError):
    """A trial that failed (bad combination, crash, out of memory, no objective): recorded, and the study goes on."""


@SAMPLERS.register("grid")
def _grid(dims: list[Dim], seed: int, trials: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GridSampler({d.name: d.grid() for d in dims}, seed=seed)


@SAMPLERS.register("random")
def _random(dims: list[Dim], seed: int, trials: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("tpe")
def _tpe(dims: list[Dim], seed: int, trials: int) -> optuna.samplers.BaseSampler:
    # random for the first third of a small study (at least 2, at most Optuna's default 10), then TPE
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 3)))


@PRUNERS.register("median")
def _median() -> optuna.pruners.BasePruner:
    # after 2 trials have reported, stop a trial from its 2nd epoch on when it trails their median at that epoch
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)  # epochs count from 1


@PRUNERS.register("none")
def _no_pruning() -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def resolve_notebook(value: str) -> Path:
    """``infer``, ``train``, ``ensemble``, or the path of another parameterised notebook."""
    if value in KIT_NOTEBOOKS:
        return NOTEBOOKS / f"{value}.ipynb"
    path = Path(str(value)).expanduser()
    path = path if path.is_file() else resolve(str(value))
    if not str(value).endswith(".ipynb") or not path.is_file():
        raise ParameterError("notebook", value, [*KIT_NOTEBOOKS, "the path of a parameterised .ipynb"])
    return path.resolve()


def _fixed(value: str | dict, parameters: dict[str, dict[str, Any]], notebook: str, notes: list[str]) -> dict:
    """The fixed parameters file: known names only (another notebook's keys and ``exp`` are dropped, with a note)."""
    from ..parameters import ALL_KEYS

    fixed = space.read_yaml_mapping(value, "fixed")
    dropped = sorted(k for k in fixed if k not in parameters and k in ALL_KEYS or k == "exp")
    unknown = sorted(k for k in fixed if k not in parameters and k not in dropped)
    if unknown:
        raise ParameterError(unknown[0], fixed[unknown[0]], sorted(parameters),
                             why=f"in the fixed params file: {notebook} has no such parameter")
    if dropped:
        notes.append(f"fixed: ignored {', '.join(dropped)} (exp is named by the sweep; the others belong to other "
                     "notebooks)")
    return {k: v for k, v in fixed.items() if k not in dropped}


def _progress_key(objective: str, direction: str, notes: list[str]) -> str | None:
    """The per-epoch figure trials are pruned on, or None (with a note) when none stands for the objective."""
    key, sense = PROGRESS_KEYS.get(objective.split(".")[-1], (None, None))
    if key is None or sense != direction:
        notes.append(f"pruning: no per-epoch figure stands for {direction} {objective}; trials are not pruned")
        return None
    return key


def _parallel(name: str, value: Any) -> int:
    """Trials at once: at most this machine's cores."""
    cores = os.cpu_count() or 1
    if checks.int_at_least(name, value, 1, "an integer ≥ 1") > cores:
        raise ParameterError(name, value, f"1 … {cores} (this machine's cores)",
                             why="more trials at once than cores only makes each slower")
    return value


def _timeout(name: str, value: Any) -> float | None:
    """Seconds after which no new trial starts; None: no limit."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ParameterError(name, value, "seconds ≥ 0 (0: no limit)")
    return float(value) or None


def _objective(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip(". "):
        raise ParameterError(name, value, "a dotted path into the trial's run.json, e.g. metrics.macro_f1")
    return value


def check(p: dict[str, Any]) -> Plan:
    """Check every sweep parameter and the whole search space before any trial; returns the plan."""
    unknown = sorted(set(p) - set(SWEEP.keys))
    if unknown:
        raise ParameterError(unknown[0], p[unknown[0]], SWEEP.keys, why="the sweep has no such parameter")
    return SWEEP.check(p)


def _plan(p: dict[str, Any], v: dict[str, Any]) -> Plan:
    """The study's plan from the checked parameters: the space and the fixed parameters checked against the notebook."""
    notebook, trials = v["notebook"], v["trials"]
    kind, notes = notebook.stem, []
    parameters = space.notebook_parameters(notebook)
    dims = space.parse_space(p["space"], parameters, notebook.name)
    fixed = _fixed(p["fixed"], parameters, notebook.name, notes)
    replaced = sorted(set(fixed) & {d.name for d in dims})
    if replaced:
        notes.append(f"searched, so the fixed value is not used: {', '.join(replaced)}")
    SAMPLERS.get(p["sampler"])(dims, p["seed"], trials)  # a grid needs finite values: checked here
    trials = _grid_trials(dims, trials, notes) if p["sampler"] == "grid" else trials
    base = {**{k: spec["default"] for k, spec in parameters.items()}, **fixed}
    if "exp" in parameters:
        base["exp"] = f"{v['study']}-t0"
    _check_values(kind, p["objective"], dims, base, parameters)
    epochs = p["pruner"] != "none" and kind not in ("infer", "ensemble")  # those have no epochs to prune on
    progress_key = _progress_key(p["objective"], p["direction"], notes) if epochs else None
    if v["parallel"] > 1 and base.get("workers") == -1:
        notes.append(f"{v['parallel']} trials at once, each with workers -1 (cores - 1 preprocessing processes): "
                     "set workers in the fixed params to share the cores")
    return Plan(dict(p), notebook, kind, dims, fixed, v["study"], p["objective"], p["direction"], trials,
                v["timeout"], v["parallel"], progress_key, notes, report.rule_notes(kind, p["objective"], dims, base))


SWEEP = Schema("sweep.ipynb", (
    Param("notebook", str, "infer", f"{alternatives(KIT_NOTEBOOKS)} | the path of another parameterised notebook",
          lambda name, value: resolve_notebook(value)),
    Param("space", str, "tta: [none, flip]\naggregate: [mean, logit_mean]", "YAML: parameter → [choices] or {low, "
          "high, log, int, step}; or a YAML file"),  # checked against the notebook's parameters: _plan
    Param("fixed", str, "params/demo.yaml", 'params file the trials start from ("" → the notebook\'s defaults)'),
    Param("objective", str, "metrics.macro_f1", "dotted path into each trial's run.json (train: metrics.loo_mean_auc "
          "/ loo_worst_auc are the honest ones)", _objective),
    Param("direction", str, "maximize", alternatives(DIRECTIONS), rule(checks.choice, DIRECTIONS)),
    Param("trials", int, 4, "trials in the study, earlier sessions of a resumed study included (a grid runs at most "
          "its size)", rule(checks.int_at_least, 1, "an integer ≥ 1")),
    Param("timeout", int, 0, "seconds after which no new trial starts in this session (0 → no limit)", _timeout),
    Param("sampler", str, "grid", alternatives(SAMPLERS), rule(checks.choice, SAMPLERS)),
    SEED.but(help="sampler seed"),
    Param("parallel", int, 1, "trials at once (at most the machine's cores)", _parallel),
    Param("pruner", str, "median", f"{alternatives(PRUNERS)}: stop a training trial whose per-epoch val score trails "
          "the median", rule(checks.choice, PRUNERS)),
    Param("study", str, "", 'study name: submissions/<study>/; an existing study resumes; "" → a timestamped name',
          lambda name, value: checks.exp_name(value or time.strftime("sweep-%Y%m%d-%H%M%S"), name))), _plan)


def _grid_trials(dims: list[Dim], trials: int, notes: list[str]) -> int:
    """A grid study runs at most its number of grid points."""
    n = math.prod(len(d.grid()) for d in dims)
    if trials > n:
        notes.append(f"grid: {n} combinations, so {n} trials (not {trials})")
    elif trials < n:
        notes.append(f"grid: {trials} of the {n} combinations are run (in the sampler's random order)")
    return min(trials, n)


def _check_values(kind: str, objective: str, dims: list[Dim], base: dict[str, Any],
                  parameters: dict[str, dict[str, Any]]) -> None:
    """The fixed values and every searched value pass the notebook's own checks; a local score needs labels."""
    check = space.checker(kind)
    space.check_base(base, dims, check)
    space.check_values(dims, base, parameters, check)
    if kind in ("infer", "ensemble") and objective.startswith("metrics.") and not base.get("labels") \
            and "labels" not in {d.name for d in dims}:
        raise ParameterError("labels", base.get("labels"), "a labels.csv in the fixed params file",
                             why=f"the objective {objective} is a local score: the trials need labels")


def _signature(plan: Plan) -> dict[str, Any]:
    """What a resumed study must share with its first session."""
    import json
    from dataclasses import asdict

    return json.loads(json.dumps({"notebook": plan.kind if plan.notebook.parent == NOTEBOOKS else str(plan.notebook),
                                  "objective": plan.objective, "direction": plan.direction,
                                  "space": [asdict(d) for d in plan.dims]}, default=str))


def open_study(plan: Plan, root: Path = SUBMISSIONS) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    """Create the study in ``<root>/<study>/study.db``, or load it to resume (same notebook, objective, space)."""
    d = experiments.run_dir(plan.study, root, "sweep")
    db = d / STORAGE
    if not db.is_file():
        old = sorted(x.name for x in Path(root).glob(f"{plan.study}-t*") if (x / experiments.RECORD).is_file())
        if old:
            raise ParameterError("study", plan.study, "a new study name", why=f"runs {', '.join(old[:3])} exist but "
                                 f"{db} does not: they belong to an earlier study of this name")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's line is printed by the reporter
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    study = optuna.create_study(storage=storage, study_name=plan.study, direction=plan.direction,
                                sampler=SAMPLERS.get(plan.params["sampler"])(plan.dims, plan.params["seed"], plan.trials),
                                pruner=PRUNERS.get(plan.params["pruner"])(), load_if_exists=True)
    sig, old = _signature(plan), study.user_attrs.get("sweep")
    if old is None:
        study.set_user_attr("sweep", sig)
        return study, storage
    for key in sig:
        if sig[key] != old.get(key):
            raise ParameterError("study", plan.study, "a new study name, or the first session's settings",
                                 why=f"it was started with {key} {old.get(key)!r}, not {sig[key]!r}")
    return study, storage


def recover(study: optuna.Study, storage: optuna.storages.RDBStorage, plan: Plan, root: Path = SUBMISSIONS
            ) -> list[int]:
    """Trials left running by a sweep that stopped (crash, kill, Ctrl-C) are marked failed ('interrupted') and
    queued again with the same parameters, so none is lost; returns the numbers of those queued."""
    study_id = storage.get_study_id_from_name(study.study_name)
    all_trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in all_trials}
    queued = []
    for t in all_trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            tid = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(tid, "interrupted", True)
            storage.set_trial_user_attr(tid, "reason", "interrupted: the sweep stopped while this trial ran")
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            _record_interrupted(plan, t, root)
        elif not (t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("interrupted")):
            continue
        if t.number not in retried:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
            queued.append(t.number)
    return queued


def _record_interrupted(plan: Plan, t: optuna.trial.FrozenTrial, root: Path) -> None:
    run_dir = Path(root) / f"{plan.study}-t{t.number}"
    if run_dir.is_dir():
        params = {**plan.fixed, **{k: space.decode(v) for k, v in t.params.items()}, "exp": run_dir.name}
        trials.record(run_dir, plan.kind, params, trials.Outcome("interrupted", reason=t.user_attrs.get("reason", "")),
                      {"study": plan.study, "trial": t.number, "objective": plan.objective}, root)


def finished(study: optuna.Study) -> int:
    """Trials that count towards ``trials``: completed, pruned and failed ones (not those interrupted and re-run)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished()
               and not t.user_attrs.get("interrupted"))


def _on_row(trial: optuna.Trial, key: str) -> Any:
    """Report each epoch's ``key`` to Optuna; a reason to stop when the pruner says the trial trails the others."""
    def on_row(row: dict[str, Any]) -> str | None:
        value, epoch = row.get(key), row.get("epoch")
        if not isinstance(value, (int, float)) or not isinstance(epoch, int):
            return None
        trial.report(float(value), epoch)
        if trial.should_prune():
            return f"pruned at epoch {epoch}: {key} {value:.4f} trails the median of earlier trials at that epoch"
        return None

    return on_row


def run_trial(plan: Plan, trial: optuna.Trial, params: dict[str, Any], root: Path,
              stop: threading.Event) -> trials.Outcome:
    """Run the notebook for one trial, watch its progress, and record how it ended in its run record."""
    run_dir, t0 = Path(root) / params["exp"], time.time()
    if experiments.read_record(run_dir) is not None:
        return trials.Outcome("failed", reason=f"{run_dir} already holds a run; the trial is not run over it")
    proc = trials.start(plan.notebook, run_dir, params)
    progress = trials.Progress(run_dir / trials.PROGRESS)
    on_row = _on_row(trial, plan.progress_key) if plan.progress_key else (lambda row: None)
    try:
        pruned = trials.watch(proc, progress, on_row, stop=stop)
    finally:
        if proc.poll() is None:  # an exception (Ctrl-C) left it running
            trials.end(proc)
    seconds = time.time() - t0
    if stop.is_set():
        outcome = trials.Outcome("interrupted", reason="interrupted: the sweep was stopped while this trial ran",
                                 seconds=seconds, history=progress.rows)
    elif pruned:
        outcome = trials.Outcome("pruned", reason=pruned, seconds=seconds, history=progress.rows)
    elif proc.returncode != 0:
        outcome = trials.Outcome("failed", reason=trials.failure_reason(run_dir, plan.notebook.name, proc.returncode),
                                 seconds=seconds)
    else:
        value, why = trials.objective_value(experiments.read_record(run_dir), plan.objective)
        outcome = trials.Outcome("complete" if why == "" else "failed", value, why, seconds, progress.rows)
    trials.record(run_dir, plan.kind, params, outcome, {"study": plan.study, "trial": trial.number,
                                                        "objective": plan.objective}, root)
    return outcome


def objective(plan: Plan, root: Path, stop: threading.Event) -> Any:
    """Optuna's objective: one trial of the notebook; a failed or pruned trial raises (recorded, the study goes on)."""
    unwatched: list[str] = []  # trials that wrote no progress.jsonl although pruning is on (said once)

    def run_one(trial: optuna.Trial) -> float:
        params = {d.name: d.suggest(trial) for d in plan.dims}  # drawn first: an interrupted trial can be re-run
        exp = f"{plan.study}-t{trial.number}"
        trial.set_user_attr("exp", exp)
        if stop.is_set():
            outcome = trials.Outcome("interrupted", reason="interrupted: the sweep was stopped before this trial ran")
        else:
            outcome = run_trial(plan, trial, {**plan.fixed, **params, "exp": exp}, root, stop)
        trial.set_user_attr("seconds", round(outcome.seconds, 1))
        if plan.kind == "train" and plan.progress_key and outcome.state == "complete" and not outcome.history \
                and not unwatched:
            unwatched.append(exp)
            print(f"note: {exp} wrote no {trials.PROGRESS}, so its epochs could not be pruned (train.ipynb writes it "
                  f"through TrainingJob.train)", flush=True)
        if outcome.state == "complete":
            return outcome.value
        trial.set_user_attr("reason", outcome.reason)
        if outcome.state == "pruned":
            raise optuna.TrialPruned(outcome.reason)
        if outcome.state == "interrupted":
            trial.set_user_attr("interrupted", True)
            trial.study.stop()
        raise TrialFailed(outcome.reason)

    return run_one


def run(plan: Plan, root: Path = SUBMISSIONS) -> tuple[optuna.Study, report.Reporter]:
    """Run or resume the study until ``trials`` trials have finished (or ``timeout`` passed in this session);
    the study's files are kept current after every trial."""
    root = Path(root)
    lock = FileLock(str(experiments.run_dir(plan.study, root, "sweep") / ".sweep.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as e:
        raise ParameterError("study", plan.study, "a new study name, or wait for the other sweep",
                             why="another sweep is running this study now") from e
    try:
        study, storage = open_study(plan, root)
        queued = recover(study, storage, plan, root)
        rep = report.Reporter(study, plan, root)
        remaining = plan.trials - finished(study)
        for line in _opening(plan, study, queued, remaining):
            print(line, flush=True)
        if remaining > 0:
            _optimize(study, plan, root, rep, remaining)
        rep.finish()
        return study, rep
    finally:
        lock.release()


def _opening(plan: Plan, study: optuna.Study, queued: list[int], remaining: int) -> list[str]:
    done = finished(study)
    lines = [f"study {plan.study}: {plan.kind} ({plan.notebook}), {plan.direction} {plan.objective}; "
             f"{'resuming after ' + str(done) + ' finished trials; ' if done else ''}{max(remaining, 0)} to run, "
             f"{plan.parallel} at once; storage {Path(SUBMISSIONS.name) / plan.study / STORAGE}"]
    if queued:
        lines.append(f"interrupted trials {queued} are run again with the same parameters")
    lines += [f"note: {n}" for n in plan.notes] + [f"RULE: {r}" for r in plan.rules]
    return lines


def _optimize(study: optuna.Study, plan: Plan, root: Path, rep: report.Reporter, n: int) -> None:
    """study.optimize in a worker thread, so that Ctrl-C (or a kernel interrupt) reaches this thread at once and
    the running trials are stopped and marked interrupted (they are run again when the study resumes)."""
    stop, errors = threading.Event(), []

    def work() -> None:
        try:
            study.optimize(objective(plan, root, stop), n_trials=n, timeout=plan.timeout, n_jobs=plan.parallel,
                           catch=(TrialFailed,), callbacks=[rep.after_trial])
        except BaseException as e:  # re-raised in the calling thread below
            errors.append(e)

    worker = threading.Thread(target=work, name=f"sweep-{plan.study}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    except KeyboardInterrupt:
        stop.set()
        print("interrupted: stopping the running trials (they run again when the study is resumed)", flush=True)
        worker.join()
        raise
    if errors:
        raise errors[0]
