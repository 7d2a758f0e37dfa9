"""Where jobs run: in this process, in worker processes on this machine, or as tasks on a cluster
(``lib.scale.cluster``), all behind one protocol, ``Engine``.

An engine yields ``fn(job)`` for every job, in order, with at most ``ahead`` jobs in flight beyond the one being
consumed, so a slower consumer (the model) bounds the work, the disk and the memory in flight. Whatever goes wrong in
a worker costs one file its crops, never the run:

- a job that kills its worker (a decoder's segfault, the out-of-memory killer): the jobs in flight then run again one
  at a time, and the one that kills its worker again gets its fallback record (``WORKER_DIED``);
- a job that runs past its time limit (a decoder that hangs): its worker is stopped and replaced, the file gets its
  fallback record (``timed_out``, with the limit in the reason), and the other files go on. The limit is
  ``file_timeout`` seconds per 10 frames and per 10 MB of the file (``Job.limit_s``; 0: no limit);
- the process that started the workers dies (``kill -9`` of the notebook): the workers exit with it (a parent-death
  signal on Linux, and a watchdog thread everywhere), so none goes on writing cache entries.

Jobs are ``Job``s: a file, its crop settings and cache folder, by name. ``opened(cluster, workers, file_timeout)`` is
the one place an engine is made: ``cluster=""`` gives ``workers`` processes here (0: this process), "local:N" or
"tcp://host:port" a cluster engine, whose module is loaded by name only then, so that the scoring-server bundle (the
top-level modules) never imports it.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from . import checks, names
from .filerecord import FileRecord
from .media import media_kind
from .options import PrepSettings
from .progress import tqdm

FILE_TIMEOUT = 120.0  # seconds a file may take per 10 frames and per 10 MB (file_timeout); 0: no limit. dlib_cnn on 30
# frames of a 1 MB clip took 102 s on 2 busy cores (load 10) against its limit of 371 s; dlib_hog took at most 2.6 s
CLUSTER_MODULE = "lib.scale.cluster"  # loaded only when a cluster is asked for (never shipped to the server)
WATCH_S = 0.2  # how often a worker checks that the process that started it is alive
WORKER_DIED = ("the worker process preparing this file died, twice (a crash in a decoder, or killed for memory): "
               "not read")

Fn = Callable[["Job"], FileRecord]


@dataclass(frozen=True)
class Job:
    """One file to prepare: its path, crop settings and cache folder; box reuse adds the original's record."""

    path: Path
    prep: PrepSettings
    cache_dir: Path
    follow_links: bool = True  # a link out of the data folder is read (True) or refused
    original: FileRecord | None = None  # box reuse (lib.scale.boxreuse): the real clip whose face boxes are reused

    def limit_s(self, file_timeout: float) -> float | None:
        """Seconds this file may take: ``file_timeout`` per 10 frames read and per 10 MB, at least ``file_timeout``
        (None when ``file_timeout`` is 0: no limit)."""
        if not file_timeout:
            return None
        try:
            mb = self.path.stat().st_size / 2**20
        except OSError:
            mb = 0.0
        frames = self.prep.frames if media_kind(self.path) == "video" else 1
        return file_timeout * max(1.0, (frames + mb) / 10)


def failed_record(path: Path, reason: str, exception: bool = False, timed_out: bool = False) -> FileRecord:
    """The record of a file whose preparation failed (nothing cached, so a rerun tries again)."""
    return FileRecord(names.escape(path.name), media_kind(path), error=reason, exception=exception,
                      timed_out=timed_out)


def timed_out_record(job: Job, limit: float, file_timeout: float) -> FileRecord:
    """The record of a file that ran past its time limit (its worker was stopped and replaced)."""
    why = (f"not read: still running after its time limit of {limit:.0f} s (file_timeout={file_timeout:g} s per 10 "
           "frames and per 10 MB), so its worker was stopped and replaced (a decoder that hangs?)")
    return failed_record(job.path, why, timed_out=True)


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB); workers report theirs (they are not this process's children)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


class Engine(Protocol):
    """Where jobs run. ``stream`` yields ``fn(job)`` of each job in order; ``info`` is what the run record keeps."""

    @property
    def slots(self) -> int: ...  # jobs it runs at once

    def stream(self, fn: Fn, jobs: Iterable[Job], ahead: int = 0, progress: bool = True,
               desc: str = "preprocess") -> Iterator[FileRecord]: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class InProcess:
    """Every job in this process, one after the other (no time limit: nothing here can stop a hung decoder)."""

    slots = 1

    def stream(self, fn: Fn, jobs: Iterable[Job], ahead: int = 0, progress: bool = True,
               desc: str = "preprocess") -> Iterator[FileRecord]:
        jobs = list(jobs)
        with tqdm(total=len(jobs), desc=desc, unit="file", disable=not progress) as bar:
            for job in jobs:
                record = fn(job)
                bar.update()
                yield record

    def info(self) -> dict[str, Any]:
        return {"engine": "this process", "workers": 0, "workers_lost": [], "timed_out_files": [],
                "failed_files": []}

    def close(self) -> None:
        pass


class Ordered:
    """The loop every engine with workers shares: jobs submitted at most ``ahead`` (0: 4 per slot) beyond the one
    being consumed, each result taken in order. Subclasses say how a job is submitted (``_submit``) and how its
    result is taken (``_take``: where a dead or hung worker is handled, and ``pending`` may be resubmitted)."""

    file_timeout: float = FILE_TIMEOUT

    @property
    def slots(self) -> int:
        raise NotImplementedError

    def stream(self, fn: Fn, jobs: Iterable[Job], ahead: int = 0, progress: bool = True,
               desc: str = "preprocess") -> Iterator[FileRecord]:
        """``fn(job)`` of each job, in order (a job that failed on every try, or ran past its limit: its fallback
        record)."""
        jobs = list(jobs)
        window = ahead or 4 * self.slots
        todo: Iterator[Job] = iter(jobs)
        pending: deque[tuple[Job, Any]] = deque()
        self._begin(fn, jobs)
        with tqdm(total=len(jobs), desc=self._label(desc), unit="file", disable=not progress) as bar:
            try:
                pending.extend((j, self._submit(j)) for j in islice(todo, window))
                while pending:
                    job, handle = pending.popleft()
                    record = self._take(job, handle, pending)
                    pending.extend((j, self._submit(j)) for j in islice(todo, max(0, window - len(pending))))
                    bar.update()
                    yield record
            finally:
                self._end(pending)

    def _label(self, desc: str) -> str:
        return desc

    def _begin(self, fn: Fn, jobs: list[Job]) -> None:
        raise NotImplementedError

    def _submit(self, job: Job) -> Any:
        raise NotImplementedError

    def _take(self, job: Job, handle: Any, pending: deque[tuple[Job, Any]]) -> FileRecord:
        raise NotImplementedError

    def _end(self, pending: deque[tuple[Job, Any]]) -> None:
        raise NotImplementedError


def worker_setup() -> None:
    """Each worker process: OpenCV single-threaded (the worker is one of several on the cores)."""
    import cv2

    cv2.setNumThreads(1)


def _pool_worker_start(parent: int, signal_ok: bool) -> None:
    worker_setup()
    die_with_parent(parent, signal_ok)


def die_with_parent(parent: int, signal_ok: bool = True) -> None:
    """Make this process exit when ``parent`` (the process that started it) dies: on Linux a parent-death signal
    (SIGKILL; asked only when ``signal_ok``: the kernel sends it when the starting *thread* ends), and everywhere a
    watchdog thread that checks every ``WATCH_S`` seconds that ``parent`` is still this process's parent."""
    if signal_ok and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="kit-parent-watch").start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(1)


def new_pool(n: int) -> ProcessPoolExecutor:
    """``n`` worker processes started clean (spawn: forking a process whose OpenCV or OpenMP threads are running can
    leave a child waiting for ever on a lock copied in the locked state), each the child of this process and dying
    with it. An executor, not ``multiprocessing.Pool``: when a worker dies, its futures fail instead of waiting."""
    signal_ok = threading.current_thread() is threading.main_thread()
    return ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"), initializer=_pool_worker_start,
                               initargs=(os.getpid(), signal_ok))


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop every worker of ``pool`` at once (SIGKILL: a stopped or hung process too), then shut it down."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def _succeeded(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _done(record: FileRecord) -> Future:
    future: Future = Future()
    future.set_result(record)
    return future


class ProcessPool(Ordered):
    """Jobs in ``n`` worker processes on this machine (a run of one job runs in this process)."""

    def __init__(self, n: int, file_timeout: float = FILE_TIMEOUT):
        self.n, self.file_timeout = n, checks.file_timeout(file_timeout)
        self.pool: ProcessPoolExecutor | None = None
        self.size, self.fn = n, None
        self.workers_lost: list[str] = []
        self.timed_out: list[str] = []
        self.lost: list[str] = []

    @property
    def slots(self) -> int:
        return self.n

    def stream(self, fn: Fn, jobs: Iterable[Job], ahead: int = 0, progress: bool = True,
               desc: str = "preprocess") -> Iterator[FileRecord]:
        jobs = list(jobs)
        if len(jobs) <= 1:  # not worth starting a process
            return InProcess().stream(fn, jobs, ahead, progress, desc)
        return super().stream(fn, jobs, ahead, progress, desc)

    def _begin(self, fn: Fn, jobs: list[Job]) -> None:
        self.fn, self.size = fn, min(self.n, len(jobs))

    def _submit(self, job: Job) -> Future:
        """``pool.submit``; on a pool that is already broken, a future holding that error (handled in ``_take``)."""
        if self.pool is None:
            self.pool = new_pool(self.size)
        try:
            return self.pool.submit(self.fn, job)
        except BrokenProcessPool as e:
            failed: Future = Future()
            failed.set_exception(e)
            return failed

    def _take(self, job: Job, future: Future, pending: deque[tuple[Job, Any]]) -> FileRecord:
        limit = job.limit_s(self.file_timeout)
        try:
            return future.result(timeout=limit)
        except BrokenProcessPool:
            return self._after_death([(job, future), *pending], pending)
        except TimeoutError:
            if future.done():  # the job itself raised TimeoutError
                raise
            return self._after_hang(job, limit, pending)

    def _after_death(self, items: list[tuple[Job, Future]], pending: deque[tuple[Job, Any]]) -> FileRecord:
        """A worker died and broke the pool. Only the first ``size + 1`` unfinished jobs can have been running (the
        executor hands jobs out in order): they run again one at a time, the rest go to a fresh pool."""
        self._stop(kill=False)
        pending.clear()
        unfinished = [i for i, (_, f) in enumerate(items) if not _succeeded(f)]
        suspects = unfinished[: self.size + 1]
        self.workers_lost.append(f"a worker process died with {len(suspects)} files in flight (rerun one at a time)")
        redone = dict(zip(suspects, self._one_at_a_time([items[i][0] for i in suspects])))
        for i in unfinished:
            job = items[i][0]
            items[i] = (job, _done(redone[i]) if i in redone else self._submit(job))
        pending.extend(items[1:])
        return items[0][1].result()

    def _after_hang(self, job: Job, limit: float, pending: deque[tuple[Job, Any]]) -> FileRecord:
        """The job ran past its limit: every worker is stopped (the hung one among them), the jobs in flight that had
        not finished go to a fresh pool, and the job gets its fallback record."""
        items = list(pending)
        pending.clear()
        self._stop(kill=True)
        pending.extend((j, f if _succeeded(f) else self._submit(j)) for j, f in items)
        self.timed_out.append(str(job.path))
        return timed_out_record(job, limit, self.file_timeout)

    def _one_at_a_time(self, jobs: list[Job]) -> list[FileRecord]:
        """Each job in a single worker process (a fresh one after each death or hang)."""
        pool, out = None, []
        try:
            for job in jobs:
                pool = pool or new_pool(1)
                limit, future = job.limit_s(self.file_timeout), pool.submit(self.fn, job)
                try:
                    out.append(future.result(timeout=limit))
                    continue
                except BrokenProcessPool:
                    self.lost.append(str(job.path))
                    self.workers_lost.append(f"a worker process died preparing {job.path.name} alone: its fallback")
                    out.append(failed_record(job.path, WORKER_DIED, exception=True))
                except TimeoutError:
                    if future.done():
                        raise
                    self.timed_out.append(str(job.path))
                    out.append(timed_out_record(job, limit, self.file_timeout))
                kill_pool(pool)
                pool = None
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return out

    def _stop(self, kill: bool) -> None:
        if self.pool is not None:
            kill_pool(self.pool) if kill else self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _end(self, pending: deque[tuple[Job, Any]]) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def info(self) -> dict[str, Any]:
        return {"engine": f"{self.n} worker processes", "workers": self.n, "workers_lost": list(self.workers_lost),
                "timed_out_files": list(self.timed_out), "failed_files": list(self.lost)}

    def close(self) -> None:
        self._end(deque())


def make(cluster: str = "", workers: int = -1, file_timeout: float = FILE_TIMEOUT) -> Engine:
    """A new engine: ``cluster`` "" → ``workers`` processes here (-1 auto, 0 this process), else a cluster engine
    (``lib.scale.cluster``, loaded by name here and only here). The caller closes it."""
    checks.cluster(cluster)
    if cluster:
        return importlib.import_module(CLUSTER_MODULE).open_engine(cluster, file_timeout)
    n = checks.workers(workers)
    return ProcessPool(n, file_timeout) if n else InProcess()


@contextmanager
def opened(cluster: str = "", workers: int | Engine = -1, file_timeout: float = FILE_TIMEOUT) -> Iterator[Engine]:
    """The engine for ``cluster`` and ``workers``, closed on exit. An engine given as ``workers`` is used as it is
    (whoever opened it closes it), so a caller can share one engine between several streams."""
    if not isinstance(workers, int):
        yield workers
        return
    engine = make(cluster, workers, file_timeout)
    try:
        yield engine
    finally:
        engine.close()
