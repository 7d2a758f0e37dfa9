"""A cluster that is really separate processes (issue 21): ``dask scheduler`` and two ``dask worker`` processes started
with the CLI on 127.0.0.1, each in its own process group as on separate machines; ``infer.ipynb`` runs on them
through papermill with ``cluster tcp://127.0.0.1:PORT``, one worker's process group is killed with SIGKILL mid-run,
and the submission equals the in-process one row for row while run.json names the worker lost. Slow: about a
minute on two cores."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import media_factory as mf
from lib import models, predict
from lib.options import InferOptions
from lib.paths import NOTEBOOKS, ROOT

pytestmark = pytest.mark.slow

N_FILES = 16
PARAMS = {"frames": 6, "detect_width": 320, "batch_size": 8}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def spawn(tmp_path: Path):
    """Start a command in its own process group (setsid), logging to a file; every group is SIGKILLed at the end."""
    started: list[subprocess.Popen] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start(name: str, *cmd: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _cluster(spawn) -> tuple[str, list[subprocess.Popen], list[str]]:
    """The two commands a user types, on 127.0.0.1: a scheduler, and two single-threaded workers (fixed ports, so
    that their addresses are known); returns the scheduler's address, the worker processes and their addresses."""
    dask = str(Path(sys.executable).parent / "dask")
    port, ports = _port(), [_port() for _ in range(2)]
    address = f"tcp://127.0.0.1:{port}"
    spawn("scheduler", dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    workers = [spawn(f"worker{i}", dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                     "--host", "127.0.0.1", "--worker-port", str(p), "--name", f"w{i}") for i, p in enumerate(ports)]
    return address, workers, [f"tcp://127.0.0.1:{p}" for p in ports]


def _infer(args: dict, tmp_path: Path) -> subprocess.Popen:
    """infer.ipynb through papermill, its outputs under tmp_path/kit."""
    env = {**os.environ, "KIT_WORKDIR": str(tmp_path / "kit"), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "papermill", str(NOTEBOOKS / "infer.ipynb"),
                             str(tmp_path / f"{args['exp']}.ipynb"), "--no-progress-bar",
                             *[x for k, v in args.items() for x in ("-p", k, str(v))]],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_infer_on_a_scheduler_and_two_worker_processes_survives_a_killed_worker(spawn, tiny_vit: Path,
                                                                                 tmp_path: Path) -> None:
    from distributed import Client

    data = tmp_path / "data"
    data.mkdir()
    for i in range(N_FILES):
        mf.face_video(data / f"clip{i:02d}.mp4", n_frames=10 + i % 3, size=(320 + 16 * (i % 4), 240))
    address, workers, addresses = _cluster(spawn)
    client = Client(address, timeout=60)
    try:
        client.wait_for_workers(2, timeout=60)
        notebook = _infer({"data_dir": data, "model": tiny_vit, "cache_dir": tmp_path / "crops", "cluster": address,
                           "exp": "cl", **PARAMS}, tmp_path)
        entries = lambda: len(list((tmp_path / "crops").rglob("*.npz")))  # noqa: E731
        _wait_for(lambda: entries() >= 2 and client.processing().get(addresses[1]), 120, "the victim busy mid-run")
        os.killpg(workers[1].pid, signal.SIGKILL)  # the worker and its nanny, as a machine that goes away
        killed_at = entries()
        out, _ = notebook.communicate(timeout=180)
        assert notebook.returncode == 0, out[-3000:]
        assert killed_at < N_FILES, "the worker was killed after every file was done"
    finally:
        client.close()
    run = tmp_path / "kit" / "submissions" / "cl"
    lm = models.load_model(str(tiny_vit), device="cpu")
    predict.predict_folder(data, lm, InferOptions(**PARAMS), tmp_path / "ref", tmp_path / "ref-crops", workers=0,
                           progress=False)  # the same road in this process
    assert (run / "submission.csv").read_bytes() == (tmp_path / "ref" / "submission.csv").read_bytes()
    got, want = (pd.read_csv(d / "predictions.csv", keep_default_na=False) for d in (run, tmp_path / "ref"))
    assert len(got) == N_FILES and got.drop(columns="prob_fake").equals(want.drop(columns="prob_fake"))
    np.testing.assert_allclose(got["prob_fake"], want["prob_fake"], atol=1e-6)
    engine = json.loads((run / "run.json").read_text())["engine"]
    assert engine["cluster"] == address and engine["failed_files"] == [] and engine["timed_out_files"] == []
    assert [w for w in engine["workers_lost"] if w.startswith(f"{addresses[1]}: lost")], engine
