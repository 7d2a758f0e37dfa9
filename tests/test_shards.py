"""Shards without a scheduler: deterministic disjoint shares, a partial submission checked against its share, the
merge of the shards' runs equal to the unsharded submission; the cluster and shard parameters; the bundle never
reaches Dask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import media_factory as mf
from lib import checks, models, parameters, predict, shards, submission
from lib import bundle
from lib.errors import ParameterError
from lib.paths import ROOT
from lib.options import InferOptions


def test_shards_are_disjoint_cover_everything_and_keep_name_order(tmp_path: Path) -> None:
    files = [tmp_path / f"{c}.jpg" for c in "gfedcba"]
    parts = [shards.select(files, f"{i}/3") for i in (1, 2, 3)]
    assert [[p.name for p in part] for part in parts] == [["a.jpg", "d.jpg", "g.jpg"], ["b.jpg", "e.jpg"],
                                                          ["c.jpg", "f.jpg"]]
    assert shards.select(files, "") == files and shards.select(files, "1/1") == sorted(files)
    assert shards.select(list(reversed(files)), "2/3") == parts[1]  # the listing order does not matter


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1/0", "2", "a/b", "1/2/3", " 1/2", 1, None])
def test_bad_shards_name_the_parameter(bad: object) -> None:
    with pytest.raises(ParameterError, match=r"shard=.*i/n"):
        checks.shard(bad)


@pytest.mark.parametrize("good", ["", "local:1", "local:2", "tcp://10.0.0.5:8786", "tcp://scheduler-host:8786"])
def test_cluster_forms(good: str) -> None:
    assert checks.cluster(good) == good


@pytest.mark.parametrize("bad", ["local", "local:0", "local:-1", "dask", "tcp://host", "http://h:8786", 2, None])
def test_bad_clusters_name_the_parameter(bad: object) -> None:
    with pytest.raises(ParameterError, match=r"cluster=.*local:N.*tcp://host:port"):
        checks.cluster(bad)


def test_the_server_bundle_has_neither_cluster_nor_shard() -> None:
    from lib.training import TRAIN

    assert {"cluster", "shard"} <= set(parameters.INFER.keys) & set(parameters.PREPROCESS.keys)
    assert not {"cluster", "shard"} & set(parameters.TASK.keys)
    assert "cluster" in TRAIN.keys and "box_reuse" in TRAIN.keys
    closure = bundle.lib_closure()
    assert "cluster" not in closure and "boxreuse" not in closure and "shards" in closure
    sources = {n: (ROOT / "lib" / f"{n}.py").read_text() for n in closure}
    assert not [n for n, text in sources.items() if "dask" in text or "distributed" in text]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("shard-data")
    for i in range(3):
        mf.face_video(d / f"clip{i}.mp4", n_frames=6 + i, size=(160, 120))
    for i in range(3):
        Image.fromarray(mf.face_image((96 + 16 * i, 96))).save(d / f"face{i}.jpg")
    (d / "broken.mp4").write_bytes(b"")
    return d


def _infer_run(folder: Path, lm: models.LoadedModel, out: Path, cache: Path, shard: str) -> Path:
    """What infer.ipynb writes for a shard: predictions.csv, a checked submission.csv, run.json with its params."""
    opts = InferOptions(frames=3, detect_width=160, batch_size=4)
    predict.predict_folder(folder, lm, opts, out, cache, workers=0, progress=False, shard=shard)
    (out / "run.json").write_text(json.dumps({"params": {"data_dir": str(folder), "shard": shard}}))
    return out


def test_shard_submissions_are_partial_and_merge_into_the_unsharded_one(folder: Path, tiny_vit: Path,
                                                                        tmp_path: Path) -> None:
    lm = models.load_model(str(tiny_vit), device="cpu")
    whole = _infer_run(folder, lm, tmp_path / "whole", tmp_path / "c0", "")
    runs = [_infer_run(folder, lm, tmp_path / f"s{i}", tmp_path / f"c{i}", f"{i}/3") for i in (1, 2, 3)]
    assert sum(len((r / "submission.csv").read_text().splitlines()) - 1 for r in runs) == 7
    with pytest.raises(ValueError, match="4 media files have no row"):  # a shard is partial (SubmissionError)
        submission.check_submission(runs[0] / "submission.csv", folder)
    assert submission.submission_problems(runs[1] / "submission.csv", folder, shard="1/3") == [
        "3 media files of shard 1/3 have no row: ['broken.mp4', 'clip2.mp4', 'face2.jpg']",
        f"2 rows name no media file of shard 1/3 in {folder}: ['clip0.mp4', 'face0.jpg']"]
    assert submission.submission_problems(runs[1] / "submission.csv", folder, shard="2/3") == []
    merged = submission.merge(tmp_path / "merged", [runs[2], runs[0], runs[1]])
    assert merged.read_bytes() == (whole / "submission.csv").read_bytes()
    import pandas as pd

    a, b = pd.read_csv(tmp_path / "merged" / "predictions.csv"), pd.read_csv(whole / "predictions.csv")
    assert a["filename"].tolist() == b["filename"].tolist()
    np.testing.assert_allclose(a["prob_fake"], b["prob_fake"], atol=1e-5)
    assert a["fallback"].fillna("").tolist() == b["fallback"].fillna("").tolist()
    assert json.loads((tmp_path / "merged" / "merge.json").read_text())["files"] == 7
    with pytest.raises(ParameterError, match=r"missing \[2\], given twice \[1\]"):
        submission.merge(tmp_path / "m2", [runs[0], runs[0], runs[2]])
    with pytest.raises(ParameterError, match="not made with a shard"):
        submission.merge(tmp_path / "m3", [whole, runs[0]])
    with pytest.raises(SystemExit):
        submission.main(["merge", str(tmp_path / "m4"), str(runs[0])])
    assert submission.main(["merge", str(tmp_path / "m5"), *map(str, runs), "--data", str(folder)]).read_bytes() == \
        merged.read_bytes()
