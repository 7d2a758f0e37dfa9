"""Sweeps: the search space and its checks, a tiny study over a fake notebook (one recorded run per trial, the
trials table, the best params file), failed and pruned trials, resume after a kill, and an infer sweep end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest
import yaml

from lib import experiments, paths, sweep
from lib.errors import ParameterError
from lib.paths import NOTEBOOKS
from lib.sweep import space, study as study_mod

# A notebook with the kit's shape (parameters cell, a run record, progress.jsonl per "epoch") and no model: it
# scores `level`, fails on purpose with mode "crash", and can be slow.
FAKE_PARAMETERS = '''\
level: float = 0.5  # the score this run records
mode: str = "ok"  # ok | crash | die
epochs: int = 0  # epochs of progress.jsonl to write (0: none)
epoch_s: float = 0.0  # seconds per epoch
tags: list = ["a"]  # a list parameter
exp: str = ""  # run name
'''
FAKE_BODY = '''\
import json, time
from lib import experiments
run = experiments.Run("fake", exp, {"level": level, "mode": mode, "epochs": epochs, "tags": tags, "exp": exp})
if mode == "crash":
    raise ValueError(f"bad combination: level {level} with mode crash")
if mode == "die":  # as the kernel does when the out-of-memory killer ends it
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)
for e in range(1, epochs + 1):
    time.sleep(epoch_s)
    score = level if e > 1 else 0.5
    with open(run.dir / "progress.jsonl", "a") as f:
        f.write(json.dumps({"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0 - score, "val_f1": score,
                            "val_auc": score}) + "\\n")
run.finish(metrics={"macro_f1": level, "auc": None, "nested": {"deep": level * 2}}, tags=tags)
'''


@pytest.fixture(scope="module")
def fake_nb(tmp_path_factory) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(FAKE_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(FAKE_BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path_factory.mktemp("nb") / "fake.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(autouse=True)
def same_workdir(monkeypatch):
    """Trials run in child processes: they must write where this process reads (conftest's KIT_WORKDIR)."""
    monkeypatch.setenv("KIT_WORKDIR", str(paths.WORKDIR))


def _params(nb: Path, **kw) -> dict:
    return {**sweep.DEFAULTS, "notebook": str(nb), "fixed": "", "sampler": "grid", "objective": "metrics.macro_f1",
            **kw}


def _rows(study: str) -> list[str]:
    table = experiments.EXPERIMENTS_MD.read_text(encoding="utf-8")
    return [ln for ln in table.splitlines() if ln.startswith(f"| {study}-t")]


# --- the space ------------------------------------------------------------------------------------------------

INFO = {"frames": {"type": "int"}, "lr": {"type": "float"}, "tta": {"type": "str"}, "augment": {"type": "list"},
        "self_blend": {"type": "bool"}, "exp": {"type": "str"}}


def test_space_parses_choices_and_ranges():
    dims = {d.name: d for d in space.parse_space(
        "frames: [16, 32, 40]\ntta: [none, flip]\nlr: {low: 1.0e-4, high: 3.0e-3, log: true}\n"
        "augment: [[flip], [flip, rotate]]", INFO, "nb")}
    assert dims["frames"].choices == (16, 32, 40) and dims["frames"].grid() == [16, 32, 40]
    assert dims["lr"].low == 1e-4 and dims["lr"].log and not dims["lr"].integer
    assert dims["augment"].labels() == ['["flip"]', '["flip", "rotate"]']
    assert space.decode(dims["augment"].labels()[1]) == ["flip", "rotate"]
    assert space.parse_space({"frames": {"low": 8, "high": 16, "step": 4}}, INFO, "nb")[0].grid() == [8, 12, 16]


@pytest.mark.parametrize("text, name, message", [
    ("frame: [16, 32]", "frame", "nb has no such parameter.*valid values: .*frames"),
    ("frames: []", "frames", "empty list of choices"),
    ("lr: {low: 0.01, high: 0.001}", "lr", "low 0.01 > high 0.001"),
    ("lr: {low: 0, high: 0.1, log: true}", "lr", "log range"),
    ("lr: {low: 0.001}", "lr", "needs low and high"),
    ("lr: {low: 0.001, high: 0.1, lg: true}", "lr", "unknown key 'lg'"),
    ("tta: {low: 1, high: 2}", "tta", "is a str parameter, not a number"),
    ("frames: {low: 8.5, high: 40}", "frames", "is an int parameter"),
    ("augment: [flip, rotate]", "augment", "each choice is a whole list"),
    ("frames: 40", "frames", "a single value belongs in the fixed params file"),
    ("exp: [a, b]", "exp", "names every trial"),
    ("tta: [flip, flip]", "tta", "repeated"),
])
def test_space_errors_name_the_parameter(text, name, message):
    with pytest.raises(ParameterError, match=message) as e:
        space.parse_space(text, INFO, "nb")
    assert e.value.name == name


def test_wrong_type_without_a_notebook_check():
    dims = space.parse_space("frames: [16, '32']\nself_blend: [true, 1]", INFO, "nb")
    with pytest.raises(ParameterError, match="frames='32'.*wrong type"):
        space.check_values(dims, {}, INFO, None)


def test_grid_needs_finite_values():
    with pytest.raises(ParameterError, match="grid sampler needs a finite set"):
        space.parse_space("lr: {low: 0.001, high: 0.1}", INFO, "nb")[0].grid()


def test_sweep_parameters_are_checked_before_any_trial(fake_nb):
    for bad, name in (({"parallel": (os.cpu_count() or 1) + 1}, "parallel"), ({"sampler": "bayes"}, "sampler"),
                      ({"direction": "up"}, "direction"), ({"trials": 0}, "trials"), ({"pruner": "hb"}, "pruner"),
                      ({"notebook": "nope"}, "notebook"), ({"space": ""}, "space"), ({"frobnicate": 1}, "frobnicate"),
                      ({"fixed": "level: 0.3\nlevle: 2"}, "levle"), ({"space": "level: {low: 0.1, high: 0.9}"}, "level")):
        with pytest.raises(ParameterError) as e:
            sweep.check(_params(fake_nb, space="level: [0.1]", **bad) if "space" not in bad else _params(fake_nb, **bad))
        assert e.value.name == name, (bad, str(e.value))


def test_kit_notebook_values_are_checked_by_the_notebooks_own_checks(tmp_path):
    """infer's tta 'flop' is caught before any trial; threshold 'model' (a str for a float) is accepted."""
    labels = tmp_path / "labels.csv"
    (tmp_path / "a.jpg").write_bytes(b"")  # a media file the labels name (infer checks that they overlap)
    labels.write_text("filename,label\na.jpg,0\n", encoding="utf-8")
    fixed = {"data_dir": str(tmp_path), "labels": str(labels), "model": "owner/model", "workers": 0}
    ok = sweep.check({**sweep.DEFAULTS, "fixed": fixed, "space": "threshold: [0.4, model]\ntta: [none, flip]"})
    assert [d.name for d in ok.dims] == ["threshold", "tta"] and any("threshold is searched" in r for r in ok.rules)
    with pytest.raises(ParameterError, match="tta='flop'.*valid values: none, flip"):
        sweep.check({**sweep.DEFAULTS, "fixed": fixed, "space": "tta: [none, flop]"})
    with pytest.raises(ParameterError, match="frames"):
        sweep.check({**sweep.DEFAULTS, "fixed": fixed, "space": "frames: [0, 8]"})
    with pytest.raises(ParameterError, match="needs labels|trials need labels"):
        sweep.check({**sweep.DEFAULTS, "fixed": {**fixed, "labels": ""}, "space": "tta: [none, flip]"})
    with pytest.raises(ParameterError, match="every trial would fail.*data_dir"):
        sweep.check({**sweep.DEFAULTS, "fixed": {**fixed, "data_dir": str(tmp_path / "missing")},
                     "space": "tta: [none, flip]"})


def test_train_objective_reminders():
    dims = space.parse_space("lr: [0.001]", INFO, "nb")
    f1 = " ".join(sweep.report.rule_notes("train", "metrics.macro_f1", dims, {}))
    assert "threshold chosen on those same val labels" in f1 and "loo_mean_auc" in f1
    loo = sweep.report.rule_notes("train", "metrics.loo_worst_auc", dims, {})
    assert len(loo) == 1 and "overfits that local set" in loo[0]


def test_sweep_notebook_is_clean_and_documents_the_same_defaults():
    nb = json.loads((NOTEBOOKS / "sweep.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])
    found = sweep.space.notebook_parameters(NOTEBOOKS / "sweep.ipynb")
    assert {k: v["default"] for k, v in found.items()} == sweep.DEFAULTS
    assert all(v["help"] for v in found.values())


# --- studies over the fake notebook ---------------------------------------------------------------------------

def test_tiny_study_one_run_per_trial_table_and_best_params(fake_nb):
    plan = sweep.check(_params(fake_nb, study="tiny", space="level: [0.2, 0.9, 0.6]\ntags: [[a], [a, b]]",
                               trials=4, fixed="epochs: 0"))
    study, rep = sweep.run(plan)
    table = pd.read_csv(paths.SUBMISSIONS / "tiny" / "trials.csv")
    assert list(table["exp"]) == [f"tiny-t{i}" for i in range(4)] and set(table["state"]) == {"complete"}
    for exp, value, tags in zip(table["exp"], table["value"], table["tags"]):
        rec = experiments.read_record(paths.SUBMISSIONS / exp)
        assert rec["kind"] == "fake" and rec["metrics"]["macro_f1"] == value and rec["sweep"]["study"] == "tiny"
        assert rec["tags"] == json.loads(tags), "a list choice reaches the notebook as a list"
    assert len(_rows("tiny")) == 4
    assert sweep.check(_params(fake_nb, study="x", space="level: [0.2]\ntags: [[a]]")).trials == 1
    best = yaml.safe_load(sweep.best_params_path("tiny").read_text())
    assert best["level"] == 0.9 == table["value"].max() and best["exp"] == "tiny-best" and best["epochs"] == 0
    out = paths.WORKDIR / "best.ipynb"
    pm.execute_notebook(str(fake_nb), str(out), parameters=best, progress_bar=False)  # what `papermill -f` does
    assert experiments.read_record(paths.SUBMISSIONS / "tiny-best")["metrics"]["macro_f1"] == 0.9
    rec = experiments.read_record(paths.SUBMISSIONS / "tiny")
    assert rec["kind"] == "sweep" and rec["best"]["exp"] in set(table.loc[table["value"] == 0.9, "exp"])
    assert "| tiny | " in experiments.EXPERIMENTS_MD.read_text() and "best tiny-t" in experiments.EXPERIMENTS_MD.read_text()
    for name in ("objective", "importances", "slice", "parallel"):
        assert (paths.SUBMISSIONS / "tiny" / f"{name}.png").stat().st_size > 5000, name
    assert (paths.SUBMISSIONS / "tiny" / "study.db").is_file()


def test_failed_trial_is_recorded_and_the_study_goes_on(fake_nb):
    plan = sweep.check(_params(fake_nb, study="fails", space="mode: [crash, ok, die]\nlevel: [0.7]", trials=3))
    sweep.run(plan)
    table = pd.read_csv(paths.SUBMISSIONS / "fails" / "trials.csv").set_index("mode")
    assert list(table.loc[["crash", "ok", "die"], "state"]) == ["failed", "complete", "failed"]
    assert "ValueError: bad combination: level 0.7 with mode crash" in table.loc["crash", "reason"]
    assert "the kernel died: out of memory?" in table.loc["die", "reason"]
    rec = experiments.read_record(paths.SUBMISSIONS / table.loc["crash", "exp"])
    assert rec["status"] == "failed" and "bad combination" in rec["error"]
    rows = _rows("fails")
    assert len(rows) == 3 and sum("| failed |" in r for r in rows) == 2


def test_missing_objective_fails_the_trial_with_what_is_there(fake_nb):
    plan = sweep.check(_params(fake_nb, study="noobj", space="level: [0.4]", objective="metrics.loo_mean_auc"))
    sweep.run(plan)
    reason = pd.read_csv(paths.SUBMISSIONS / "noobj" / "trials.csv")["reason"][0]
    assert "'metrics.loo_mean_auc' is not in the run record" in reason and "macro_f1" in reason
    plan = sweep.check(_params(fake_nb, study="nested", space="level: [0.4]", objective="metrics.nested.deep"))
    assert sweep.run(plan)[0].best_value == pytest.approx(0.8)


def test_pruning_on_progress_jsonl(fake_nb):
    import optuna

    plan = sweep.check(_params(fake_nb, study="prune", space="level: [0.1]", objective="metrics.auc",
                               sampler="random", trials=3, fixed="epochs: 30\nepoch_s: 0.3"))
    assert plan.progress_key == "val_auc"
    study, _ = study_mod.open_study(plan)
    for _ in range(2):  # two earlier trials that reached 0.9 at every epoch
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.9,
                                                  intermediate_values={e: 0.9 for e in range(1, 31)}))
    t0 = time.time()
    sweep.run(plan)
    assert time.time() - t0 < 60, "the pruned trial must be stopped, not run for its 30 epochs"
    row = pd.read_csv(paths.SUBMISSIONS / "prune" / "trials.csv").iloc[-1]
    assert row["state"] == "pruned" and row["exp"] == "prune-t2" and "pruned at epoch 2: val_auc 0.1000" in row["reason"]
    rec = experiments.read_record(paths.SUBMISSIONS / "prune-t2")
    epochs = [h["epoch"] for h in rec["history"]]
    assert rec["status"] == "pruned" and epochs[:2] == [1, 2] and len(epochs) < 10
    assert "| prune-t2 |" in experiments.EXPERIMENTS_MD.read_text()


def test_killed_sweep_resumes_without_losing_or_repeating_a_trial(fake_nb, tmp_path):
    args = [sys.executable, "-m", "lib.sweep", "--notebook", str(fake_nb), "--fixed", "epochs: 4\nepoch_s: 1.0",
            "--space", "level: [0.1, 0.2, 0.3, 0.4]", "--sampler", "grid", "--trials", "4", "--study", "resume",
            "--pruner", "none"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
                            cwd=paths.ROOT)
    first = paths.SUBMISSIONS / "resume-t0" / experiments.RECORD
    deadline = time.time() + 120
    while not (first.is_file() and (paths.SUBMISSIONS / "resume-t1" / "progress.jsonl").is_file()):
        assert time.time() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # a crash: no cleanup in the sweep
    proc.wait()
    time.sleep(3)  # the orphaned trial follows its sweep (SIGTERM on parent death), its kernel follows papermill
    assert not experiments.read_record(paths.SUBMISSIONS / "resume-t1"), "the interrupted trial must not finish"
    done = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy(), cwd=paths.ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "interrupted trials [1] are run again" in done.stdout
    table = pd.read_csv(paths.SUBMISSIONS / "resume" / "trials.csv")
    assert list(table["trial"]) == list(range(len(table))) == [0, 1, 2, 3, 4]
    assert list(table["state"]) == ["complete", "interrupted", "complete", "complete", "complete"]
    done_levels = sorted(table.loc[table["state"] == "complete", "level"])
    assert done_levels == [0.1, 0.2, 0.3, 0.4], "every grid point ran exactly once"
    retried = table.loc[table["retry_of"] == 1]
    assert len(retried) == 1 and retried["level"].iloc[0] == table.loc[1, "level"]
    assert experiments.read_record(paths.SUBMISSIONS / "resume-t1")["status"] == "interrupted"
    assert len(_rows("resume")) == 5
    again = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy(), cwd=paths.ROOT, timeout=120)
    assert "0 to run" in again.stdout and len(pd.read_csv(paths.SUBMISSIONS / "resume" / "trials.csv")) == 5


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores")
def test_parallel_trials_each_get_their_own_run(fake_nb):
    plan = sweep.check(_params(fake_nb, study="par", space="level: [0.1, 0.2, 0.3, 0.4]", trials=4, parallel=2,
                               fixed="epochs: 2\nepoch_s: 0.5"))
    sweep.run(plan)
    table = pd.read_csv(paths.SUBMISSIONS / "par" / "trials.csv")
    assert sorted(table["level"]) == [0.1, 0.2, 0.3, 0.4] and set(table["state"]) == {"complete"}
    assert len(_rows("par")) == 4 and len({experiments.read_record(paths.SUBMISSIONS / e)["exp"] for e in table["exp"]}) == 4


def test_a_resumed_study_keeps_its_space(fake_nb):
    sweep.run(sweep.check(_params(fake_nb, study="same", space="level: [0.3]")))
    with pytest.raises(ParameterError, match="it was started with space"):
        sweep.run(sweep.check(_params(fake_nb, study="same", space="level: [0.3, 0.5]")))


def test_sweep_notebook_runs_a_study_and_shows_its_plots(fake_nb):
    out = paths.WORKDIR / "sweep-run.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "sweep.ipynb"), str(out), progress_bar=False,
                        parameters={"notebook": str(fake_nb), "fixed": "", "space": "level: [0.3, 0.6]",
                                    "study": "nbsweep", "sampler": "grid", "trials": 2})
    table = pd.read_csv(paths.SUBMISSIONS / "nbsweep" / "trials.csv")
    assert sorted(table["level"]) == [0.3, 0.6] and set(table["state"]) == {"complete"}
    executed = json.loads(out.read_text())
    images = [o for c in executed["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "objective, importances and slice plots are shown inline"
    assert any("RULE:" in "".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))


# --- a real infer sweep on the generated sample set ------------------------------------------------------------

@pytest.mark.slow
def test_two_trial_infer_sweep_on_the_sample_set(tiny_vit, tmp_path_factory):
    from lib.corpora import sample

    test = sample.make_sample(tmp_path_factory.mktemp("sample"), seed=7)["test"]
    fixed = {"data_dir": str(test), "labels": str(test / "labels.csv"), "model": str(tiny_vit), "frames": 4,
             "workers": 0, "cache_dir": str(paths.WORKDIR / "sweep-crops")}
    plan = sweep.check({**sweep.DEFAULTS, "fixed": fixed, "space": "tta: [none, flip]", "study": "infer-sweep",
                        "trials": 2, "sampler": "grid"})
    study, rep = sweep.run(plan)
    table = pd.read_csv(paths.SUBMISSIONS / "infer-sweep" / "trials.csv")
    assert sorted(table["tta"]) == ["flip", "none"] and set(table["state"]) == {"complete"}
    for exp in table["exp"]:
        rec = experiments.read_record(paths.SUBMISSIONS / exp)
        assert rec["kind"] == "infer" and 0 <= rec["metrics"]["macro_f1"] <= 1
        assert (paths.SUBMISSIONS / exp / "submission.csv").is_file()
    assert len(_rows("infer-sweep")) == 2
    warm = experiments.read_record(paths.SUBMISSIONS / table["exp"][1])
    assert warm["timings"]["cache_misses"] == 0, "the second trial reads the crops the first one cached"
    best = yaml.safe_load(sweep.best_params_path("infer-sweep").read_text())
    assert best["tta"] in ("none", "flip") and best["model"] == str(tiny_vit)


# --- the training loop's per-epoch progress, which the sweep prunes on ------------------------------------------


def test_the_command_line_takes_the_sweeps_schema():
    """python -m lib.sweep has one option per sweep parameter, with the notebook's defaults."""
    from lib.sweep.__main__ import parse_args

    assert parse_args([]) == sweep.DEFAULTS == sweep.SWEEP.defaults
    got = parse_args(["--notebook", "train", "--trials", "7", "--timeout", "2.5", "--space", "lr: [0.01]"])
    assert got["notebook"] == "train" and got["trials"] == 7 and got["timeout"] == 2.5 and got["space"] == "lr: [0.01]"
