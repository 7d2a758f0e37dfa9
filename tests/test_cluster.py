"""Preprocessing on a Dask LocalCluster (``cluster: local:2``): the miniature corpora of every importer give the same
crops and the same submission as the worker processes; a killed worker loses no file; a file that kills its worker on
every try gets its fallback row. Slow: each cluster takes seconds to start on a small machine."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import media_factory as mf
from lib import cache, engines, models, pipeline, predict
from lib.scale import cluster
from lib.corpora.importers import import_corpus
from lib.errors import ParameterError
from lib.options import InferOptions, PrepSettings
from lib.training.data import load_crops

pytestmark = pytest.mark.slow

PREP = PrepSettings(frames=3, detect_width=256, size=32)
OPTS = InferOptions(frames=3, detect_width=256, batch_size=4)


def _video(path: Path, k: int) -> None:
    """A small face video, different for every ``k`` (frame count, brightness)."""
    frames = [np.clip(f.astype(int) + 3 * k, 0, 255).astype(np.uint8) for f in mf.face_frames(4 + k % 3, (160, 120))]
    path.parent.mkdir(parents=True, exist_ok=True)
    mf.write_video(path, frames)


def _image(path: Path, k: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(mf.face_image((128 + 4 * k, 128)), cv2.COLOR_RGB2BGR))


def _tree(root: Path, files: list[str], first: int, text: dict[str, str] | None = None) -> Path:
    """Media ``files`` under ``root``, each different (numbered from ``first``), and text files."""
    for k, rel in enumerate(files, first):
        (_image if rel.endswith(".png") else _video)(root / rel, k)
    for rel, body in (text or {}).items():
        (root / rel).write_text(body)
    return root


DFDC_META = ('{"a.mp4": {"label": "REAL", "split": "train"}, "b.mp4": {"label": "FAKE", "split": "train", '
             '"original": "a.mp4"}, "c.mp4": {"label": "REAL", "split": "train"}}')


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Each importer's miniature corpus, imported into the kit's layout."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("imported")
    layouts = {
        "ff++": ["original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                 "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
                 "manipulated_sequences/Face2Face/c23/videos/001_000.mp4"],
        "celebdf": ["Celeb-real/id0_0000.mp4", "YouTube-real/00000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"],
        "dfdc": ["dfdc_train_part_0/a.mp4", "dfdc_train_part_0/b.mp4", "dfdc_train_part_0/c.mp4"],
        "df40": ["DF40/simswap/ff/001_002/000.png", "DF40/heygen/real/clip7/000.png", "DF40/heygen/fake/clip7/000.png"],
        "folder": ["real/a.png", "real/b.mp4", "fake/c.png"],
    }
    outs, first = [], 0
    for corpus, files in layouts.items():
        text = {"dfdc_train_part_0/metadata.json": DFDC_META} if corpus == "dfdc" else None
        root = _tree(src / corpus.replace("+", "p"), files, first, text)
        first += len(files)
        import_corpus(corpus, root, out / corpus.replace("+", "p"))
        outs.append(out / corpus.replace("+", "p"))
    return outs


@pytest.fixture(scope="module")
def local2() -> cluster.DaskEngine:
    """One LocalCluster of 2 worker processes (1 thread each); a task is given up after its worker died twice."""
    import dask
    import distributed  # noqa: F401  (its config defaults first: leaving set() restores what it found, no more)

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with engines.opened("local:2") as eng:
            yield eng


def _entries(records: list, cache_dir: Path) -> tuple[list[tuple], list[np.ndarray]]:
    """What preprocessing found per file, and the cached crops."""
    return [(r.filename, r.n_crops, r.boxes, r.error) for r in records], \
        [cache.load_crops(cache_dir, r) for r in records if r.has_crops]


def test_every_corpus_gives_the_same_crops_and_submission_on_the_cluster(corpora: list[Path], local2, tiny_vit: Path,
                                                                         tmp_path: Path) -> None:
    folders = [str(c) for c in corpora]
    for reuse in (False, True):  # training preprocessing, with and without box reuse
        here, _ = load_crops(folders, PREP, tmp_path / f"here{reuse}", workers=0, box_reuse=reuse)
        there, _ = load_crops(folders, PREP, tmp_path / f"there{reuse}", workers=local2, box_reuse=reuse)
        np.testing.assert_array_equal(here.crops, there.crops)
        assert here.files.equals(there.files) and here.box_reuse == there.box_reuse
    lm = models.load_model(str(tiny_vit), device="cpu")
    for corpus in corpora:
        a = predict.predict_folder(corpus / "media", lm, OPTS, tmp_path / "a" / corpus.name, tmp_path / "ca", 0,
                                   progress=False)
        b = predict.predict_folder(corpus / "media", lm, OPTS, tmp_path / "b" / corpus.name, tmp_path / "cb", local2,
                                   progress=False)
        assert (tmp_path / "a" / corpus.name / "submission.csv").read_bytes() == \
            (tmp_path / "b" / corpus.name / "submission.csv").read_bytes()
        assert a.table.drop(columns="prob_fake").equals(b.table.drop(columns="prob_fake"))
        np.testing.assert_allclose(a.table["prob_fake"], b.table["prob_fake"], atol=1e-6)
        assert [r.n_crops for r in a.records] == [r.n_crops for r in b.records] and len(a.records) >= 3


def _slow_files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _video(folder / f"v{i:02d}.mp4", i)
    return sorted(folder.iterdir())


def test_a_killed_worker_loses_no_file(local2, tmp_path: Path) -> None:
    files = _slow_files(tmp_path / "media", 10)
    prep = PrepSettings(frames=6, detect_width=320, size=32)  # a second or so per file: tasks are in flight
    reference = pipeline.preprocess(files, prep, tmp_path / "ref", workers=0, progress=False)
    pids = local2.client.run(os.getpid)
    stream = pipeline.prepare_stream(files, prep, tmp_path / "c", local2, ahead=len(files), progress=False)
    records = [next(stream)]
    busy = {}
    for _ in range(100):  # a worker with a task running now
        busy = {a: k for a, k in local2.client.processing().items() if k}
        if busy:
            break
        time.sleep(0.05)
    victim = next(iter(busy))
    os.kill(pids[victim], signal.SIGKILL)
    records += list(stream)
    assert [r.filename for r in records] == [f.name for f in files]  # each file once, in order
    assert not [r for r in records if r.error] and local2.lost == []
    got, want = _entries(records, tmp_path / "c"), _entries(reference, tmp_path / "ref")
    assert got[0] == want[0]
    for x, y in zip(got[1], want[1]):
        np.testing.assert_array_equal(x, y)
    assert victim not in local2.client.run(os.getpid)  # the killed worker is gone (its nanny started a new one)
    assert [w for w in local2.info()["workers_lost"] if w.startswith(f"{victim}: lost")]  # the run record names it


def crash_on_crash(job: engines.Job) -> object:
    """A job that kills its worker process for files named crash* (as a decoder crash would), on every try."""
    if job.path.name.startswith("crash"):
        os._exit(1)
    return pipeline.prepare_cached(job)


def test_a_file_that_kills_its_worker_on_every_try_gets_its_fallback_row(local2, tmp_path: Path) -> None:
    files = _slow_files(tmp_path / "media", 3)
    os.link(files[0], tmp_path / "media" / "crash.mp4")
    jobs = [engines.Job(f, PREP, tmp_path / "c") for f in sorted((tmp_path / "media").iterdir())]
    records = list(local2.stream(crash_on_crash, jobs, progress=False))
    assert [r.filename for r in records] == ["crash.mp4", "v00.mp4", "v01.mp4", "v02.mp4"]
    crashed = records[0]
    assert crashed.exception and "KilledWorker" in crashed.error and not crashed.key
    assert all(r.has_crops for r in records[1:])
    table = pipeline.file_predictions(records, {}, fallback_prob=0.5)
    assert table.loc[0, "fallback"] == pipeline.FALLBACK_EXCEPTION and table.loc[0, "prob_fake"] == 0.5
    assert str(tmp_path / "media" / "crash.mp4") in local2.lost


def stop_on_hang(job: engines.Job) -> object:
    """A job that stops its worker process for files named hang* (a decoder that never returns)."""
    if job.path.name.startswith("hang"):
        os.kill(os.getpid(), signal.SIGSTOP)
    return pipeline.prepare_cached(job)


def test_a_hung_file_on_the_cluster_gets_its_timeout_row(local2, tmp_path: Path, monkeypatch) -> None:
    """The worker running hang.mp4 stops for ever: past the file's limit its nanny restarts it, the file gets its
    ``timeout`` row and the other files finish on the workers."""
    monkeypatch.setattr(cluster, "RESTART_TIMEOUT_S", 4)
    monkeypatch.setattr(local2, "file_timeout", 15.0)  # the clock starts when the run waits for the file
    files = _slow_files(tmp_path / "media", 3)
    os.link(files[0], tmp_path / "media" / "hang.mp4")
    jobs = [engines.Job(f, PREP, tmp_path / "c") for f in sorted((tmp_path / "media").iterdir())]
    records = list(local2.stream(stop_on_hang, jobs, progress=False))
    assert [r.filename for r in records] == ["hang.mp4", "v00.mp4", "v01.mp4", "v02.mp4"]
    assert records[0].timed_out and "time limit of 15 s" in records[0].error
    assert all(r.has_crops for r in records[1:]), [r.error for r in records]
    assert local2.info()["timed_out_files"] == [str(tmp_path / "media" / "hang.mp4")]
    local2.client.wait_for_workers(2, timeout=180)  # its nanny started a new worker (slow on a busy machine)


def test_a_scheduler_that_does_not_answer_is_a_parameter_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ParameterError, match="cluster='tcp://127.0.0.1:9'.*no Dask scheduler answers"):
        with engines.opened("tcp://127.0.0.1:9"):
            pass


def test_notebooks_on_a_cluster_and_in_shards_give_the_unsharded_submission(tiny_vit: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """preprocess.ipynb and infer.ipynb as papermill runs them: shard 1/2 on a LocalCluster, shard 2/2 in worker
    processes, merged by the command line, equal to one unsharded run."""
    import subprocess
    import sys

    import papermill as pm

    from lib.paths import NOTEBOOKS

    monkeypatch.setenv("KIT_WORKDIR", str(tmp_path / "kit"))
    data = tmp_path / "data"
    _slow_files(data, 4)
    _image(data / "photo.png", 9)
    (data / "zz_empty.mp4").write_bytes(b"")  # unreadable: its fallback row, in shard 2/2
    common = {"data_dir": str(data), "model": str(tiny_vit), "frames": 3, "detect_width": 256, "workers": 0}
    pm.execute_notebook(str(NOTEBOOKS / "preprocess.ipynb"), str(tmp_path / "pre.ipynb"), progress_bar=False,
                        parameters={**common, "cluster": "local:1", "shard": "1/2", "cache_dir": str(tmp_path / "c")})
    runs = {}
    for exp, extra in (("whole", {}), ("s1", {"cluster": "local:1", "shard": "1/2"}), ("s2", {"shard": "2/2"})):
        pm.execute_notebook(str(NOTEBOOKS / "infer.ipynb"), str(tmp_path / f"{exp}.ipynb"), progress_bar=False,
                            parameters={**common, "exp": exp, "cache_dir": str(tmp_path / "c"), **extra})
        runs[exp] = tmp_path / "kit" / "submissions" / exp
    import json

    s1 = json.loads((runs["s1"] / "run.json").read_text())
    assert s1["timings"]["cache_misses"] == 0 and s1["timings"]["cache_hits"] == 3  # preprocess filled shard 1/2
    done = subprocess.run([sys.executable, "-m", "lib.submission", "merge", str(tmp_path / "merged"), str(runs["s2"]),
                           str(runs["s1"])], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "merged" / "submission.csv").read_bytes() == (runs["whole"] / "submission.csv").read_bytes()


def test_a_scheduler_without_workers_is_a_parameter_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from distributed import LocalCluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    with LocalCluster(n_workers=0, dashboard_address=None, silence_logs=logging.ERROR) as bare:
        with pytest.raises(ParameterError, match="the scheduler has no worker after 2 s"):
            with engines.opened(bare.scheduler_address):
                pass
