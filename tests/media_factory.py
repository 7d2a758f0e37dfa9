"""Small media files made on the fly for tests: face images and videos, index-coded videos, and awkward files.

The face is the astronaut of ``skimage.data`` (dlib's HOG detector finds it); nothing is copied from shared data.
Sizes are (width, height), as in OpenCV. Images are RGB uint8 arrays.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

_FACE_CENTRE = (221, 122)  # centre of dlib's face box in skimage.data.astronaut() (512 x 512)
_FACE_SIZE = 90  # side of that box in pixels
_EXIF_ORIENTATION = 0x0112
_INDEX_BITS = 8
_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
# tkhd display matrices (a, b, u, c, d, v, x, y, w) for a clockwise display rotation of 0/90/180/270 degrees
_ROTATION_MATRICES = {
    0: (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000),
    90: (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000),
    180: (-0x10000, 0, 0, 0, -0x10000, 0, 0, 0, 0x40000000),
    270: (0, -0x10000, 0, 0x10000, 0, 0, 0, 0, 0x40000000),
}
# pixels stored for a tag of N degrees are the upright frame turned N degrees anticlockwise
_STORE_ROTATIONS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}

# files of make_bad_media that must raise MediaError; every other media file there must give frames
UNREADABLE = frozenset(
    {"empty.mp4", "empty.jpg", "text.mp4", "truncated_moov_at_end.mp4", "truncated.jpg", "no_frames.avi"}
)


def face_image(size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """The astronaut's face, about 40% of the shorter side, centred in an RGB image of ``size`` (w, h)."""
    w, h = size
    scale = _FACE_SIZE / 0.4 / min(w, h)
    cw, ch = min(512, round(w * scale)), min(512, round(h * scale))
    x0 = int(np.clip(_FACE_CENTRE[0] - cw // 2, 0, 512 - cw))
    y0 = int(np.clip(_FACE_CENTRE[1] - ch // 2, 0, 512 - ch))
    crop = data.astronaut()[y0 : y0 + ch, x0 : x0 + cw]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)


def noface_image(size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """A face-free RGB image of ``size`` (w, h): the coffee cup of ``skimage.data``."""
    return cv2.resize(data.coffee(), size, interpolation=cv2.INTER_AREA)


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 15, fourcc: str = "mp4v") -> Path:
    """Write RGB frames (all the same size) as a video with OpenCV; RuntimeError if the writer cannot open."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {path} with fourcc {fourcc!r}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return Path(path)


def face_frames(n_frames: int = 20, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """Upright RGB frames of ``size`` (w, h): the face drifting left to right over the coffee background."""
    w, h = size
    side = int(0.75 * min(w, h)) // 2 * 2
    face, background = face_image((side, side)), noface_image((w, h))
    frames = []
    for i in range(n_frames):
        x = round((w - side) * i / max(n_frames - 1, 1))
        frame = background.copy()
        frame[(h - side) // 2 : (h - side) // 2 + side, x : x + side] = face
        frames.append(frame)
    return frames


def face_video(
    path: str | Path,
    n_frames: int = 20,
    size: tuple[int, int] = (320, 240),
    portrait: bool = False,
    rotation: int = 0,
    fps: float = 15,
    fourcc: str = "mp4v",
) -> list[np.ndarray]:
    """Write a moving-face video and return its upright frames.

    ``portrait`` swaps ``size`` to tall frames. ``rotation`` (90/180/270, .mp4 only) stores the pixels turned
    anticlockwise and tags the track, like a phone does, so only a reader honouring the tag sees the face upright.
    """
    w, h = sorted(size) if portrait else size
    upright = face_frames(n_frames, (w, h))
    stored = [cv2.rotate(f, _STORE_ROTATIONS[rotation]) for f in upright] if rotation else upright
    write_video(path, stored, fps, fourcc)
    if rotation:
        set_mp4_rotation(path, rotation)
    return upright


def noface_video(
    path: str | Path, n_frames: int = 20, size: tuple[int, int] = (320, 240), fps: float = 15, fourcc: str = "mp4v"
) -> list[np.ndarray]:
    """Write a face-free video (a pan over the coffee cup) and return its frames."""
    w, h = size
    wide = noface_image((w * 2, h))
    frames = [wide[:, round(w * i / max(n_frames - 1, 1)) :][:, :w].copy() for i in range(n_frames)]
    write_video(path, frames, fps, fourcc)
    return frames


def index_frame(index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A frame that encodes ``index`` (0..255) as 8 vertical bands, bit k white in band k; survives lossy codecs."""
    w, h = size
    frame = np.zeros((h, w, 3), np.uint8)
    for bit in range(_INDEX_BITS):
        if index >> bit & 1:
            frame[:, bit * w // _INDEX_BITS : (bit + 1) * w // _INDEX_BITS] = 255
    return frame


def frame_index(frame: np.ndarray) -> int:
    """The index encoded by ``index_frame`` (read from the middle of each band)."""
    w = frame.shape[1]
    bands = [frame[:, (2 * bit + 1) * w // (2 * _INDEX_BITS)].mean() > 127 for bit in range(_INDEX_BITS)]
    return sum(1 << bit for bit, white in enumerate(bands) if white)


def index_video(
    path: str | Path, n_frames: int = 30, size: tuple[int, int] = (64, 48), fps: float = 15, fourcc: str = "MJPG"
) -> Path:
    """Write a video whose frame i shows the index i (see ``frame_index``)."""
    if n_frames > 1 << _INDEX_BITS:
        raise ValueError(f"index_video encodes at most {1 << _INDEX_BITS} frames, asked for {n_frames}")
    return write_video(path, [index_frame(i, size) for i in range(n_frames)], fps, fourcc)


def set_mp4_rotation(path: str | Path, degrees: int) -> None:
    """Set the display-rotation matrix of every track of an .mp4 in place (what phones write for portrait video)."""
    buf = bytearray(Path(path).read_bytes())
    start = buf.find(b"tkhd")
    if start < 0:
        raise ValueError(f"{path}: no tkhd box")
    while start >= 0:
        box = start - 4
        matrix_at = box + (60 if buf[box + 8] == 1 else 48)  # version 1 has 64-bit times
        buf[matrix_at : matrix_at + 36] = struct.pack(">9i", *_ROTATION_MATRICES[degrees])
        start = buf.find(b"tkhd", start + 4)
    Path(path).write_bytes(bytes(buf))


def faststart_mp4(path: str | Path) -> None:
    """Move the moov box of an .mp4 in front of mdat (like ``-movflags faststart``), fixing the chunk offsets."""
    buf = Path(path).read_bytes()
    boxes = _top_level_boxes(buf)
    moov = bytearray(boxes[b"moov"])
    _shift_chunk_offsets(moov, 8, len(moov), len(moov))
    head = boxes[b"ftyp"]
    rest = b"".join(body for kind, body in boxes.items() if kind not in (b"ftyp", b"moov"))
    Path(path).write_bytes(head + bytes(moov) + rest)


def truncate(path: str | Path, fraction: float) -> None:
    """Cut a file to ``fraction`` of its size, like an interrupted download."""
    buf = Path(path).read_bytes()
    Path(path).write_bytes(buf[: int(len(buf) * fraction)])


def _top_level_boxes(buf: bytes) -> dict[bytes, bytes]:
    """The top-level boxes of an .mp4 by type, in file order (the OpenCV writer makes each type once)."""
    boxes, i = {}, 0
    while i + 8 <= len(buf):
        size, kind = struct.unpack(">I4s", buf[i : i + 8])
        if size < 8:
            raise ValueError(f"unsupported box size {size} for {kind!r} at {i}")
        boxes[kind] = buf[i : i + size]
        i += size
    return boxes


def _shift_chunk_offsets(buf: bytearray, start: int, end: int, delta: int) -> None:
    """Add ``delta`` to every stco/co64 chunk offset inside buf[start:end]."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[i : i + 8])
        if size < 8:
            raise ValueError(f"unsupported box size {size} for {kind!r} at {i}")
        if kind in _MP4_CONTAINERS:
            _shift_chunk_offsets(buf, i + 8, i + size, delta)
        elif kind in (b"stco", b"co64"):
            fmt, width = (">I", 4) if kind == b"stco" else (">Q", 8)
            (count,) = struct.unpack(">I", buf[i + 12 : i + 16])
            for at in range(i + 16, i + 16 + count * width, width):
                buf[at : at + width] = struct.pack(fmt, struct.unpack(fmt, buf[at : at + width])[0] + delta)
        i += size


def _save_image(path: Path, array: np.ndarray, mode: str | None = None, **save_args: object) -> None:
    """Save an RGB/RGBA array with PIL, converting to ``mode`` first when given."""
    img = Image.fromarray(array)
    (img.convert(mode) if mode else img).save(path, **save_args)


def _exif_rotated_jpg(path: Path) -> None:
    """A JPEG with EXIF orientation 6 whose pixels lie on their side: upright only after ``exif_transpose``."""
    upright = face_image((192, 256))
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(path, exif=exif, quality=95)


def _rgba_png(path: Path) -> None:
    """A PNG whose face is opaque inside a circle and fully transparent (over white pixels) outside it."""
    rgb = face_image((256, 256))
    yy, xx = np.mgrid[:256, :256]
    alpha = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 100**2, 255, 0).astype(np.uint8)
    rgb[alpha == 0] = 255
    Image.fromarray(np.dstack([rgb, alpha])).save(path)


def _header_only_avi(path: Path) -> None:
    """An MJPG .avi whose header claims 30 frames, cut just before the first frame."""
    index_video(path, n_frames=30)
    buf = path.read_bytes()
    path.write_bytes(buf[: buf.index(b"movi") + 4])


def _write_images(folder: Path) -> dict[str, str]:
    """The image cases of ``make_bad_media``."""
    face = face_image((256, 256))
    grey16 = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    _save_image(folder / "gray.jpg", face, "L")
    _rgba_png(folder / "rgba.png")
    cv2.imwrite(str(folder / "gray16.png"), grey16)
    cv2.imwrite(str(folder / "rgb16.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    Image.fromarray(face).quantize(256).save(folder / "palette.png")
    _save_image(folder / "cmyk.jpg", face, "CMYK")
    _exif_rotated_jpg(folder / "exif_rotated.jpg")
    _save_image(folder / "noface.jpg", noface_image())
    _save_image(folder / "진짜 사진.jpg", face)
    _save_image(folder / "UPPER CASE.JPG", face)
    _save_image(folder / "truncated.jpg", face)
    truncate(folder / "truncated.jpg", 0.5)
    (folder / "empty.jpg").write_bytes(b"")
    return {
        "gray.jpg": "greyscale (L) JPEG of a face",
        "rgba.png": "RGBA PNG: face opaque in a circle, transparent white outside",
        "gray16.png": "16-bit greyscale PNG (I;16), values = 8-bit grey * 257",
        "rgb16.png": "16-bit RGB PNG written by cv2.imwrite of uint16",
        "palette.png": "palette (P) PNG of a face",
        "cmyk.jpg": "CMYK JPEG of a face",
        "exif_rotated.jpg": "JPEG stored on its side with EXIF orientation 6; upright 192x256 after exif_transpose",
        "noface.jpg": "image with no face (coffee cup)",
        "진짜 사진.jpg": "face JPEG with a Korean name containing a space",
        "UPPER CASE.JPG": "face JPEG with an upper-case extension",
        "truncated.jpg": "face JPEG cut to half its size",
        "empty.jpg": "zero-byte .jpg",
    }


def _write_videos(folder: Path) -> dict[str, str]:
    """The video cases of ``make_bad_media``."""
    face_video(folder / "portrait.mp4", portrait=True)
    face_video(folder / "portrait_rotated.mp4", portrait=True, rotation=90)
    noface_video(folder / "noface.mp4")
    face_video(folder / "가짜 영상.mp4")
    face_video(folder / "truncated.mp4", n_frames=30)
    faststart_mp4(folder / "truncated.mp4")
    truncate(folder / "truncated.mp4", 0.5)
    face_video(folder / "truncated_moov_at_end.mp4", n_frames=30)
    truncate(folder / "truncated_moov_at_end.mp4", 0.5)
    index_video(folder / "truncated.avi", n_frames=30, size=(160, 120), fourcc="MJPG")
    truncate(folder / "truncated.avi", 0.5)
    _header_only_avi(folder / "no_frames.avi")
    (folder / "text.mp4").write_text("this is not a video\n" * 20, encoding="utf-8")
    (folder / "empty.mp4").write_bytes(b"")
    return {
        "portrait.mp4": "portrait face video: tall frames, no rotation tag",
        "portrait_rotated.mp4": "portrait face video stored sideways with a 90-degree rotation tag (phone style)",
        "noface.mp4": "video with no face (pan over a coffee cup)",
        "가짜 영상.mp4": "face video with a Korean name containing a space",
        "truncated.mp4": "faststart mp4 cut to half: header says 30 frames, the stream ends early",
        "truncated_moov_at_end.mp4": "mp4 cut to half with its moov box at the end: cannot be opened",
        "truncated.avi": "MJPG avi of index frames cut to half: header says 30 frames, the stream ends early",
        "no_frames.avi": "MJPG avi cut right after its header: claims 30 frames, has none",
        "text.mp4": "a text file named .mp4",
        "empty.mp4": "zero-byte .mp4",
    }


def make_bad_media(folder: str | Path) -> dict[str, str]:
    """Write one file of each awkward kind into ``folder``; returns {file name: what it is}.

    Files named in ``UNREADABLE`` must raise MediaError; every other media file must give frames.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    made = {**_write_images(root), **_write_videos(root)}
    (root / "notes.txt").write_text("not media\n", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _save_image(root / "._진짜 사진.jpg", face_image((32, 32)))
    made.update({"notes.txt": "a non-media file", ".DS_Store": "a hidden file", "._진짜 사진.jpg": "a hidden AppleDouble .jpg"})
    return made
