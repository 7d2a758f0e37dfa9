"""Box reuse: a fake keeping its original's geometry is cropped with the original's boxes (the same crops as
detection gives), checked on one key frame; another geometry, a moved face or no original detects as usual."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib import cache, pipeline

from lib.scale import boxreuse
from lib.options import PrepSettings
from lib.training.data import file_table, load_crops
from media_factory import face_frames, write_video

PREP = PrepSettings(frames=4, detect_width=320, size=32)


def _fake(frames: list[np.ndarray]) -> list[np.ndarray]:
    """A 'fake' that keeps the geometry: the same face and pose, a patch far from the face recoloured."""
    out = []
    for f in frames:
        f = f.copy()
        f[-24:, -24:] = (f[-24:, -24:] // 2 + 100).astype(np.uint8)
        out.append(f)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset: original o.mp4; fakes same.mp4 (its geometry), small.mp4 (other size), short.mp4 (fewer frames),
    moved.mp4 (upside down: the check finds no face), orphan.mp4 (its origin is no labelled real); a photo pair too."""
    root = tmp_path_factory.mktemp("reuse")
    media = root / "media"
    media.mkdir()
    frames = face_frames(12, (240, 180))
    write_video(media / "o.mp4", frames)
    write_video(media / "same.mp4", _fake(frames))
    write_video(media / "small.mp4", [cv2.resize(f, (200, 150)) for f in _fake(frames)])
    write_video(media / "short.mp4", _fake(frames)[:9])
    write_video(media / "moved.mp4", [np.ascontiguousarray(f[::-1]) for f in frames])  # upside down: no face
    write_video(media / "orphan.mp4", _fake(frames)[::-1])
    photo = frames[0]
    cv2.imwrite(str(media / "p.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(media / "p_fake.png"), cv2.cvtColor(_fake([photo])[0], cv2.COLOR_RGB2BGR))
    rows = [("o.mp4", 0, "o"), ("same.mp4", 1, "o"), ("small.mp4", 1, "o"), ("short.mp4", 1, "o"),
            ("moved.mp4", 1, "o"), ("orphan.mp4", 1, "gone"), ("p.png", 0, "p"), ("p_fake.png", 1, "p")]
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "label", "source", "kind", "origin"])
        w.writerows([(n, y, "mini", "faceswap" if y else "real-video", o) for n, y, o in rows])
    return root


def _by_name(records: list) -> dict:
    return {r.filename: r for r in records}


def test_originals_pairs_fakes_with_their_one_real(corpus: Path) -> None:
    table = file_table(str(corpus))
    pairs, missing = boxreuse.originals(table)
    names = table["filename"].tolist()
    assert {names[f]: names[o] for f, o in pairs.items()} == {
        "same.mp4": "o.mp4", "small.mp4": "o.mp4", "short.mp4": "o.mp4", "moved.mp4": "o.mp4", "p_fake.png": "p.png"}
    assert {names[f]: why for f, why in missing.items()} == {"orphan.mp4": boxreuse.NO_ORIGINAL}


def test_reuse_gives_the_crops_of_detection_and_falls_back_when_it_must(corpus: Path, tmp_path: Path) -> None:
    table = file_table(str(corpus))
    reused = _by_name(boxreuse.preprocess(table, PREP, tmp_path / "a", workers=0, progress=False))
    detected = _by_name(pipeline.preprocess([Path(p) for p in table["path"]], PREP, tmp_path / "b", workers=0,
                                            progress=False))
    for name in ("same.mp4", "p_fake.png"):  # the geometry kept: boxes reused, checked, crops as detection's
        r = reused[name]
        assert r.boxes_from == name.replace("same", "o").replace("_fake", "") and r.box_reuse.startswith("reused: IoU")
        assert r.detections == 1 < detected[name].detections or name.endswith(".png")
        assert r.boxes == detected[name].boxes and r.key != detected[name].key
        np.testing.assert_array_equal(cache.load_crops(tmp_path / "a", r), cache.load_crops(tmp_path / "b",
                                                                                            detected[name]))
    why = {n: reused[n].box_reuse for n in ("small.mp4", "short.mp4", "moved.mp4", "orphan.mp4")}
    assert why["small.mp4"].startswith("detected: frame size differs ([150, 200], the original [180, 240])")
    assert why["short.mp4"].startswith("detected: frame count differs")
    assert why["moved.mp4"].startswith("detected: check failed: ")
    assert why["orphan.mp4"] == f"detected: {boxreuse.NO_ORIGINAL}"
    for name in why:  # detected as usual: the entry a run without reuse makes, and the same crops
        assert not reused[name].boxes_from and reused[name].key == detected[name].key
        assert reused[name].n_crops == detected[name].n_crops == (0 if name == "moved.mp4" else 4)
    summary = boxreuse.summary(list(reused.values()))
    assert (summary["fakes"], summary["reused"], summary["detected"]) == (6, 2, 4)
    assert summary["detected_because"] == {"frame size differs": 1, "frame count differs": 1, "check failed": 1,
                                           boxreuse.NO_ORIGINAL: 1}


def test_reused_entries_are_cached_under_their_own_key(corpus: Path, tmp_path: Path) -> None:
    table = file_table(str(corpus))
    first = _by_name(boxreuse.preprocess(table, PREP, tmp_path, workers=0, progress=False))
    again = _by_name(boxreuse.preprocess(table, PREP, tmp_path, workers=0, progress=False))
    assert again["same.mp4"].cached and again["same.mp4"].key == first["same.mp4"].key
    assert again["same.mp4"].box_reuse == first["same.mp4"].box_reuse and again["same.mp4"].boxes_from == "o.mp4"
    assert boxreuse.summary(list(again.values()))["detector_calls"] == 0
    plain = pipeline.preprocess([corpus / "media" / "same.mp4"], PREP, tmp_path, workers=0, progress=False)[0]
    assert not plain.cached and plain.key != first["same.mp4"].key  # a run without reuse never reads reused crops


def test_an_original_without_a_face_means_detection(tmp_path: Path) -> None:
    media = tmp_path / "d" / "media"
    media.mkdir(parents=True)
    frames = face_frames(6, (240, 180))
    blank = [np.full_like(f, 90) for f in frames]
    write_video(media / "o.mp4", blank)
    write_video(media / "f.mp4", frames)
    (tmp_path / "d" / "labels.csv").write_text("filename,label,origin\no.mp4,0,o.mp4\nf.mp4,1,o.mp4\n")
    records = _by_name(boxreuse.preprocess(file_table(str(tmp_path / "d")), PREP, tmp_path / "c", workers=0,
                                           progress=False))
    assert records["f.mp4"].box_reuse == "detected: the original has no face box" and records["f.mp4"].n_crops > 0


def test_load_crops_with_box_reuse_counts_it(corpus: Path, tmp_path: Path) -> None:
    crops, dropped = load_crops([str(corpus)], PREP, tmp_path / "r", workers=0, box_reuse=True)
    plain, _ = load_crops([str(corpus)], PREP, tmp_path / "p", workers=0)
    np.testing.assert_array_equal(crops.crops, plain.crops)  # every fake here crops as detection would
    assert crops.box_reuse["reused"] == 2 and plain.box_reuse == {} and list(dropped["filename"]) == ["moved.mp4"]


@pytest.mark.parametrize("over, name", [({"box_reuse": "yes"}, "box_reuse"), ({"cluster": "local:0"}, "cluster")])
def test_train_parameters_box_reuse_and_cluster_are_checked(over: dict, name: str, tmp_path: Path) -> None:
    from lib.errors import ParameterError
    from lib.training import TRAIN
    from test_train import _params

    (tmp_path / "labels.csv").write_text("filename,label\na.jpg,0\n")
    assert TRAIN.check(_params(data=[str(tmp_path)]))["cluster"] == ""
    with pytest.raises(ParameterError) as e:
        TRAIN.check(_params(data=[str(tmp_path)], **over))
    assert e.value.name == name
