from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys

import pytest

from lib import checks, experiments
from lib.errors import ParameterError


def _one_run(args):
    root, i = args
    run = experiments.Run("infer", f"exp{i:02d}", {"frames": i, "tta": "flip", "model": "m"}, root=root)
    with run.stage("model"):
        pass
    run.finish(metrics={"macro_f1": i / 100})


def test_concurrent_runs_lose_no_row(tmp_path):
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_one_run, [(tmp_path, i) for i in range(12)])
    table = (tmp_path / "EXPERIMENTS.md").read_text()
    for i in range(12):
        assert f"| exp{i:02d} |" in table
    rec = json.loads((tmp_path / "exp03" / "run.json").read_text())
    assert rec["params"]["frames"] == 3 and "model_s" in rec["timings"] and rec["versions"]["python"]
    assert rec["memory"]["rss_mb"] > 0 and "commit" in rec["git"]


def test_score_is_recorded_and_protects_the_run(tmp_path):
    _one_run((tmp_path, 1))
    experiments.record_score("exp01", 0.56, root=tmp_path)
    experiments.record_score("exp01", 0.55, "private", root=tmp_path)
    rec = experiments.read_record(tmp_path / "exp01")
    assert rec["scores"]["public"] == 0.56 and rec["scores"]["private"] == 0.55
    row = [line for line in (tmp_path / "EXPERIMENTS.md").read_text().splitlines() if "| exp01 |" in line][0]
    assert "0.5600" in row and "0.5500" in row
    with pytest.raises(ParameterError, match="exp='exp01'.*scored run"):
        experiments.Run("infer", "exp01", {}, root=tmp_path)
    with pytest.raises(ParameterError, match="exp='nope'.*exp01"):
        experiments.record_score("nope", 0.5, root=tmp_path)
    with pytest.raises(ParameterError, match="score=1.5"):
        experiments.record_score("exp01", 1.5, root=tmp_path)


def test_rebuild_is_deterministic(tmp_path):
    for i in range(3):
        _one_run((tmp_path, i))
    first = (tmp_path / "EXPERIMENTS.md").read_text()
    (tmp_path / "EXPERIMENTS.md").unlink()
    experiments.rebuild_table(tmp_path)
    assert (tmp_path / "EXPERIMENTS.md").read_text() == first


def test_exp_names():
    assert checks.exp_name("").startswith("run-")
    with pytest.raises(ParameterError, match="exp='../x'"):
        checks.exp_name("../x")


def test_score_command_line(tmp_path):
    _one_run((tmp_path, 7))
    cmd = [sys.executable, "-m", "lib.experiments", "--submissions", str(tmp_path), "score"]
    out = subprocess.run(cmd + ["exp07", "0.61"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert experiments.read_record(tmp_path / "exp07")["scores"]["public"] == 0.61
    bad = subprocess.run(cmd + ["no-such-exp", "0.5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no-such-exp" in bad.stderr and "exp07" in bad.stderr
