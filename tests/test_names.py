"""File names of any bytes: escaping, CSV quoting, submission.csv and its check, OpenCV on names that are not UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import odd_corpus
from lib import frames, media, names, submission

NOT_UTF8 = [b"caf\xe9.jpg", "얼굴.jpg".encode("cp949"), b"mix\\\xe9.png", b"\xff\xfe.png", "얼".encode()[:2] + b".jpg"]


@pytest.mark.parametrize("raw", NOT_UTF8)
def test_names_that_are_not_utf8_are_escaped_reversibly(raw):
    name = os.fsdecode(raw)  # what os.listdir gives: undecodable bytes as surrogate escapes
    assert not names.is_utf8(name)
    text = names.escape(name)
    text.encode("utf-8")  # a UTF-8 file can hold it
    assert names.unescape(text) == raw
    assert "\\x" in text


def test_valid_names_are_kept_byte_for_byte():
    for name in ("a\\xe9.jpg", "back\\slash.jpg", "emoji 😀.png", "cafe\u0301.jpg", "line\nfeed.jpg"):
        assert names.is_utf8(name) and names.escape(name) == name
    assert names.escape("a\\xe9.jpg") == names.escape(os.fsdecode(b"a\xe9.jpg"))  # same text: name_escaped tells


def test_csv_fields_are_quoted_only_when_needed():
    assert names.csv_field("plain name.jpg") == "plain name.jpg"
    assert names.csv_field("back\\slash.jpg") == "back\\slash.jpg"
    assert names.csv_field('say "hi".jpg') == '"say ""hi"".jpg"'
    for special in (",", "\r", "\n"):
        assert names.csv_field(f"a{special}b.jpg") == f'"a{special}b.jpg"'


def _corpus(tmp_path: Path) -> tuple[Path, list[bytes]]:
    folder = tmp_path / "data"
    raw = odd_corpus.make_odd_corpus(folder, tmp_path / "outside")
    return folder, raw


def _table(folder: Path) -> pd.DataFrame:
    files = media.list_media(folder)
    return pd.DataFrame({"filename": [names.escape(p.name) for p in files], "label": [i % 2 for i in range(len(files))],
                         "name_escaped": [not names.is_utf8(p.name) for p in files]})


def test_submission_keeps_every_name_utf8_can_carry_and_names_the_others(tmp_path):
    folder, raw = _corpus(tmp_path)
    files = media.list_media(folder)
    assert sorted(os.fsencode(p.name) for p in files) == raw, "every odd name is a media file"
    path = submission.write_submission(_table(folder), tmp_path / "submission.csv")
    back = pd.read_csv(path, dtype={"filename": str}, keep_default_na=False, encoding="utf-8")
    utf8 = sorted(p.name for p in files if names.is_utf8(p.name))
    assert sorted(back["filename"]) == utf8, "byte-exact names, one row each, CR/LF/quotes/commas survive"
    unnamed = submission.unnamed_files(folder)
    assert len(unnamed) == len(files) - len(utf8) == 7  # 6 odd names + the broken Latin-1 one
    problems = submission.submission_problems(path, folder)
    assert len(problems) == 1 and "not valid UTF-8" in problems[0] and "caf\\\\xe9.jpg" in problems[0]
    assert submission.submission_problems(path, folder, unnamed_ok=True) == []
    with pytest.raises(submission.SubmissionError, match="7 media files have names that are not valid UTF-8"):
        submission.check_submission(path, folder)


def test_backslash_names_are_bare_names(tmp_path):
    (tmp_path / "back\\slash.jpg").write_bytes(b"x")
    path = tmp_path / "out" / "submission.csv"
    submission.write_submission(pd.DataFrame({"filename": ["back\\slash.jpg"], "label": [1]}), path)
    assert submission.submission_problems(path, tmp_path) == []


def test_the_check_still_finds_real_problems_among_odd_names(tmp_path):
    folder, _ = _corpus(tmp_path)
    table = _table(folder)
    utf8 = table[~table["name_escaped"]]
    dropped, doubled = utf8.iloc[0]["filename"], utf8.iloc[1]["filename"]
    rows = pd.concat([table[table["filename"] != dropped], utf8.iloc[[1]]])
    path = submission.write_submission(rows, tmp_path / "s.csv")
    problems = submission.submission_problems(path, folder, unnamed_ok=True)
    assert problems == [f"1 filenames appear more than once: {[doubled]}", f"1 media files have no row: {[dropped]}"]
    (tmp_path / "latin1.csv").write_bytes(b"filename,label\ncaf\xe9.jpg,0\n")
    assert "cannot be read as a UTF-8 CSV" in submission.submission_problems(tmp_path / "latin1.csv", folder)[0]


def test_opencv_reads_videos_whose_names_are_not_utf8(tmp_path):
    """cv2.VideoCapture given such a name as a str crashes the process (segfault): the reader must not do that."""
    import media_factory as mf

    mf.face_video(tmp_path / "plain.mp4", n_frames=6)
    odd = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"vid\xe9o \\ \xff.mp4")))
    os.replace(tmp_path / "plain.mp4", odd)
    fr = frames.read_frames(odd, 3)
    assert len(fr.frames) == 3 and fr.count_read == 6
    with frames.opencv_path(odd) as name:
        assert names.is_utf8(name)
