"""Tests for lib.frames: index sampling, walking video reads, lying containers, rotation, image modes, bad media."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from PIL import Image

from lib import frames
from lib.errors import MediaError, ParameterError
from lib.media import list_media
from tests import media_factory as mf

_REAL_CAPTURE = cv2.VideoCapture
_SEEK_PROPS = {cv2.CAP_PROP_POS_FRAMES, cv2.CAP_PROP_POS_MSEC, cv2.CAP_PROP_POS_AVI_RATIO}


class _SpyCapture:
    """A real VideoCapture that counts calls and can lie about its header, refuse auto-rotation or fail to decode."""

    def __init__(self, path: str, count: float | None = None, auto_rotate: bool = True,
                 bad_frames: tuple[int, ...] = (), fail_grab: bool = False) -> None:
        self.cap = _REAL_CAPTURE(path)
        self.count, self.auto_rotate, self.bad_frames, self.fail_grab = count, auto_rotate, bad_frames, fail_grab
        self.calls: Counter = Counter()
        self.position = -1

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT and self.count is not None:
            return float(self.count)
        return self.cap.get(prop)

    def set(self, prop: int, value: float) -> bool:
        self.calls["seek" if prop in _SEEK_PROPS else f"set {prop}"] += 1
        if prop == cv2.CAP_PROP_ORIENTATION_AUTO and not self.auto_rotate:
            self.cap.set(prop, 0)
            return False
        return self.cap.set(prop, value)

    def grab(self) -> bool:
        self.calls["grab"] += 1
        if self.fail_grab:
            raise cv2.error("simulated decoder failure")
        ok = self.cap.grab()
        self.position += int(ok)
        return ok

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        self.calls["retrieve"] += 1
        return (False, None) if self.position in self.bad_frames else self.cap.retrieve()

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.calls["read"] += 1
        return self.cap.read()

    def __getattr__(self, name: str) -> object:
        return getattr(self.cap, name)


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[_SpyCapture]]:
    """Replace cv2.VideoCapture with _SpyCapture(**options); returns the list of captures opened."""

    def install(**options: object) -> list[_SpyCapture]:
        opened: list[_SpyCapture] = []

        def make(path: str, *args: object) -> _SpyCapture:
            opened.append(_SpyCapture(path, **options))
            return opened[-1]

        monkeypatch.setattr(cv2, "VideoCapture", make)
        return opened

    return install


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("bad media")
    return folder, mf.make_bad_media(folder)


@pytest.fixture(scope="module")
def index_avi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame MJPG video whose frame i encodes i."""
    return mf.index_video(tmp_path_factory.mktemp("index") / "index.avi", n_frames=30)


def _decoded(read: frames.FrameRead) -> list[int]:
    return [mf.frame_index(f) for f in read.frames]


def _assert_rgb_frames(read: frames.FrameRead) -> None:
    assert read.frames and len(read.frames) == len(read.indices)
    for f in read.frames:
        assert f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3


# --- sample_indices --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count, n", [(30, 30), (100, 7), (466, 40), (5, 5), (1, 1), (2, 1), (1000, 3)])
def test_sample_indices_match_linspace(count: int, n: int) -> None:
    got = frames.sample_indices(count, n)
    assert got.tolist() == np.round(np.linspace(0, count - 1, n)).astype(int).tolist()
    assert got[0] == 0 and got[-1] == (count - 1 if n > 1 else 0)


@pytest.mark.parametrize("count, n", [(3, 10), (1, 5), (7, 8), (10, 19)])
def test_sample_indices_fewer_when_short(count: int, n: int) -> None:
    got = frames.sample_indices(count, n)
    assert got.tolist() == sorted(set(got.tolist())) and len(got) <= count
    assert got[0] == 0 and got[-1] == count - 1
    assert frames.sample_indices(3, 10).tolist() == [0, 1, 2]


def test_sample_indices_empty_count() -> None:
    assert frames.sample_indices(0, 5).tolist() == []


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "3"])
def test_sample_indices_rejects_bad_n(n: object) -> None:
    with pytest.raises(ParameterError, match="parameter n="):
        frames.sample_indices(10, n)  # type: ignore[arg-type]


def test_sample_indices_rejects_negative_count() -> None:
    with pytest.raises(ParameterError, match="count"):
        frames.sample_indices(-1, 3)


# --- read_video: right frames, no seeking ----------------------------------------------------------------------


@pytest.mark.parametrize("fourcc, suffix", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_read_video_reads_the_sampled_frames(tmp_path: Path, fourcc: str, suffix: str) -> None:
    path = mf.index_video(tmp_path / f"index{suffix}", n_frames=30, fourcc=fourcc)
    read = frames.read_video(path, 7)
    _assert_rgb_frames(read)
    assert read.indices == frames.sample_indices(30, 7).tolist()
    assert _decoded(read) == read.indices
    assert (read.count_reported, read.count_read, read.note) == (30, 30, "")


def test_read_video_walks_and_never_seeks(index_avi: Path, spy: Callable[..., list[_SpyCapture]]) -> None:
    opened = spy()
    read = frames.read_video(index_avi, 5)
    assert len(opened) == 1
    calls = opened[0].calls
    assert calls["seek"] == 0 and calls["read"] == 0
    assert calls["retrieve"] == 5 and calls["grab"] == 30
    assert _decoded(read) == read.indices == [0, 7, 14, 22, 29]


def test_read_video_more_frames_than_the_video_has(index_avi: Path) -> None:
    read = frames.read_video(index_avi, 100)
    assert read.indices == list(range(30)) and _decoded(read) == read.indices


def test_read_video_accepts_str_paths_and_korean_names(tmp_path: Path) -> None:
    path = mf.index_video(tmp_path / "가짜 영상.avi", n_frames=10)
    assert _decoded(frames.read_video(str(path), 3)) == [0, 4, 9]


# --- containers that lie about their length --------------------------------------------------------------------


@pytest.mark.parametrize("reported", [0, -1, float("nan"), -9.2e18])
def test_missing_frame_count_counts_first(index_avi: Path, spy: Callable[..., list[_SpyCapture]],
                                          reported: float) -> None:
    opened = spy(count=reported)
    read = frames.read_video(index_avi, 4)
    assert read.count_reported == 0 and read.count_read == 30
    assert read.indices == [0, 10, 19, 29] and _decoded(read) == read.indices
    assert "no frame count in header" in read.note and "counted 30" in read.note
    assert all(c.calls["seek"] == 0 for c in opened)
    assert opened[0].calls["retrieve"] == 0  # the probe/counting pass decodes nothing


def test_overstated_frame_count_resamples(index_avi: Path, spy: Callable[..., list[_SpyCapture]]) -> None:
    opened = spy(count=100)
    read = frames.read_video(index_avi, 4)
    assert (read.count_reported, read.count_read) == (100, 30)
    assert read.indices == frames.sample_indices(30, 4).tolist() and _decoded(read) == read.indices
    assert read.note == "frame count in header 100, stream had 30; indices re-sampled"
    assert len(opened) == 2 and all(c.calls["seek"] == 0 for c in opened)


def test_understated_frame_count_uses_only_counted_frames(index_avi: Path,
                                                          spy: Callable[..., list[_SpyCapture]]) -> None:
    opened = spy(count=10)
    read = frames.read_video(index_avi, 4)
    assert read.indices == [0, 3, 6, 9] and _decoded(read) == read.indices
    assert (read.count_reported, read.count_read, read.note) == (10, 10, "")
    assert opened[0].calls["grab"] == 10


def test_real_truncated_avi_overstates_its_count(bad_media: tuple[Path, dict[str, str]]) -> None:
    path = bad_media[0] / "truncated.avi"
    cap = _REAL_CAPTURE(str(path))
    header, walked = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.grab():
        walked += 1
    cap.release()
    assert header == 30 and 0 < walked < header
    read = frames.read_video(path, 5)
    assert read.count_reported == 30 and read.count_read == walked
    assert read.indices == frames.sample_indices(walked, 5).tolist() and _decoded(read) == read.indices
    assert f"frame count in header 30, stream had {walked}; indices re-sampled" in read.note


def test_real_truncated_mp4_ends_early(bad_media: tuple[Path, dict[str, str]]) -> None:
    read = frames.read_video(bad_media[0] / "truncated.mp4", 5)
    _assert_rgb_frames(read)
    assert read.count_reported == 30 and 0 < read.count_read < 30 and "re-sampled" in read.note


def test_undecodable_frame_is_noted(index_avi: Path, spy: Callable[..., list[_SpyCapture]]) -> None:
    spy(bad_frames=(7,))
    read = frames.read_video(index_avi, 5)
    assert read.indices == [0, 14, 22, 29] and _decoded(read) == read.indices
    assert "frames [7] could not be decoded" in read.note


def test_decoder_exception_becomes_media_error(index_avi: Path, spy: Callable[..., list[_SpyCapture]]) -> None:
    spy(fail_grab=True)
    with pytest.raises(MediaError, match="OpenCV failed while decoding"):
        frames.read_video(index_avi, 5)


# --- rotation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_tag_is_honoured(tmp_path: Path, rotation: int) -> None:
    upright = mf.face_video(tmp_path / "phone.mp4", n_frames=6, size=(160, 120), rotation=rotation)
    read = frames.read_video(tmp_path / "phone.mp4", 3)
    for frame, i in zip(read.frames, read.indices):
        assert frame.shape == upright[i].shape
        assert np.abs(frame.astype(int) - upright[i]).mean() < 10
    assert f"rotated {rotation} degrees" in read.note


def test_rotation_applied_by_reader_when_opencv_cannot(tmp_path: Path, spy: Callable[..., list[_SpyCapture]]) -> None:
    upright = mf.face_video(tmp_path / "phone.mp4", n_frames=6, portrait=True, rotation=90)
    spy(auto_rotate=False)
    read = frames.read_video(tmp_path / "phone.mp4", 2)
    assert read.frames[0].shape == (320, 240, 3)
    assert np.abs(read.frames[0].astype(int) - upright[0]).mean() < 10
    assert "by the reader" in read.note


def test_portrait_frames_stay_tall(bad_media: tuple[Path, dict[str, str]]) -> None:
    for name in ("portrait.mp4", "portrait_rotated.mp4"):
        read = frames.read_video(bad_media[0] / name, 3)
        assert all(f.shape == (320, 240, 3) for f in read.frames), name


# --- video errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty.mp4", "empty file"),
        ("text.mp4", "cannot open"),
        ("truncated_moov_at_end.mp4", "cannot open"),
        ("no_frames.avi", "no frames"),
    ],
)
def test_unreadable_videos(bad_media: tuple[Path, dict[str, str]], name: str, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        frames.read_video(bad_media[0] / name, 5)


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        frames.read_video(tmp_path / "gone.mp4", 5)


def test_bad_n_is_checked_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ParameterError):
        frames.read_video(tmp_path / "gone.mp4", 0)


# --- images ----------------------------------------------------------------------------------------------------


def _face(size: tuple[int, int] = (256, 256)) -> np.ndarray:
    return mf.face_image(size).astype(int)


def test_grey_and_palette_and_cmyk(bad_media: tuple[Path, dict[str, str]]) -> None:
    folder, _ = bad_media
    grey = frames.read_image(folder / "gray.jpg")
    assert grey.shape == (256, 256, 3) and (grey[..., 0] == grey[..., 2]).all()
    for name in ("palette.png", "cmyk.jpg", "rgb16.png", "진짜 사진.jpg"):
        image = frames.read_image(folder / name)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        assert np.abs(image.astype(int) - _face()).mean() < 8, name


def test_16bit_grey_is_scaled_not_clipped(bad_media: tuple[Path, dict[str, str]]) -> None:
    folder, _ = bad_media
    assert Image.open(folder / "gray16.png").mode.startswith("I")
    image = frames.read_image(folder / "gray16.png")
    expected = cv2.cvtColor(mf.face_image(), cv2.COLOR_RGB2GRAY)
    assert (image[..., 1] == expected).all()


def test_rgba_composited_on_black(bad_media: tuple[Path, dict[str, str]]) -> None:
    image = frames.read_image(bad_media[0] / "rgba.png")
    assert image.shape == (256, 256, 3)
    assert (image[0, 0] == 0).all() and (image[-1, -1] == 0).all()  # transparent white becomes black
    assert (image[128, 128] == mf.face_image()[128, 128]).all()  # opaque pixels unchanged


def test_exif_orientation_applied(bad_media: tuple[Path, dict[str, str]]) -> None:
    folder, _ = bad_media
    assert Image.open(folder / "exif_rotated.jpg").size == (256, 192)  # stored on its side
    image = frames.read_image(folder / "exif_rotated.jpg")
    assert image.shape == (256, 192, 3)
    assert np.abs(image.astype(int) - _face((192, 256))).mean() < 8


def _grey_ramp() -> np.ndarray:
    return np.linspace(0, 255, 64 * 48).reshape(48, 64).astype(np.uint8)


@pytest.mark.parametrize("mode", ["LA", "1", "I;16", "RGBA", "P"])
def test_other_pil_modes_from_png(tmp_path: Path, mode: str) -> None:
    grey = _grey_ramp()
    img = Image.fromarray(grey.astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(grey).convert(mode)
    img.save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode == mode
    out = frames.read_image(tmp_path / "x.png")
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    if mode != "1":
        assert np.abs(out[..., 0].astype(int) - grey).max() <= 1


def test_32bit_integer_mode_in_16bit_range_is_scaled() -> None:
    grey = _grey_ramp()
    out = frames._to_rgb_array(Image.fromarray(grey.astype(np.int32) * 257, "I"))
    assert (out[..., 2] == grey).all()


def test_palette_transparency_composited(tmp_path: Path) -> None:
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 200, 150, 100] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.save(tmp_path / "t.png", transparency=1)
    out = frames.read_image(tmp_path / "t.png")
    assert out.shape == (8, 8, 3) and (out == 0).all()  # colour 1 is transparent: black, not (200, 150, 100)


def test_32bit_values_out_of_16bit_range_are_an_error() -> None:
    with pytest.raises(MediaError, match="outside the 16-bit range"):
        frames._to_rgb_array(Image.fromarray(np.full((4, 4), 70000, np.int32), "I"))
    with pytest.raises(MediaError, match="mode F"):
        frames._to_rgb_array(Image.fromarray(np.zeros((4, 4), np.float32), "F"))


@pytest.mark.parametrize("name, reason", [("empty.jpg", "empty file"), ("truncated.jpg", "truncated")])
def test_unreadable_images(bad_media: tuple[Path, dict[str, str]], name: str, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        frames.read_image(bad_media[0] / name)


def test_text_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("not an image", encoding="utf-8")
    with pytest.raises(MediaError, match="cannot read image"):
        frames.read_image(tmp_path / "fake.jpg")


# --- read_frames and the whole bad-media folder ----------------------------------------------------------------


def test_read_frames_dispatches(bad_media: tuple[Path, dict[str, str]], index_avi: Path) -> None:
    image = frames.read_frames(bad_media[0] / "진짜 사진.jpg", 40)
    assert (image.indices, image.count_reported, image.count_read) == ([0], 1, 1) and len(image.frames) == 1
    assert _decoded(frames.read_frames(index_avi, 3)) == [0, 14, 29]
    with pytest.raises(MediaError, match="not an image or video"):
        frames.read_frames(bad_media[0] / "notes.txt", 3)
    with pytest.raises(ParameterError):
        frames.read_frames(bad_media[0] / "진짜 사진.jpg", 0)


def test_every_bad_media_file_gives_frames_or_a_media_error(bad_media: tuple[Path, dict[str, str]]) -> None:
    folder, made = bad_media
    listed = list_media(folder)
    assert {p.name for p in listed} == {n for n in made if not n.startswith(".") and n != "notes.txt"}
    for path in listed:
        if path.name in mf.UNREADABLE:
            with pytest.raises(MediaError) as info:
                frames.read_frames(path, 8)
            assert len(str(info.value)) > 10, path.name
        else:
            _assert_rgb_frames(frames.read_frames(path, 8))


def test_factory_faces_are_detectable() -> None:
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    assert len(detector(mf.face_image(), 0)) == 1
    assert len(detector(mf.noface_image(), 1)) == 0
    assert all(len(detector(cv2.resize(f, (640, 480)), 0)) == 1 for f in mf.face_frames(4))
