"""Nothing lost, whatever the folder holds (issue 13): odd names through the predict road, a self-healing crop cache,
a full disk, files created with the user's umask, labels and weights checked at the start, links out of data_dir,
fallback reasons that name this run's file, and runs that fail into a record (or leave no folder)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import media_factory as mf
import odd_corpus
from lib import cache, engines, experiments, media, models, names, parameters, pipeline, predict, submission
from lib.errors import DiskFullError, ModelLoadError, ParameterError
from lib.options import InferOptions, PrepSettings

OPTS = InferOptions(frames=3, batch_size=8)


@pytest.fixture(scope="module")
def lm(tiny_vit):
    return models.load_model(str(tiny_vit), device="cpu")


def _faces(folder: Path, n_images: int = 2, n_videos: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        Image.fromarray(mf.face_image((200 + 8 * i, 200))).save(folder / f"img{i}.jpg")
    for i in range(n_videos):
        mf.face_video(folder / f"vid{i}.mp4", n_frames=6, size=(320 + 16 * i, 240))
    return media.list_media(folder)


# ------------------------------------------------------------------------------------------------ dead workers
def die_on_crash(job: engines.Job) -> object:
    """A worker job that kills its process for files named crash* (as a decoder's segfault or the OOM killer would),
    on every try."""
    if job.path.name.startswith("crash"):
        os._exit(1)
    return pipeline.prepare_cached(job)


def test_a_file_that_kills_its_worker_gets_its_fallback_and_the_others_their_crops(tmp_path):
    files = _faces(tmp_path / "media", n_images=3, n_videos=2)
    shutil.copy(files[0], tmp_path / "media" / "crash.jpg")
    jobs = [engines.Job(f, PrepSettings(frames=2, size=32), tmp_path / "c") for f in media.list_media(tmp_path / "media")]
    pool = engines.ProcessPool(2)
    records = list(pool.stream(die_on_crash, jobs, 8, progress=False))  # with multiprocessing.Pool this waited for ever
    assert [r.filename for r in records] == [j.path.name for j in jobs]  # each file once, in order
    crashed = records[0]
    assert crashed.filename == "crash.jpg" and crashed.exception and crashed.error == engines.WORKER_DIED
    assert all(r.has_crops and not r.error for r in records[1:])
    table = pipeline.file_predictions(records, {}, fallback_prob=0.5)
    assert table.loc[0, "fallback"] == pipeline.FALLBACK_EXCEPTION and table.loc[0, "prob_fake"] == 0.5
    assert pool.info()["failed_files"] == [str(jobs[0].path)] and len(pool.info()["workers_lost"]) == 2


# ------------------------------------------------------------------------------------------------ odd names
def test_every_odd_name_gets_one_row_through_the_predict_road(tmp_path, lm):
    data = tmp_path / "data"
    raw = odd_corpus.make_odd_corpus(data, tmp_path / "outside")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="7 media files have names that are not valid UTF-8"):
        pred = predict.predict_folder(data, lm, OPTS, out, tmp_path / "crops", workers=1, progress=False)
    table = pd.read_csv(out / predict.PREDICTIONS, keep_default_na=False, encoding="utf-8")
    assert len(table) == len(raw) == len(pred.table)
    back = sorted(names.unescape(n) if e else n.encode() for n, e in zip(table["filename"], table["name_escaped"]))
    assert back == raw, "one row per file, and every name gives its bytes back"
    sub = pd.read_csv(out / submission.SUBMISSION, dtype={"filename": str}, keep_default_na=False)
    assert sorted(sub["filename"].str.encode("utf-8")) == sorted(r for r in raw if names.is_utf8(os.fsdecode(r)))
    assert len(pred.unnamed) == 7 and "caf\\xe9.jpg" in pred.unnamed
    summary = pipeline.summarize(pred.table, media.list_other_files(data), pred.records)
    assert sorted(summary["escaped_names"]) == sorted(pred.unnamed)
    assert summary["links_outside_data_dir"]["followed"] == 1 and "dangling.jpg" in summary["ignored_files"]
    broken = table[table["filename"].str.startswith("broken")]
    assert (broken["fallback"] == "fallback_prob").all()
    assert (table.loc[table["fallback"] == "", "crops"] > 0).all() and (table["fallback"] == "").sum() >= 30


def test_fallback_reasons_name_this_runs_file(tmp_path):
    """Identical bytes share one cache entry; the reason a file gets is written with its own name, not the first's."""
    prep = PrepSettings(frames=2, size=32)
    first, second = tmp_path / "first folder", tmp_path / "second"
    for folder, name in ((first, "one.jpg"), (second, "two, b\xe9.jpg")):
        folder.mkdir()
        (folder / name).write_bytes(b"garbage, not a JPEG")
    a = pipeline.preprocess(media.list_media(first), prep, tmp_path / "c", workers=0, progress=False)[0]
    b = pipeline.preprocess(media.list_media(second), prep, tmp_path / "c", workers=0, progress=False)[0]
    assert b.cached and not a.cached
    assert "one.jpg" in a.error and str(first) not in a.error
    assert "two, b\xe9.jpg" in b.error and "one.jpg" not in b.error and str(first) not in b.error


# ------------------------------------------------------------------------------------------------ cache
def _damage(path: Path, how: str, tmp_path: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        i = len(data) // 3  # inside the crops array: the zip's CRC no longer matches
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif how == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif how == "empty":
        path.write_bytes(b"")
    else:  # a valid archive whose crops do not match its record
        entry = cache.load(path.parent.parent, path.stem)
        cache.save(path.parent.parent, path.stem, cache.CropEntry(entry.crops[:1], entry.record))


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage", "empty", "mismatched"])
def test_a_damaged_cache_entry_is_reported_moved_aside_and_recomputed(tmp_path, how, capsys):
    files = _faces(tmp_path / "data", 1, 1)
    prep = PrepSettings(frames=3, size=32)
    crops_dir = tmp_path / "crops"
    first = pipeline.preprocess(files, prep, crops_dir, workers=0, progress=False)
    video = next(r for r in first if r.kind == "video")
    entry = cache.entry_path(crops_dir, video.key)
    before = cache.load(crops_dir, video.key).crops
    _damage(entry, how, tmp_path)
    second = pipeline.preprocess(files, prep, crops_dir, workers=1, progress=False)
    repaired = [r for r in second if r.cache_repair]
    assert [r.filename for r in repaired] == [video.filename] and not repaired[0].cached
    assert str(entry) in repaired[0].cache_repair and "moved to" in repaired[0].cache_repair
    assert f"{video.filename}: cache entry {entry}" in capsys.readouterr().err
    assert len(list((crops_dir / cache.QUARANTINE).glob("*.npz"))) == 1
    assert pipeline.stage_times(second)["cache_repaired"] == 1
    third = pipeline.preprocess(files, prep, crops_dir, workers=0, progress=False)
    assert all(r.cached and not r.cache_repair for r in third)
    np.testing.assert_array_equal(cache.load(crops_dir, video.key).crops, before)


def test_an_entry_that_fails_after_its_check_gives_a_fallback_with_the_reason(tmp_path):
    files = _faces(tmp_path / "data", 1, 0)
    prep = PrepSettings(frames=1, size=32)
    records = pipeline.preprocess(files, prep, tmp_path / "crops", workers=0, progress=False)
    _damage(cache.entry_path(tmp_path / "crops", records[0].key), "truncated", tmp_path)
    seen: list = []
    assert list(pipeline._views_stream(records, tmp_path / "crops", [lambda x: x], seen)) == []
    assert seen[0].key is None and "failed to load" in seen[0].error and "a rerun recomputes it" in seen[0].error
    assert pipeline._fallback(seen[0], "skip", False)[0] == "fallback_prob"


def test_files_are_created_with_the_users_umask(tmp_path):
    """mkstemp made cache entries and run.json 0600; they now get the mode of any other new file of the user."""
    old = os.umask(0o027)
    try:
        record = cache.FileRecord("a.jpg", "image", n_crops=1)
        entry = cache.save(tmp_path / "c", "ab" * 32, cache.CropEntry(np.zeros((1, 4, 4, 3), np.uint8), record))
        run = experiments.Run("infer", "umask", {"frames": 1}, root=tmp_path / "subs")
        rec = run.finish()
        for path in (entry, rec, tmp_path / "subs" / "EXPERIMENTS.md"):
            assert path.stat().st_mode & 0o777 == 0o640, path
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.rglob("*.tmp")], "no temporary file is left behind"


# ------------------------------------------------------------------------------------------------ full disk
def test_a_full_disk_stops_the_run_and_keeps_every_finished_row(tmp_path, lm, monkeypatch):
    """Simulated: the cache writer fails with ENOSPC on the third entry (the real thing: the tmpfs test below)."""
    files = _faces(tmp_path / "data", 3, 2)
    real, calls = np.savez, []

    def savez(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "savez", savez)
    out, crops_dir = tmp_path / "out", tmp_path / "crops"
    with pytest.raises(DiskFullError) as info:
        predict.predict_folder(tmp_path / "data", lm, OPTS, out, crops_dir, workers=0, progress=False)
    text = str(info.value)
    assert f"the disk holding the crop cache {crops_dir} is full (ENOSPC" in text and "after 2 of 5 files" in text
    assert re.search(r"about [\d.]+ [KMG]B more is needed there for the other 3 files", text) and info.value.needed > 0
    assert f"Their 2 rows are in {out / predict.PREDICTIONS}; no submission.csv was written. Free space" in text
    rows = pd.read_csv(out / predict.PREDICTIONS, keep_default_na=False)
    assert rows["filename"].tolist() == [f.name for f in files[:2]] and not (out / submission.SUBMISSION).exists()
    assert not list(crops_dir.rglob("*.tmp")), "the failed write leaves no temporary file"
    assert info.value.partial.table["prob_fake"].notna().all()


def test_a_full_disk_before_any_file_says_nothing_was_written(tmp_path, lm, monkeypatch):
    _faces(tmp_path / "data", 1, 0)
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EDQUOT, "Quota exceeded")))
    with pytest.raises(DiskFullError, match="EDQUOT.*after 0 of 1 files.*Nothing was written"):
        predict.predict_folder(tmp_path / "data", lm, OPTS, tmp_path / "out", tmp_path / "c", workers=0,
                               progress=False)
    assert not (tmp_path / "out").exists()


def test_preprocess_on_a_full_disk_says_what_is_cached(tmp_path, monkeypatch):
    files = _faces(tmp_path / "data", 2, 0)
    real, calls = np.savez, []
    monkeypatch.setattr(np, "savez", lambda *a, **k: real(*a, **k) if not calls.append(1) and len(calls) < 2
                        else (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(DiskFullError, match="after 1 of 2 files.*the 1 files before it are cached"):
        pipeline.preprocess(files, PrepSettings(frames=1, size=32), tmp_path / "c", workers=0, progress=False)


_TMPFS_SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from lib import models, predict
    from lib.errors import DiskFullError
    from lib.options import InferOptions

    if __name__ == "__main__":  # worker processes start by importing this file
        mount, data, model, out = map(Path, sys.argv[1:5])
        lm = models.load_model(str(model), device="cpu")
        result = {}
        try:
            predict.predict_folder(data, lm, InferOptions(frames=3, batch_size=8), out, mount / "crops", workers=1,
                                   progress=False)
        except DiskFullError as e:
            result = {"error": str(e), "needed": e.needed}
        result["tmp_left"] = [str(p) for p in (mount / "crops").rglob("*.tmp")]
        print("RESULT " + json.dumps(result))
''')


def _private_tmpfs(command: list[str], mount: Path, size: str) -> subprocess.CompletedProcess:
    """Run ``command`` with a small tmpfs at ``mount`` in a private mount namespace (unshare); skip, with the
    reason, where the platform allows none."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare command: a private tmpfs cannot be mounted (the simulated ENOSPC test covers this)")
    mount.mkdir()
    errors = []
    for flags in (["-rm"], ["-m"]):  # an unprivileged user namespace, else root's own mount namespace
        done = subprocess.run(["unshare", *flags, "sh", "-c", 'mount -t tmpfs -o size="$1" tmpfs "$2" && '
                               'echo MOUNTED >&2 && shift 2 && exec "$@"', "sh", size, str(mount), *command],
                              capture_output=True, text=True, timeout=600, env=os.environ.copy())
        if "MOUNTED" in done.stderr:
            return done
        errors.append(f"unshare {' '.join(flags)}: {done.stderr.strip()[-300:]}")
    pytest.skip("a private tmpfs cannot be mounted here (" + "; ".join(errors) + ")")


def test_a_full_tmpfs_stops_the_run_with_one_clear_message(tmp_path, tiny_vit):
    """The real thing: the crop cache on a 48 KiB tmpfs (a private mount, made with unshare)."""
    files = _faces(tmp_path / "data", 3, 3)
    script = tmp_path / "run.py"
    script.write_text(_TMPFS_SCRIPT)
    mount, out = tmp_path / "mnt", tmp_path / "out"
    done = _private_tmpfs([sys.executable, str(script), str(mount), str(tmp_path / "data"), str(tiny_vit), str(out)],
                          mount, "48k")
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert "error" in result, done.stdout + done.stderr
    text = result["error"]
    assert f"the disk holding the crop cache {mount / 'crops'} is full (ENOSPC" in text
    assert re.search(r"about [\d.]+ [KMG]B more is needed there", text) and text.endswith(pipeline.DISK_ADVICE)
    k = int(text.split("after ")[1].split(" of ")[0])
    assert 0 < k < len(files) and result["tmp_left"] == []
    rows = pd.read_csv(out / predict.PREDICTIONS, keep_default_na=False)
    assert rows["filename"].tolist() == [f.name for f in files[:k]] and not (out / submission.SUBMISSION).exists()


@pytest.mark.slow
def test_a_full_tmpfs_in_infer_ipynb_shows_the_message_alone(tmp_path, tiny_vit, monkeypatch):
    """infer.ipynb under papermill with its crop cache on a 48 KiB tmpfs: the notebook's error output is the kit's
    paragraph alone (no chained tracebacks); the traceback is in the run folder's run.log, run.json says failed."""
    from lib.paths import NOTEBOOKS

    _faces(tmp_path / "data", 3, 3)
    monkeypatch.setenv("KIT_WORKDIR", str(tmp_path / "kit"))
    mount, executed = tmp_path / "mnt", tmp_path / "executed.ipynb"
    args = {"data_dir": tmp_path / "data", "model": tiny_vit, "cache_dir": mount / "crops", "workers": 1, "frames": 3,
            "exp": "full"}
    done = _private_tmpfs([sys.executable, "-m", "papermill", str(NOTEBOOKS / "infer.ipynb"), str(executed),
                           "--no-progress-bar", *[x for k, v in args.items() for x in ("-p", k, str(v))]],
                          mount, "48k")
    assert done.returncode != 0 and "DiskFullError" in done.stderr, done.stderr[-3000:]
    cells = json.loads(executed.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "DiskFullError" and len(errors[0]["traceback"]) == 1
    shown = errors[0]["traceback"][0]
    run = tmp_path / "kit" / "submissions" / "full"
    assert shown.startswith(f"DiskFullError: the disk holding the crop cache {mount / 'crops'} is full (ENOSPC")
    assert shown.endswith(f"Its traceback is in {run / experiments.RUN_LOG}.") and "Traceback" not in shown
    assert len(shown.splitlines()) == 3 and pipeline.DISK_ADVICE in shown  # one paragraph, and where the rest went
    log = (run / experiments.RUN_LOG).read_text()
    assert "Traceback (most recent call last)" in log and "No space left on device" in log
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("DiskFullError") and record["log"] == "run.log"


# ------------------------------------------------------------------------------------------------ checks at the start
def _infer_params(data: Path, model: Path, **over) -> dict:
    p = dict(parameters.INFER.defaults, data_dir=str(data), model=str(model), frames=2, workers=0, labels="",
             device="cpu", exp="t1")
    return {**p, **over}


def test_labels_with_no_name_in_common_with_data_dir_stop_the_run_at_the_start(tmp_path, tiny_vit):
    _faces(tmp_path / "data", 2, 0)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\nother1.jpg,0\nother2.jpg,1\n")
    with pytest.raises(ParameterError, match=r"labels=.*none of its 2 filenames .*'other1.jpg'.* 2 media files in"):
        parameters.INFER.check(_infer_params(tmp_path / "data", tiny_vit, labels=str(labels)))
    labels.write_bytes(b"filename,label\ncaf\xe9.jpg,0\n")
    with pytest.raises(ParameterError, match="labels=.*cannot be read .*can.t decode.*a UTF-8 CSV"):
        parameters.INFER.check(_infer_params(tmp_path / "data", tiny_vit, labels=str(labels)))
    labels.write_text('filename,label\nimg0.jpg,0\n"odd, missing.jpg",1\n')
    assert parameters.INFER.check(_infer_params(tmp_path / "data", tiny_vit, labels=str(labels)))["labels"] == labels


def test_truncated_or_mismatched_weights_are_a_parameter_error_naming_the_model_folder(tmp_path, tiny_vit):
    from conftest import make_tiny_vit

    truncated = Path(shutil.copytree(tiny_vit, tmp_path / "truncated"))
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ParameterError, match=f"model=.*{truncated} cannot be loaded: its weights file cannot be read"):
        models.load_model(str(truncated), device="cpu")
    mismatched = Path(shutil.copytree(tiny_vit, tmp_path / "mismatched"))
    bigger = make_tiny_vit(tmp_path / "bigger", {0: "Realism", 1: "Deepfake"}, size=64)
    shutil.copy(bigger / "model.safetensors", mismatched / "model.safetensors")
    with pytest.raises(ParameterError, match=f"{mismatched} cannot be loaded: the sizes of its weights do not match"):
        models.load_model(str(mismatched), device="cpu")
    assert issubclass(ModelLoadError, ParameterError)


# ------------------------------------------------------------------------------------------------ links
def test_links_that_leave_data_dir_are_followed_or_refused_and_counted(tmp_path, lm):
    data = tmp_path / "data"
    _faces(data, 1, 0)
    Image.fromarray(mf.face_image((300, 300))).save(tmp_path / "elsewhere.jpg")
    (data / "out.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    (data / "in.jpg").symlink_to("img0.jpg")
    assert media.link_outside(data / "out.jpg") == tmp_path / "elsewhere.jpg"
    assert media.link_outside(data / "in.jpg") is None and media.link_outside(data / "img0.jpg") is None
    prep = PrepSettings(frames=1, size=lm.size)
    for follow in (False, True):
        opts = InferOptions(frames=1, follow_links=follow)
        pred = predict.predict_folder(data, lm, opts, None, tmp_path / f"c{follow}", workers=0, progress=False)
        row = pred.table.set_index("filename").loc["out.jpg"]
        counts = pipeline.summarize(pred.table, (), pred.records)["links_outside_data_dir"]
        assert counts["followed" if follow else "refused"] == 1 and counts["refused" if follow else "followed"] == 0
        entry = cache.entry_path(tmp_path / f"c{follow}", cache.entry_key(tmp_path / "elsewhere.jpg", prep))
        if follow:
            assert row["fallback"] == "" and "outside the data folder: followed" in row["note"] and entry.exists()
        else:
            assert row["fallback"] == "fallback_prob" and "follow_links=False" in row["reason"]
            assert not entry.exists(), "a refused link is never read"
        assert pred.table.set_index("filename").loc["in.jpg", "fallback"] == ""
    with pytest.raises(ParameterError, match="follow_links='no'"):
        InferOptions(follow_links="no")


# ------------------------------------------------------------------------------------------------ run records
def test_a_run_that_fails_before_writing_leaves_no_folder_and_one_that_wrote_leaves_a_record(tmp_path):
    root = tmp_path / "subs"
    early = experiments.Run("infer", "early", {"frames": 1}, root=root)
    assert early.fail(ParameterError("model", "x", why="cannot be loaded")) is None
    assert not (root / "early").exists()
    late = experiments.Run("infer", "late", {"frames": 1}, root=root)
    (late.dir / "predictions.csv").write_text("filename\n")
    try:
        raise DiskFullError("/cache", 10, "ENOSPC", "the disk holding the crop cache /cache is full")
    except DiskFullError as e:
        path = late.fail(e)
    record = json.loads(path.read_text())
    assert record["status"] == "failed" and record["error"].startswith("DiskFullError: the disk holding")
    assert "test_robust.py" in record["error_at"]
    assert "| late |" in (root / "EXPERIMENTS.md").read_text() and "infer (failed)" in (root / "EXPERIMENTS.md").read_text()


def test_a_failure_does_not_touch_an_earlier_runs_folder(tmp_path):
    root = tmp_path / "subs"
    old = experiments.Run("infer", "again", {"frames": 1}, root=root)
    (old.dir / "submission.csv").write_text("filename,label\n")
    old.finish()
    for f in old.dir.iterdir():
        os.utime(f, (1, 1))
    rerun = experiments.Run("infer", "again", {"frames": 2}, root=root)
    assert rerun.fail(RuntimeError("model failed")) is None
    assert json.loads((root / "again" / "run.json").read_text())["status"] == "complete"


def test_record_failures_records_an_exception_raised_in_a_later_cell(tmp_path):
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        run = experiments.Run("infer", "cells", {"frames": 1}, root=tmp_path)
        run.record_failures()
        shell.user_ns["run_dir"] = run.dir
        shell.run_cell("(run_dir / 'predictions.csv').write_text('x')\nraise RuntimeError('boom in a cell')")
        record = json.loads((tmp_path / "cells" / "run.json").read_text())
        assert record["status"] == "failed" and record["error"] == "RuntimeError: boom in a cell"
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()


def test_a_full_disk_in_a_cell_shows_its_message_alone_and_logs_the_traceback(tmp_path, capsys):
    """The kit's one paragraph, not ~140 lines of chained tracebacks; the traceback goes to the run's run.log."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        run = experiments.Run("infer", "full", {"frames": 1}, root=tmp_path)
        run.record_failures()
        shell.user_ns.update(run_dir=run.dir, DiskFullError=DiskFullError)
        capsys.readouterr()
        shell.run_cell(textwrap.dedent('''
            (run_dir / "predictions.csv").write_text("x")
            def save():
                raise OSError(28, "No space left on device")
            try:
                save()
            except OSError as e:
                raise DiskFullError("/cache", 10, "ENOSPC", "the disk holding the crop cache /cache is full", "Free space.") from e
        '''))
        shown = capsys.readouterr().out.strip()
        log = tmp_path / "full" / experiments.RUN_LOG
        assert shown == f"DiskFullError: the disk holding the crop cache /cache is full Free space.\n\nIts traceback is in {log}"\
            + "."
        text = log.read_text()
        assert "Traceback" in text and "OSError: [Errno 28] No space left on device" in text and "in save" in text
        record = json.loads((tmp_path / "full" / "run.json").read_text())
        assert record["status"] == "failed" and record["log"] == experiments.RUN_LOG
        shell.run_cell("raise RuntimeError('any other error')")
        assert "Traceback" in capsys.readouterr().out  # shown in full, as before
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()
