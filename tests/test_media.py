"""Tests for lib.media: media kinds and the listing of a flat data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib import media
from lib.errors import ParameterError
from tests import media_factory as mf


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"x")


@pytest.mark.parametrize(
    "name, kind",
    [
        ("a.jpg", "image"),
        ("a.JPEG", "image"),
        ("a.Png", "image"),
        ("a.bmp", "image"),
        ("a.webp", "image"),
        ("a.mp4", "video"),
        ("a.MP4", "video"),
        ("a.avi", "video"),
        ("a.mov", "video"),
        ("a.mkv", "video"),
        ("a.webm", "video"),
        ("a.mpg", "video"),
        ("가짜 영상.mp4", "video"),
        ("notes.txt", None),
        ("noext", None),
        ("a.jpg.txt", None),
        ("archive.mp4.zip", None),
    ],
)
def test_media_kind(name: str, kind: str | None) -> None:
    assert media.media_kind(name) == kind
    assert media.media_kind(Path("/some/dir") / name) == kind


def test_list_media_sorted_flat_and_case_insensitive(tmp_path: Path) -> None:
    _touch(tmp_path, "b.mp4", "a.JPG", "c.png", "B2.MOV", "notes.txt")
    (tmp_path / "sub").mkdir()
    _touch(tmp_path / "sub", "inside.jpg")
    names = [p.name for p in media.list_media(tmp_path)]
    assert names == sorted(["b.mp4", "a.JPG", "c.png", "B2.MOV"])
    assert "inside.jpg" not in names
    assert all(p.parent == tmp_path for p in media.list_media(tmp_path))


def test_list_media_skips_hidden_and_reports_other_files(tmp_path: Path) -> None:
    _touch(tmp_path, "face.jpg", ".DS_Store", "._face.jpg", ".hidden.mp4", "notes.txt", "model.pth")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in media.list_media(tmp_path)] == ["face.jpg"]
    others = [p.name for p in media.list_other_files(tmp_path)]
    assert others == sorted([".DS_Store", "._face.jpg", ".hidden.mp4", "notes.txt", "model.pth", "sub"])


def test_media_and_other_files_partition_the_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg", "b.txt", ".c.png", "d.avi")
    listed = media.list_media(tmp_path) + media.list_other_files(tmp_path)
    assert sorted(listed) == sorted(tmp_path.iterdir())
    assert not set(media.list_media(tmp_path)) & set(media.list_other_files(tmp_path))


def test_korean_names_with_spaces(tmp_path: Path) -> None:
    _touch(tmp_path, "가짜 영상.mp4", "진짜 사진.jpg", "name with spaces.png")
    listed = media.list_media(str(tmp_path))
    assert [p.name for p in listed] == sorted(["가짜 영상.mp4", "진짜 사진.jpg", "name with spaces.png"])
    assert all(p.is_file() for p in listed)


def test_is_hidden() -> None:
    assert media.is_hidden(".DS_Store") and media.is_hidden("/x/._a.jpg")
    assert not media.is_hidden("a.jpg") and not media.is_hidden("./a.jpg")


def test_missing_folder_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="no such folder") as info:
        media.list_media(tmp_path / "nope")
    assert info.value.name == "data_dir"
    with pytest.raises(ParameterError, match="data_dir"):
        media.list_other_files(tmp_path / "nope")


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg")
    with pytest.raises(ParameterError, match="no such folder"):
        media.list_media(tmp_path / "a.jpg")


def test_empty_folder(tmp_path: Path) -> None:
    assert media.list_media(tmp_path) == [] and media.list_other_files(tmp_path) == []


def test_listing_the_bad_media_folder(tmp_path: Path) -> None:
    made = mf.make_bad_media(tmp_path)
    listed = {p.name for p in media.list_media(tmp_path)}
    others = {p.name for p in media.list_other_files(tmp_path)}
    assert {"가짜 영상.mp4", "진짜 사진.jpg", "UPPER CASE.JPG", "empty.mp4"} <= listed
    assert others == {"notes.txt", ".DS_Store", "._진짜 사진.jpg"}
    assert listed | others == set(made)
