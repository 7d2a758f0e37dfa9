"""Preprocessing past one machine: files dealt out as tasks on ``dask.distributed``.

``cluster`` (a notebook parameter, checked by ``checks.cluster``) chooses where the files are decoded, detected and
cropped: ``""`` keeps today's worker processes (``workers``), ``"local:N"`` starts a ``LocalCluster`` of N worker
processes (one thread each), ``"tcp://host:8786"`` joins a running scheduler. ``engine`` gives what ``lib.pipeline``
takes as ``workers``: the number of processes, or a ``DaskEngine`` whose ``stream`` yields each file's record in
order with a bounded look-ahead, so the model (kept on the client) overlaps the cluster's preprocessing as it does
the worker pool's. Workers write crops to the crop cache, which must be on storage every worker sees at the same
path; the client reads them from there.

A worker that dies has its tasks rescheduled on the others by the scheduler (a task is given up after
``distributed.scheduler.allowed-failures`` deaths, 3 by default, and then submitted once more, ``RESUBMITS``, since
a bystander queued beside a crashing file shares its deaths); each file's record is taken once, in order, so no
file is lost or scored twice, and a file that fails on every try gets its fallback row (``failed``).

This module is the only one that imports Dask, and only the notebooks and the training code import it: the
scoring-server bundle (``lib.bundle``) never reaches it.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any, Callable, Iterable, Iterator

from tqdm.auto import tqdm

from .. import checks
from ..errors import ParameterError

CONNECT_TIMEOUT_S = 30
RESUBMITS = 1  # a task given up after worker deaths is submitted once more (see DaskEngine._result)


def _worker_setup() -> None:
    """Each worker process: OpenCV single-threaded (one task per thread; as the worker pool's initializer does)."""
    import cv2

    cv2.setNumThreads(1)


def _kit_on_worker(paths: list[str]) -> dict[str, Any]:
    """Run on each worker: where it imports the kit from, and which of ``paths`` it cannot see."""
    import lib

    return {"lib": lib.__version__, "missing": [p for p in paths if not os.path.exists(p)]}


class DaskEngine:
    """Files as tasks on a Dask cluster: a ``LocalCluster`` of ``n`` processes, or a running scheduler at ``address``."""

    def __init__(self, spec: str):
        from distributed import Client, LocalCluster  # imported here: Dask is needed only when cluster is set

        self.spec, self.local = spec, None
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
        self.lost: list[str] = []  # files whose tasks failed on every try

    def _register_setup(self) -> None:
        from distributed import WorkerPlugin

        class Setup(WorkerPlugin):
            def setup(self, worker: Any) -> None:
                _worker_setup()

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

    def stream(self, fn: Callable[[Any], Any], jobs: list[Any], ahead: int = 0, progress: bool = True,
               failed: Callable[[Any, str], Any] | None = None, desc: str = "preprocess") -> Iterator[Any]:
        """``fn(job)`` of each job, in order, with at most ``ahead`` (0: 4 per worker thread) tasks beyond the one
        being consumed; a job that fails on every try gives ``failed(job, reason)`` (raised when None). Jobs are
        (path, settings, cache folder, ...) tuples."""
        if jobs:
            for folder in {Path(j[2]) for j in jobs}:
                folder.mkdir(parents=True, exist_ok=True)
            self.check_storage({Path(j[0]).parent for j in jobs} | {Path(j[2]) for j in jobs})
        limit = ahead or 4 * self.slots
        todo, pending = iter(jobs), deque()
        with tqdm(total=len(jobs), desc=f"{desc} ({self.spec})", unit="file", disable=not progress) as bar:
            def submit(job: Any) -> Any:
                future = self.client.submit(fn, job, pure=False)
                future.add_done_callback(lambda f: bar.update() if f.status == "finished" else None)
                return future

            for job in itertools.islice(todo, limit):
                pending.append((job, submit(job)))
            try:
                while pending:
                    job, future = pending.popleft()
                    lost = len(self.lost)
                    result = self._result(job, future, submit, failed)
                    if len(self.lost) > lost:
                        bar.update()  # counted as done: it has its fallback record
                    for job in itertools.islice(todo, 1):
                        pending.append((job, submit(job)))
                    yield result
            finally:
                self.client.cancel([f for _, f in pending])

    def _result(self, job: Any, future: Any, submit: Callable[[Any], Any],
                failed: Callable[[Any, str], Any] | None) -> Any:
        """The task's result. A task given up because workers died while it was assigned to them (``KilledWorker``:
        the file that crashes them, or a bystander queued beside it) is submitted again ``RESUBMITS`` times; after
        its last try, ``failed(job, why)``."""
        from distributed import KilledWorker

        for attempt in range(RESUBMITS + 1):
            try:
                return future.result()
            except KilledWorker as e:
                error = e
                if attempt < RESUBMITS:
                    future.release()
                    future = submit(job)
            except Exception as e:  # an error the task did not catch: no point in running it again
                error = e
                break
        future.release()
        if failed is None:
            raise error
        self.lost.append(str(job[0]))
        return failed(job, f"{type(error).__name__} on the cluster: {error}")

    def info(self) -> dict[str, Any]:
        """What the run record keeps: the cluster, its workers and threads, files that failed on every try."""
        w = self.workers
        return {"cluster": self.spec, "workers": len(w), "threads": sum(w.values()), "failed_files": list(self.lost)}

    def close(self) -> None:
        self.client.close()
        if self.local is not None:
            self.local.close()


@contextmanager
def engine(cluster: str, workers: int) -> Iterator[int | DaskEngine]:
    """What ``lib.pipeline`` takes as ``workers``: ``workers`` itself when ``cluster`` is "", else a ``DaskEngine``
    (closed on exit; a LocalCluster's processes end with it)."""
    checks.cluster(cluster)
    if not cluster:
        yield workers
        return
    t0 = perf_counter()
    eng = DaskEngine(cluster)
    print(f"cluster {cluster}: {len(eng.workers)} workers, {eng.slots} threads (ready in {perf_counter() - t0:.1f} s)")
    try:
        yield eng
    finally:
        eng.close()
