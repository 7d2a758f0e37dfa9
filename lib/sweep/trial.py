"""One trial: the notebook run by papermill in a child process, its per-epoch progress watched (for pruning),
its outcome read from the run record, and the record marked with the sweep, the state and any failure reason."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import experiments

PROGRESS = "progress.jsonl"  # one JSON object per epoch, written by the training loop while it runs
PARAMS_FILE = "sweep-params.yaml"  # the trial's parameters exactly as papermill got them (-f)
LOG = "trial.log"  # papermill's output for the trial
POLL_S = 0.5
# papermill is started through this launcher: on Linux it asks to be sent SIGTERM when the sweep dies (even by
# SIGKILL), so no trial goes on running after its sweep; the kernel follows papermill (ipykernel's parent poller).
_LAUNCH = ("import ctypes, os, signal, sys\n"
           "if sys.platform.startswith('linux'):\n"
           "    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))\n"
           "    if os.getppid() != int(sys.argv[1]):\n"
           "        sys.exit('the sweep ended before this trial started')\n"
           "os.execv(sys.executable, [sys.executable, '-m', 'papermill', *sys.argv[2:]])\n")


@dataclass
class Outcome:
    """How a trial ended: ``complete`` (with the objective's value), ``failed`` or ``pruned`` (with the reason)."""

    state: str
    value: float | None = None
    reason: str = ""
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


class Progress:
    """Reads the complete new lines of a run's ``progress.jsonl`` as the notebook appends them."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rows = Path(path), 0, []

    def new_rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += end
        rows = []
        for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
            try:
                rows.append(json.loads(line)) if line.strip() else None
            except json.JSONDecodeError:
                warnings.warn(f"{self.path}: a line that is not JSON is ignored: {line[:80]!r}", stacklevel=2)
        self.rows += rows
        return rows


def start(notebook: Path, run_dir: Path, params: dict[str, Any]) -> subprocess.Popen:
    """Start papermill on ``notebook`` with ``params`` (written to the run folder) in its own process group; the
    run writes under the same KIT_WORKDIR as the sweep (``run_dir`` is ``<workdir>/submissions/<exp>``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    params_file = run_dir / PARAMS_FILE
    params_file.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    cmd = [sys.executable, "-c", _LAUNCH, str(os.getpid()), "--log-level", "WARNING", "--no-progress-bar",
           str(notebook), str(run_dir / notebook.name), "-f", str(params_file)]
    log = open(run_dir / LOG, "wb")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                                             "KIT_WORKDIR": str(run_dir.resolve().parents[1])})
    finally:
        log.close()


def end(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End a trial's papermill (SIGTERM to its process group, then SIGKILL); its kernel follows it."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def watch(proc: subprocess.Popen, progress: Progress, on_row: Callable[[dict[str, Any]], str | None],
          stop: threading.Event | None = None, poll_s: float = POLL_S) -> str | None:
    """Wait for the trial, passing each new progress row to ``on_row``; when it returns a reason, stop the trial
    and return that reason (None when the trial ran to its end, or was stopped because ``stop`` was set)."""
    while True:
        if stop is not None and stop.is_set():
            end(proc)
            return None
        done = proc.poll() is not None
        for row in progress.new_rows():
            reason = on_row(row)
            if reason:
                end(proc)
                return reason
        if done:
            return None
        time.sleep(poll_s)


def failure_reason(run_dir: Path, notebook_name: str, returncode: int) -> str:
    """Why a trial's papermill failed: the error of the notebook cell that raised, else how the process ended."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    out = run_dir / notebook_name
    try:
        cells = json.loads(out.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        cells = []
    for cell in cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                return f"{o.get('ename')}: {o.get('evalue')}"
    log = (run_dir / LOG).read_text(encoding="utf-8", errors="replace") if (run_dir / LOG).is_file() else ""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    reason = lines[-1][:500] if lines else f"papermill exited with status {returncode}"
    return reason + (" (the kernel died: out of memory?)" if "DeadKernelError" in reason else "")


def lookup(record: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a run record (``metrics.macro_f1``); KeyError names what is there instead."""
    cur: Any = record
    for i, part in enumerate(path.split(".")):
        if not isinstance(cur, dict) or part not in cur:
            where = ".".join(path.split(".")[:i]) or "run.json"
            there = sorted(cur) if isinstance(cur, dict) else type(cur).__name__
            raise KeyError(f"{path!r} is not in the run record ({where} has: {there})")
        cur = cur[part]
    return cur


def objective_value(record: dict[str, Any] | None, path: str) -> tuple[float | None, str]:
    """(value, '') or (None, why) for the objective ``path`` of a finished run's record."""
    if record is None:
        return None, f"the notebook finished without writing {experiments.RECORD}"
    try:
        value = lookup(record, path)
    except KeyError as e:
        return None, str(e.args[0])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, f"objective {path} = {value!r} is not a finite number"
    return float(value), ""


def record(run_dir: Path, kind: str, params: dict[str, Any], outcome: Outcome, sweep: dict[str, Any],
           root: Path) -> dict[str, Any]:
    """Add the sweep, the state and any failure reason to the trial's run record (writing a minimal record for a
    trial that ended before its notebook wrote one); EXPERIMENTS.md is regenerated."""
    rec = experiments.read_record(run_dir)
    if rec is None:
        now = datetime.now(timezone.utc)
        rec = {"exp": run_dir.name, "kind": kind, "params": params, "git": experiments.git_info(), "scores": {},
               "started": datetime.fromtimestamp(now.timestamp() - outcome.seconds, timezone.utc).isoformat(
                   timespec="seconds"), "finished": now.isoformat(timespec="seconds"),
               "timings": {"total_s": outcome.seconds}}
    rec["sweep"] = {**sweep, "state": outcome.state, "value": outcome.value}
    if outcome.state != "complete":
        rec.update(status=outcome.state, error=outcome.reason)
        if outcome.history and not rec.get("history"):
            rec["history"] = outcome.history
    experiments.write_record(run_dir, rec, root)
    return rec
