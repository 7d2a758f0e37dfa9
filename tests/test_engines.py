"""Where jobs run (``lib.engines``): a hung file gets its timeout row and the others finish; workers die with the
process that started them (kill -9) and write nothing after; a killed run leaves no empty run folder; engines are
opened from ``cluster`` in one place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

import media_factory as mf
from lib import cache, engines, media, pipeline
from lib.errors import ParameterError
from lib.options import PrepSettings

PREP = PrepSettings(frames=2, size=32)


def _faces(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(mf.face_image((160 + 8 * i, 160))).save(folder / f"img{i}.jpg")
    return media.list_media(folder)


def hang_on_hang(job: engines.Job) -> object:
    """A worker job that stops its own process for files named hang* (a decoder that never returns), else prepares."""
    if job.path.name.startswith("hang"):
        os.kill(os.getpid(), signal.SIGSTOP)
    return pipeline.prepare_cached(job)


def test_a_job_has_a_time_limit_scaled_to_its_frames_and_size(tmp_path: Path) -> None:
    video, image = tmp_path / "a.mp4", tmp_path / "b.jpg"
    video.write_bytes(b"\0" * 5 * 2**20)
    image.write_bytes(b"\0" * 2**20)
    assert engines.Job(video, PrepSettings(frames=30), tmp_path).limit_s(60) == pytest.approx(60 * (30 + 5) / 10)
    assert engines.Job(image, PrepSettings(frames=30), tmp_path).limit_s(60) == 60  # one frame, small: the floor
    assert engines.Job(video, PREP, tmp_path).limit_s(0) is None  # 0: no limit
    with pytest.raises(ParameterError, match="file_timeout=-1"):
        engines.ProcessPool(2, file_timeout=-1)


def test_a_hung_file_gets_its_timeout_row_and_the_others_finish(tmp_path: Path) -> None:
    """The worker of hang.jpg stops (SIGSTOP) for ever; past its limit every worker is stopped and replaced, the
    file gets a ``timeout`` fallback row with the reason, and the files in flight beside it run again."""
    files = _faces(tmp_path / "media", 6)
    hang = tmp_path / "media" / "hang.jpg"
    hang.write_bytes(files[0].read_bytes())
    jobs = [engines.Job(f, PREP, tmp_path / "c") for f in media.list_media(tmp_path / "media")]
    assert jobs[0].path == hang
    pool = engines.ProcessPool(2, file_timeout=8.0)
    t0 = time.perf_counter()
    records = list(pool.stream(hang_on_hang, jobs, progress=False))
    took = time.perf_counter() - t0
    assert [r.filename for r in records] == [j.path.name for j in jobs]  # each file once, in order
    hung = records[0]
    assert hung.timed_out and not hung.key and "time limit of 8 s (file_timeout=8 s" in hung.error
    assert all(r.has_crops and not r.error for r in records[1:])
    table = pipeline.file_predictions(records, {}, fallback_prob=0.5)
    assert table.loc[0, "fallback"] == pipeline.FALLBACK_TIMEOUT and "time limit" in table.loc[0, "reason"]
    assert (table.loc[1:, "fallback"] == "fallback_prob").all()  # no probabilities given here: not the timeout
    assert pool.info()["timed_out_files"] == [str(hang)] and took < 60
    pool.close()
    assert not [p for p in psutil.Process().children(recursive=True) if p.status() == psutil.STATUS_STOPPED]


_KILLED = textwrap.dedent('''
    import sys, time
    from pathlib import Path

    import psutil

    from lib import engines, experiments, media, pipeline
    from lib.options import PrepSettings


    def slow(job):
        time.sleep(0.5)
        return pipeline.prepare_cached(job)


    if __name__ == "__main__":  # spawned workers import this file as __mp_main__
        data, cache, subs = map(Path, sys.argv[1:4])
        run = experiments.Run("infer", "killed", {"frames": 2}, root=subs)  # as infer.ipynb starts a run
        jobs = [engines.Job(f, PrepSettings(frames=2, size=32), cache) for f in media.list_media(data)]
        stream = engines.ProcessPool(2).stream(slow, jobs, progress=False)
        next(stream)
        pids = [p.pid for p in psutil.Process().children(recursive=True)]
        print("READY " + " ".join(map(str, pids)), flush=True)
        for record in stream:
            pass
        print("FINISHED", flush=True)
''')


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_of_the_parent_ends_its_workers_and_leaves_no_empty_run_folder(tmp_path: Path) -> None:
    """The parent starts a run and a pool of 2 workers over 30 files (0.5 s each), and is killed with SIGKILL after
    the first file: within a few seconds no worker (nor the resource tracker) is left, no cache entry is written
    after, and the run, which had written nothing yet, leaves no folder."""
    _faces(tmp_path / "data", 30)
    script = tmp_path / "killed.py"
    script.write_text(_KILLED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data"), str(tmp_path / "c"),
                               str(tmp_path / "subs")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = parent.stdout.readline()
        assert line.startswith("READY"), line
        children = [int(p) for p in line.split()[1:]]
        assert len(children) >= 2  # two workers and the resource tracker
        parent.kill()
        parent.wait()
        killed = time.time()
        deadline = killed + 5
        while time.time() < deadline and not all(map(_gone, children)):
            time.sleep(0.1)
        assert [p for p in children if not _gone(p)] == [], "a child outlived its parent"
        entries = {p: p.stat().st_mtime for p in (tmp_path / "c").rglob("*.npz")}
        time.sleep(2)
        assert {p: p.stat().st_mtime for p in (tmp_path / "c").rglob("*.npz")} == entries, "written after the kill"
        assert len(entries) < 30 and all(t < killed + 0.5 for t in entries.values())
        assert not (tmp_path / "subs" / "killed").exists()
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in [p for p in locals().get("children", []) if not _gone(p)]:
            os.kill(pid, signal.SIGKILL)


def test_a_run_folder_is_made_when_the_run_first_writes(tmp_path: Path) -> None:
    from lib import experiments

    run = experiments.Run("infer", "lazy", {"frames": 1}, root=tmp_path)
    assert run.path == tmp_path / "lazy" and not run.path.exists()
    (run.dir / "predictions.csv").write_text("filename\n")
    assert run.path.is_dir() and json.loads(run.finish().read_text())["exp"] == "lazy"


def test_engines_are_opened_in_one_place_and_an_open_one_is_passed_through() -> None:
    with engines.opened("", 0) as e0, engines.opened("", 2, file_timeout=0) as e2:
        assert isinstance(e0, engines.InProcess) and isinstance(e2, engines.ProcessPool)
        assert e2.slots == 2 and e2.file_timeout == 0
        with engines.opened("local:1", e2) as same:  # an engine given as workers is used as it is
            assert same is e2
    with pytest.raises(ParameterError, match="cluster='dask'"):
        engines.make("dask", 2)
    with pytest.raises(ParameterError, match="workers=-2"):
        engines.make("", -2)


def test_in_process_and_pool_give_the_same_records(tmp_path: Path) -> None:
    files = _faces(tmp_path / "media", 4)
    here = pipeline.preprocess(files, PREP, tmp_path / "a", workers=0, progress=False)
    there = pipeline.preprocess(files, PREP, tmp_path / "b", workers=2, progress=False)
    assert [(r.filename, r.n_crops, r.boxes) for r in here] == [(r.filename, r.n_crops, r.boxes) for r in there]
    for a, b in zip(here, there):
        np.testing.assert_array_equal(cache.load_crops(tmp_path / "a", a), cache.load_crops(tmp_path / "b", b))


@pytest.mark.parametrize("name", ["infer.ipynb", "preprocess.ipynb", "train.ipynb"])
def test_the_notebooks_default_file_timeout_is_the_engines(name: str) -> None:
    import papermill as pm

    from lib.paths import NOTEBOOKS

    assert float(pm.inspect_notebook(str(NOTEBOOKS / name))["file_timeout"]["default"]) == engines.FILE_TIMEOUT
