"""The generated corpus of odd inputs through infer.ipynb (papermill): one row per file and a run record for every run
that got past its start; runs stopped at the start (labels, weights) leave no folder and name what is wrong."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest

import odd_corpus
from lib import cache, names
from lib.paths import NOTEBOOKS

LABELLED = {"carriage\rreturn.jpg": 1, "comma, name.jpg": 0, "caf\\xe9.jpg": 1, "back\\slash.jpg": 0, "NA.jpg": 1}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[bytes], Path]:
    root = tmp_path_factory.mktemp("odd")
    data = root / "data"
    raw = odd_corpus.make_odd_corpus(data, root / "outside")
    labels = root / "labels.csv"
    labels.write_text("filename,label\n" + "".join(f"{names.csv_field(n)},{y}\n" for n, y in LABELLED.items()),
                      encoding="utf-8", newline="")
    return data, raw, labels


def _run(workdir: Path, exp: str, **params) -> None:
    pm.execute_notebook(str(NOTEBOOKS / "infer.ipynb"), str(workdir / f"{exp}.ipynb"), progress_bar=False,
                        parameters={"frames": 3, "workers": 1, "batch_size": 8, "exp": exp, **params})


def _rows(workdir: Path, exp: str, raw: list[bytes]) -> dict:
    """Checks every run that finished: one predictions.csv row per file (names give their bytes back), one
    submission row per name UTF-8 can carry, a complete run record; returns the record."""
    out = workdir / "submissions" / exp
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False, encoding="utf-8")
    back = sorted(names.unescape(n) if e else n.encode() for n, e in zip(table["filename"], table["name_escaped"]))
    assert back == raw
    sub = pd.read_csv(out / "submission.csv", dtype={"filename": str}, keep_default_na=False, encoding="utf-8")
    assert sorted(sub["filename"].str.encode("utf-8")) == sorted(r for r in raw if names.is_utf8(os.fsdecode(r)))
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["counts"]["files"] == len(raw)
    assert len(record["counts"]["escaped_names"]) == 7
    return record


@pytest.mark.slow
def test_odd_corpus_through_infer_notebook(workdir, tiny_vit, corpus, tmp_path):
    data, raw, labels = corpus
    common = {"data_dir": str(data), "model": str(tiny_vit), "cache_dir": str(workdir / "crops")}
    _run(workdir, "odd-a", labels=str(labels), **common)
    first = _rows(workdir, "odd-a", raw)
    assert first["metrics"]["n"] == len(LABELLED) and first["counts"]["links_outside_data_dir"]["followed"] == 1
    broken = {k: v for k, v in first["counts"]["fallback_reasons"].items() if "cannot identify image file" in k}
    assert any("broken\\xe9.jpg" in k for k in broken) and any("broken, copy.jpg" in k for k in broken)

    entries = sorted((workdir / "crops").rglob("*.npz"))
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # truncated
    data_ = entries[1].read_bytes()
    entries[1].write_bytes(data_[:len(data_) // 2] + bytes([data_[len(data_) // 2] ^ 0xFF]) + data_[len(data_) // 2 + 1:])
    _run(workdir, "odd-b", follow_links=False, **common)
    second = _rows(workdir, "odd-b", raw)
    assert second["timings"]["cache_repaired"] >= 2 and len(second["counts"]["cache_repaired"]) >= 2
    assert all("failed to load" in r and "moved to" in r for r in second["counts"]["cache_repaired"])
    assert second["counts"]["links_outside_data_dir"]["refused"] == 1
    assert len(list((workdir / "crops" / cache.QUARANTINE).glob("*.npz"))) == 2

    (tmp_path / "other.csv").write_text("filename,label\nnot-here.jpg,0\n")
    with pytest.raises(pm.PapermillExecutionError, match="ParameterError.*labels=.*none of its 1 filenames"):
        _run(workdir, "odd-c", labels=str(tmp_path / "other.csv"), **common)
    truncated = Path(shutil.copytree(tiny_vit, tmp_path / "truncated-model"))
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(pm.PapermillExecutionError, match=f"ParameterError.*{truncated} cannot be loaded"):
        _run(workdir, "odd-d", **{**common, "model": str(truncated)})
    for exp in ("odd-c", "odd-d"):
        assert not (workdir / "submissions" / exp).exists(), "a run stopped at its start leaves no folder"
    table = (workdir / "EXPERIMENTS.md").read_text()
    assert "| odd-a |" in table and "| odd-b |" in table and "odd-c" not in table


@pytest.mark.slow
def test_a_full_disk_in_infer_notebook_fails_into_a_recorded_run(workdir, tiny_vit, tmp_path):
    """The crop cache on a 32 KiB tmpfs in a private mount namespace (unshare); skipped where none can be made."""
    from test_robust import _faces, _private_tmpfs

    files = _faces(tmp_path / "data", 3, 3)  # six different files: six cache entries of about 8 KB
    mount = tmp_path / "mnt"
    cmd = [sys.executable, "-m", "papermill", "--log-level", "WARNING", str(NOTEBOOKS / "infer.ipynb"),
           str(tmp_path / "full.ipynb"), "-p", "data_dir", str(tmp_path / "data"), "-p", "model", str(tiny_vit),
           "-p", "frames", "3", "-p", "workers", "1", "-p", "cache_dir", str(mount / "crops"), "-p", "exp", "odd-full"]
    done = _private_tmpfs(cmd, mount, "32k")
    assert done.returncode != 0 and "DiskFullError" in done.stderr, done.stderr[-2000:]
    out = workdir / "submissions" / "odd-full"
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("DiskFullError: the disk holding the crop cache")
    k = int(record["error"].split("after ")[1].split(" of ")[0])
    assert 0 < k < len(files) and f"Their {k} rows are in" in record["error"]
    assert len(pd.read_csv(out / "predictions.csv", keep_default_na=False)) == k
    assert not (out / "submission.csv").exists()
    assert "infer (failed)" in (workdir / "EXPERIMENTS.md").read_text()
