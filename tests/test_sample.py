"""The generated sample set: layout, labels, readable media, determinism, fakes differ only around the face."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest

from lib.corpora import sample


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sample.make_sample(tmp_path_factory.mktemp("sample"), seed=7)


@pytest.fixture(scope="module")
def detector() -> object:
    return dlib.get_frontal_face_detector()


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / sample.LABELS_CSV).open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == sample.COLUMNS
        return list(reader)


def _frames(path: Path) -> list[np.ndarray]:
    """All frames of a video, or the one image, as RGB."""
    if path.suffix != ".mp4":
        return [cv2.imread(str(path))[..., ::-1]]
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    cap.release()
    return frames


def _faces(detector: object, rgb: np.ndarray) -> list[dlib.rectangle]:
    """dlib HOG faces on the frame scaled to 640 wide, in frame pixels."""
    scale = 640 / rgb.shape[1]
    small = np.ascontiguousarray(cv2.resize(rgb, (640, round(rgb.shape[0] * scale))))
    return [dlib.rectangle(*(round(v / scale) for v in (r.left(), r.top(), r.right(), r.bottom())))
            for r in detector(small, 0)]


def test_layout_and_labels(folders: dict[str, Path]) -> None:
    assert set(folders) == {"fit", "test"}
    for split, folder in folders.items():
        rows = _rows(folder)
        names = {r["filename"] for r in rows}
        assert names == {p.name for p in folder.iterdir() if p.name != sample.LABELS_CSV}
        assert {r["label"] for r in rows} == {"0", "1"}
        assert {Path(n).suffix for n in names} == {".jpg", ".png", ".mp4"}
        assert {r["source"] for r in rows} == {"sample-photo", "sample-video"}
        reals = {r["filename"] for r in rows if r["label"] == "0"}
        for r in rows:
            assert r["origin"] in reals
            assert (r["origin"] == r["filename"]) == (r["label"] == "0")
            assert Path(r["origin"]).suffix == Path(r["filename"]).suffix
    assert len(_rows(folders["fit"])) >= 20 and len(_rows(folders["test"])) >= 16


def test_videos_readable_with_expected_frames(folders: dict[str, Path]) -> None:
    for folder in folders.values():
        for row in _rows(folder):
            path = folder / row["filename"]
            if path.suffix != ".mp4":
                continue
            cap = cv2.VideoCapture(str(path))
            assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(sample.FPS)
            cap.release()
            frames = _frames(path)
            assert len(frames) == sample.VIDEO_FRAMES
            assert 280 <= frames[0].shape[1] <= 480


def test_one_face_found_in_each_file(folders: dict[str, Path], detector: object) -> None:
    for folder in folders.values():
        for row in _rows(folder):
            frames = _frames(folder / row["filename"])
            for frame in (frames[0], frames[len(frames) // 2], frames[-1]):
                assert len(_faces(detector, frame)) == 1, row["filename"]


def test_deterministic(folders: dict[str, Path], tmp_path: Path) -> None:
    bases = {b.name: b for b in sample._load_bases()}
    items = sample._plan(7, list(bases))
    assert sorted(i.filename for i in items if i.split == "fit") == sorted(r["filename"] for r in _rows(folders["fit"]))
    item = next(i for i in items if i.kind == "jpg" and i.label == 1)
    again = sample._render_item(item, bases, tmp_path)
    assert again.read_bytes() == (folders[item.split] / item.filename).read_bytes()


def _share_near_face(detector: object, real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """Mean |real - fake| near the face (box grown 1.6x) and the share of the total difference found there."""
    diff = np.abs(real.astype(np.float32) - fake.astype(np.float32)).sum(-1)
    (box,) = _faces(detector, real)
    cx, cy, half = box.center().x, box.center().y, 0.8 * max(box.width(), box.height())
    near = np.zeros(diff.shape, bool)
    near[max(0, int(cy - half)) : int(cy + half), max(0, int(cx - half)) : int(cx + half)] = True
    return float(diff[near].mean()), float(diff[near].sum() / diff.sum())


def test_fakes_differ_from_reals_inside_the_face(folders: dict[str, Path], detector: object) -> None:
    for folder in folders.values():
        for row in _rows(folder):
            if row["label"] != "1":
                continue
            real, fake = _frames(folder / row["origin"]), _frames(folder / row["filename"])
            mean, share = _share_near_face(detector, real[0], fake[0])
            assert mean > 3.0 and share > 0.95, (row["filename"], mean, share)
            if len(real) > 1:  # inter frames: the codec's motion compensation spreads some difference around
                mean, share = _share_near_face(detector, real[len(real) // 2], fake[len(real) // 2])
                assert mean > 3.0 and share > 0.6, (row["filename"], mean, share)


def test_existing_sample_is_not_regenerated(folders: dict[str, Path]) -> None:
    labels = folders["test"] / sample.LABELS_CSV
    before = labels.stat().st_mtime_ns
    again = sample.make_sample(folders["test"].parent, seed=7)
    assert again == folders
    assert labels.stat().st_mtime_ns == before
