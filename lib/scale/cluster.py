"""Preprocessing past one machine: files dealt out as tasks on ``dask.distributed``, behind ``lib.engines.Engine``.

``cluster`` (a notebook parameter, checked by ``checks.cluster``) chooses where the files are decoded, detected and
cropped: ``""`` keeps the worker processes of this machine (``workers``), ``"local:N"`` starts a ``LocalCluster`` of
N worker processes (one thread each), ``"tcp://host:8786"`` joins a running scheduler. ``lib.engines.opened`` is the
one place that reads ``cluster``: it loads this module by name (``open_engine``) only then. A ``DaskEngine`` runs the
loop every engine shares (``lib.engines.Ordered``: each file's record in order, a bounded look-ahead), so the model
(kept on the client) overlaps the cluster's preprocessing as it does the worker pool's. Workers write crops to the
crop cache, which must be on storage every worker sees at the same path; the client reads them from there.

A worker that dies has its tasks rescheduled on the others by the scheduler (a task is given up after
``distributed.scheduler.allowed-failures`` deaths, 3 by default, and then submitted once more, ``RESUBMITS``, since
a bystander queued beside a crashing file shares its deaths); each file's record is taken once, in order, so no
file is lost or scored twice, and a file that fails on every try gets its fallback row. A task past its file's time
limit (``file_timeout``) has its worker restarted by its nanny and the file gets its ``timeout`` fallback row. The
run record (``info``) names every worker the scheduler lost during the run.

A cluster of separate machines (or processes) takes two commands, typed in the kit's folder with its venv, and the
media and crop cache mounted at the same paths on every machine:

    # on the scheduler's machine
    .venv/bin/dask scheduler --port 8786
    # on each worker machine: one single-threaded worker process per core, less one
    PYTHONPATH=$PWD .venv/bin/dask worker tcp://SCHEDULER:8786 --nworkers 15 --nthreads 1

then ``-p cluster tcp://SCHEDULER:8786`` on the machine that runs the notebook (``tests/test_cluster_processes.py``
runs exactly this on 127.0.0.1 and kills a worker mid-run).

This module is the only one that imports Dask, and only ``lib.engines.make`` loads it: the scoring-server bundle
(``lib.bundle``) never reaches it.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from time import perf_counter
from typing import Any, Iterable

from .. import checks
from ..engines import FILE_TIMEOUT, Fn, Job, Ordered, failed_record, timed_out_record, worker_setup
from ..errors import DiskFullError, ParameterError
from ..filerecord import FileRecord

CONNECT_TIMEOUT_S = 30
RESTART_TIMEOUT_S = 30  # a hung worker's nanny kills it if it does not close by then
RESUBMITS = 1  # a task given up after worker deaths is submitted once more (see DaskEngine._take)


def _kit_on_worker(paths: list[str]) -> dict[str, Any]:
    """Run on each worker: where it imports the kit from, and which of ``paths`` it cannot see."""
    import lib

    return {"lib": lib.__version__, "missing": [p for p in paths if not os.path.exists(p)]}


class DaskEngine(Ordered):
    """Files as tasks on a Dask cluster: a ``LocalCluster`` of ``n`` processes, or a running scheduler at ``address``."""

    def __init__(self, spec: str, file_timeout: float = FILE_TIMEOUT):
        from distributed import Client, LocalCluster  # imported here: Dask is needed only when cluster is set

        self.spec, self.local, self.file_timeout = spec, None, checks.file_timeout(file_timeout)
        if spec.startswith("local:"):
            self.local = LocalCluster(n_workers=int(spec.split(":")[1]), threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.local)
        else:
            try:
                self.client = Client(spec, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as e:
                raise ParameterError("cluster", spec, checks.CLUSTER_FORMS,
                                     why=f"no Dask scheduler answers there ({type(e).__name__}: {e})") from e
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError as e:
            self.close()
            raise ParameterError("cluster", spec, why=f"the scheduler has no worker after {CONNECT_TIMEOUT_S} s "
                                 "(start them: dask worker <address>, README: Past one machine)") from e
        self._register_setup()
        self.fn: Fn | None = None
        self.lost: list[str] = []  # files whose tasks failed on every try
        self.timed_out: list[str] = []  # files past their time limit
        self.events_seen = len(self._worker_events())  # the scheduler's worker events before this engine

    def _register_setup(self) -> None:
        from distributed import WorkerPlugin

        class Setup(WorkerPlugin):
            def setup(self, worker: Any) -> None:
                worker_setup()

        self.client.register_plugin(Setup(), name="kit-setup")

    @property
    def workers(self) -> dict[str, int]:
        """Worker address → threads, as the scheduler sees them now."""
        return {a: w["nthreads"] for a, w in self.client.scheduler_info(n_workers=-1)["workers"].items()}

    @property
    def slots(self) -> int:
        """Tasks the cluster runs at once (its worker threads)."""
        return max(1, sum(self.workers.values()))

    def check_storage(self, paths: Iterable[Path]) -> None:
        """Every worker imports the kit and sees ``paths`` (the crop cache, the media): else ParameterError."""
        paths = [str(Path(p).resolve()) for p in paths]
        try:
            seen = self.client.run(_kit_on_worker, paths)
        except Exception as e:  # a worker that cannot unpickle the function has no kit to import
            raise ParameterError("cluster", self.spec, why=f"a worker cannot run the kit ({type(e).__name__}: {e}); "
                                 "start the workers from the kit's folder in its venv (README: Past one machine)") from e
        for address, found in seen.items():
            if found["missing"]:
                raise ParameterError("cluster", self.spec, why=f"worker {address} does not see {found['missing'][0]}: "
                                     "the media and the crop cache must be on storage every worker sees, at the same "
                                     "path")

    def _label(self, desc: str) -> str:
        return f"{desc} ({self.spec})"

    def _begin(self, fn: Fn, jobs: list[Job]) -> None:
        """The cache folders made, and every worker checked: it runs the kit and sees the media and the cache."""
        self.fn = fn
        if jobs:
            for folder in {j.cache_dir for j in jobs}:
                Path(folder).mkdir(parents=True, exist_ok=True)
            self.check_storage({j.path.parent for j in jobs} | {Path(j.cache_dir) for j in jobs})

    def _submit(self, job: Job) -> Any:
        return self.client.submit(self.fn, job, pure=False)

    def _take(self, job: Job, future: Any, pending: deque[tuple[Job, Any]]) -> FileRecord:
        """The task's result. A task given up because workers died while it was assigned to them (``KilledWorker``:
        the file that crashes them, or a bystander queued beside it) is submitted again ``RESUBMITS`` times; after
        its last try, its fallback record. A task past its limit: its worker restarted, its ``timeout`` record."""
        from distributed import KilledWorker

        limit = job.limit_s(self.file_timeout)
        for attempt in range(RESUBMITS + 1):
            try:
                return future.result(timeout=limit)
            except KilledWorker as e:
                error: Exception = e
                if attempt < RESUBMITS:
                    future.release()
                    future = self._submit(job)
            except TimeoutError:
                if future.done():  # the task itself raised TimeoutError
                    raise
                return self._after_hang(job, future, limit)
            except DiskFullError:  # the run stops, as it does on the worker pool
                raise
            except Exception as e:  # an error the task did not catch: no point in running it again
                error = e
                break
        future.release()
        self.lost.append(str(job.path))
        return failed_record(job.path, f"{type(error).__name__} on the cluster: {error}", exception=True)

    def _after_hang(self, job: Job, future: Any, limit: float) -> FileRecord:
        """Restart the worker running the task (its nanny kills it if it does not close), give up the task."""
        where = [w for w, keys in self.client.processing().items() if future.key in keys]
        future.cancel()
        if where:
            self.client.restart_workers(where, timeout=RESTART_TIMEOUT_S, raise_for_error=False)
        self.timed_out.append(str(job.path))
        return timed_out_record(job, limit, self.file_timeout)

    def _end(self, pending: deque[tuple[Job, Any]]) -> None:
        self.client.cancel([f for _, f in pending])

    def _worker_events(self) -> list[dict[str, Any]]:
        """The scheduler's "remove-worker" events, oldest first."""
        return [msg for _, msg in self.client.get_events("all")
                if isinstance(msg, dict) and msg.get("action") == "remove-worker"]

    def workers_lost(self) -> list[str]:
        """Every worker the scheduler lost since this engine started, with the tasks it was running."""
        out = []
        for msg in self._worker_events()[self.events_seen:]:
            why = "restarted by the kit (a task past its time limit)" if msg.get("expected") else "lost"
            out.append(f"{msg.get('worker')}: {why}, {len(msg.get('processing-tasks') or ())} tasks in flight "
                       "rescheduled")
        return out

    def info(self) -> dict[str, Any]:
        """What the run record keeps: the cluster, its workers and threads, workers lost, files that failed on every
        try or ran past their limit."""
        w = self.workers
        return {"engine": "dask", "cluster": self.spec, "workers": len(w), "threads": sum(w.values()),
                "workers_lost": self.workers_lost(), "timed_out_files": list(self.timed_out),
                "failed_files": list(self.lost)}

    def close(self) -> None:
        self.client.close()
        if self.local is not None:
            self.local.close()


def open_engine(cluster: str, file_timeout: float = FILE_TIMEOUT) -> DaskEngine:
    """A ``DaskEngine`` for ``cluster`` ("local:N" or "tcp://host:port"), its size printed; ``lib.engines.make``
    calls this."""
    t0 = perf_counter()
    engine = DaskEngine(cluster, file_timeout)
    print(f"cluster {cluster}: {len(engine.workers)} workers, {engine.slots} threads (ready in "
          f"{perf_counter() - t0:.1f} s)")
    return engine
