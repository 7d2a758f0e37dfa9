"""bench/: the baseline implementation and the kit agree on labels; the benchmark's JSON has what its report needs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import pytest
from media_factory import face_image, face_video

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import baseline_impl  # noqa: E402
import infer_speed  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short face videos and a face photo."""
    folder = tmp_path_factory.mktemp("bench-corpus")
    face_video(folder / "moving.mp4", n_frames=12)
    face_video(folder / "wide.mp4", n_frames=12, size=(400, 240))
    cv2.imwrite(str(folder / "photo.jpg"), cv2.cvtColor(face_image((240, 240)), cv2.COLOR_RGB2BGR))
    return folder


def _child(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    infer_speed.run_child(infer_speed.parse(argv))
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(infer_speed.MARK)][-1]
    return json.loads(line[len(infer_speed.MARK):])


def test_baseline_follows_processor_size(corpus: Path, tiny_vit: Path) -> None:
    rows, times = baseline_impl.run(sorted(corpus.iterdir()), str(tiny_vit), n_frames=4, tta="flip")
    assert [r["crops"] for r in rows] == [4, 1, 4]  # moving.mp4, photo.jpg, wide.mp4: a face in every frame
    assert baseline_impl.load(str(tiny_vit))[2] == 32  # crops are cut at the processor's size, not 224
    assert {"load_s", "decode_s", "detect_crop_s", "processor_s", "model_s"} <= set(times)


def test_json_fields_and_agreement(corpus: Path, tiny_vit: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--corpus", str(corpus), "--model", str(tiny_vit), "--frames", "4", "--tta", "flip",
              "--workers", "0", "--cache-dir", str(tmp_path / "cache")]
    runs = {m: [_child(capsys, ["--mode", m, *common])] for m in "abc"}
    for m, (r,) in runs.items():
        assert {"rows", "stages", "load_s", "run_s", "total_s", "rss_self_mb", "rss_children_mb", "crops_model",
                "files"} <= set(r), m
        assert r["files"] == 3 and len(r["rows"]) == 3
        r["wall_s"] = r["total_s"]  # added by the parent process in a real run
    assert runs["b"][0]["crops_model"] == runs["a"][0]["crops_model"] == 2 * 9
    assert runs["c"][0]["stages"]["cache_hits"] == 3 and runs["c"][0]["stages"]["detect_s"] == 0.0
    res = infer_speed.summarize(runs)
    assert {"a_over_b_wall", "a_over_b_run", "a_prep_over_b_prep", "c_decode_detect_pct_of_b_prep",
            "label_agreement", "max_abs_dprob"} <= set(res["ratios"])
    assert res["ratios"]["label_agreement"] == 1.0
    assert res["ratios"]["max_abs_dprob"] < 0.05
    args = infer_speed.parse(common)
    args.corpus_dir = args.corpus
    infer_speed.print_summary({**res, "config": infer_speed._config(args, [corpus] * 3)})
    assert "label agreement (a) vs (b): 100.0%" in capsys.readouterr().out

