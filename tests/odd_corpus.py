"""A folder of media files whose names are everything a file system accepts and a CSV or a terminal chokes on.

Made by the tests (nothing copied from shared data): face images and short face videos from ``media_factory``,
under names given as raw bytes, so that names that are not valid UTF-8 (Latin-1, CP949) are made exactly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

import media_factory as mf

# raw name -> what it tests; every one is a media file that must get exactly one predictions.csv row
ODD_NAMES: dict[bytes, str] = {
    b"caf\xe9.jpg": "Latin-1 byte (not UTF-8)",
    "얼굴 사진.jpg".encode("cp949"): "CP949 Korean (not UTF-8)",
    b"vid\xe9o.mp4": "Latin-1 video name (OpenCV cannot take it as a string)",
    b"mix\\\xe9.png": "backslash and a Latin-1 byte",
    "얼".encode()[:2] + b" cut.jpg": "a UTF-8 sequence cut short",
    b"a\xe9.jpg": "Latin-1 twin of the next name: the same text once escaped",
    b"a\\xe9.jpg": "a valid name that reads like an escape",
    "carriage\rreturn.jpg".encode(): "carriage return",
    "line\nfeed.mp4".encode(): "line feed (a video)",
    "crlf\r\nboth.png".encode(): "CR LF",
    "back\\slash.jpg".encode(): "backslash",
    'say "cheese".jpg'.encode(): "double quotes",
    "comma, name.jpg".encode(): "comma",
    "semi;colon.jpg".encode(): "semicolon",
    "tab\tname.jpg".encode(): "tab",
    "emoji 😀🎭.png".encode(): "emoji (4-byte UTF-8)",
    ("l" * 251 + ".jpg").encode(): "255 bytes, ASCII",
    ("가" * 83 + "ab.jpg").encode(): "255 bytes, 3-byte UTF-8 characters",
    "café.jpg".encode(): "NFC é",
    "cafe\u0301.jpg".encode(): "NFD é (another file than NFC)",
    "  leading space.jpg".encode(): "leading spaces",
    "trailing space .jpg".encode(): "trailing space before the extension",
    "#hash.jpg".encode(): "CSV comment character",
    "NA.jpg".encode(): "a name pandas reads as missing without keep_default_na",
    "=1+2.jpg".encode(): "spreadsheet formula",
    "'single'.jpg".encode(): "single quotes",
    "-dash.jpg".encode(): "leading dash",
    "colon:name.mp4".encode(): "colon (an FFmpeg protocol prefix)",
    "UPPER.JPG".encode(): "upper-case extension",
    "zero\u200bwidth.jpg".encode(): "zero-width space",
    "\u202eevil.gpj.jpg".encode(): "right-to-left override",
    "ctrl\x1b[31m\x7f.jpg".encode(): "escape and DEL control characters",
}
BROKEN = {b"broken\xe9.jpg": "unreadable, Latin-1 name", "broken, copy.jpg".encode(): "the same bytes, another name"}
LINK_OUT = b"link out.jpg"  # a link to a face image outside the folder
LINK_IN = b"link in.jpg"  # a link to a file of the folder (never refused)
DANGLING = b"dangling.jpg"  # a link to nothing: not a media file (no row), listed among ignored files
VIDEOS = {n for n in ODD_NAMES if n.endswith(b".mp4")}


def make_odd_corpus(folder: Path, outside: Path) -> list[bytes]:
    """Fill ``folder`` (flat) with the odd names, the broken pair and the links (targets in ``outside``); returns
    the raw names of every media file (links included, the dangling one not)."""
    folder, outside = Path(folder), Path(outside)
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    image, video = outside / "face.jpg", outside / "face.mp4"
    Image.fromarray(mf.face_image()).save(image)
    mf.face_video(video, n_frames=6)
    raw_dir = os.fsencode(folder)
    for name in ODD_NAMES:
        source = video if name in VIDEOS else image
        if name.lower().endswith(b".png"):
            Image.fromarray(mf.face_image((200, 200))).save(outside / "face.png")
            source = outside / "face.png"
        shutil.copyfile(source, os.path.join(raw_dir, name))
    for name in BROKEN:
        Path(os.fsdecode(os.path.join(raw_dir, name))).write_bytes(b"not an image at all\n" * 3)
    os.symlink(os.fsencode(outside / "face.jpg"), os.path.join(raw_dir, LINK_OUT))
    os.symlink(b"UPPER.JPG", os.path.join(raw_dir, LINK_IN))
    os.symlink(b"no such target.jpg", os.path.join(raw_dir, DANGLING))
    return sorted([*ODD_NAMES, *BROKEN, LINK_OUT, LINK_IN])
