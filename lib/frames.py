"""Sample and read frames: videos by walking the stream (grab every frame, retrieve the chosen ones), images via PIL.

Video containers lie about their length: the frame count in the header can be missing, too high (the stream ends
early) or too low (the stream goes on). ``read_video`` never trusts it blindly and never seeks, and every deviation
it works around is written to ``FrameRead.note``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import os

# FFmpeg's own messages about broken files ("moov atom not found") would flood notebook outputs; the reader records
# the reason for every file it cannot read instead. OPENCV_FFMPEG_LOGLEVEL=32 brings them back.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np
from PIL import Image, ImageOps

from .errors import MediaError, ParameterError
from .media import media_kind

# OpenCV's CAP_PROP_ORIENTATION_META is the clockwise rotation that makes the frame upright.
_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_MODES_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


@dataclass
class FrameRead:
    """The frames read from one file, the stream indices they came from, and what the container claimed."""

    frames: list[np.ndarray]  # RGB uint8, H x W x 3, upright
    indices: list[int]  # stream index of each frame
    count_reported: int  # frame count in the header; 0 when the header gives none
    count_read: int  # frames the stream really had, as far as the reader walked it
    note: str = ""  # every deviation from the header worked around, "; "-separated


@dataclass
class _Walk:
    """One pass over a stream: what it retrieved, how far it got, and what it could not decode."""

    frames: list[np.ndarray] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    grabbed: int = 0
    ended_early: bool = False
    undecodable: list[int] = field(default_factory=list)


def sample_indices(count: int, n: int) -> np.ndarray:
    """``n`` evenly spaced indices over [0, count) (``np.linspace(0, count - 1, n)`` rounded), unique and sorted."""
    _check_n(n)
    if count < 0:
        raise ParameterError("count", count, why="a frame count cannot be negative")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, count - 1, n)).astype(np.int64))


def read_frames(path: str | Path, n: int) -> FrameRead:
    """``n`` evenly spaced frames of a video, or the single frame of an image; MediaError when unreadable."""
    kind = media_kind(path)
    if kind == "video":
        return read_video(path, n)
    if kind == "image":
        _check_n(n)
        return FrameRead([read_image(path)], [0], 1, 1, "")
    raise MediaError(f"not an image or video file (extension {Path(path).suffix!r})")


def read_video(path: str | Path, n: int) -> FrameRead:
    """``n`` evenly spaced frames read by walking the stream once (twice when the header overstates its length)."""
    _check_n(n)
    video = _check_file(path)
    try:
        return _read_video(video, n)
    except cv2.error as e:
        raise MediaError(f"OpenCV failed while decoding the video: {e}") from e


def read_image(path: str | Path) -> np.ndarray:
    """An image as RGB uint8 H x W x 3, turned upright by its EXIF orientation; alpha is composited on black."""
    image = _check_file(path)
    try:
        with Image.open(image) as img:
            img.load()
            return _to_rgb_array(ImageOps.exif_transpose(img))
    except _PIL_ERRORS as e:
        raise MediaError(f"cannot read image: {e}") from e


def _check_n(n: int) -> None:
    """ParameterError unless ``n`` is a positive int."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ParameterError("n", n, why="the number of frames must be an integer >= 1")


def _check_file(path: str | Path) -> Path:
    """``path`` as a Path; MediaError when it is missing, not a file, or empty."""
    p = Path(path)
    if not p.is_file():
        raise MediaError("no such file")
    if p.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)")
    return p


def _read_video(path: Path, n: int) -> FrameRead:
    """The body of ``read_video``: probe the header, walk, and walk again over the true length if needed."""
    with _capture(path) as (cap, rotate):
        reported = _reported_count(cap)
        notes = _rotation_notes(cap, rotate)
        first = _walk(cap, rotate, sample_indices(reported, n)) if reported > 0 else None
    count = _true_count(path, reported, first, notes)
    if count == 0:
        raise MediaError(f"the video stream yielded no frames (frame count in header: {reported or 'none'})")
    walk = first if first is not None and not first.ended_early else _walk_path(path, sample_indices(count, n))
    if walk.ended_early and walk.grabbed < count:
        notes.append(f"stream ended at frame {walk.grabbed} on the second pass")
    if walk.undecodable:
        notes.append(f"frames {walk.undecodable} could not be decoded and were skipped")
    if not walk.frames:
        raise MediaError("none of the sampled frames could be decoded")
    count_read = walk.grabbed if walk.ended_early else count
    return FrameRead(walk.frames, walk.indices, reported, count_read, "; ".join(notes))


def _true_count(path: Path, reported: int, first: _Walk | None, notes: list[str]) -> int:
    """The length to sample over: the header's count unless it is missing or the first walk proved it too high."""
    if first is None:
        count = _count_frames(path)
        notes.append(f"no frame count in header; a grab-only pass counted {count}")
        return count
    if first.ended_early:
        notes.append(f"frame count in header {reported}, stream had {first.grabbed}; indices re-sampled")
        return first.grabbed
    return reported


@contextmanager
def opencv_path(path: str | Path) -> Iterator[str]:
    """A path OpenCV can open for ``path``: itself, or for a name that is not valid UTF-8 (which crashes OpenCV's
    string conversion) the file's open descriptor under /proc/self/fd, else a link with a plain name."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    if os.path.isdir("/proc/self/fd"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise MediaError(f"cannot open the file ({e.strerror})") from e
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kit-video-") as tmp:
        link = Path(tmp) / f"video{Path(text).suffix.encode('ascii', 'replace').decode()}"
        link.symlink_to(Path(path).resolve())
        yield str(link)


@contextmanager
def _capture(path: Path) -> Iterator[tuple[cv2.VideoCapture, int]]:
    """An open capture with auto-rotation requested, and the rotation the reader must still apply itself."""
    with opencv_path(path) as name:
        cap = cv2.VideoCapture(name)
    try:
        if not cap.isOpened():
            raise MediaError("OpenCV cannot open the file as a video (not a video, or a broken/truncated container)")
        auto = cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        yield cap, (0 if auto else _rotation_meta(cap))
    finally:
        cap.release()


def _reported_count(cap: cv2.VideoCapture) -> int:
    """The header's frame count; 0 when it is missing, negative or not a number."""
    value = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(value) if math.isfinite(value) and value > 0 else 0


def _rotation_meta(cap: cv2.VideoCapture) -> int:
    """The container's rotation metadata in degrees clockwise, snapped to 0, 90, 180 or 270."""
    value = cap.get(cv2.CAP_PROP_ORIENTATION_META)
    return int(round(value / 90.0)) % 4 * 90 if math.isfinite(value) else 0


def _rotation_notes(cap: cv2.VideoCapture, rotate: int) -> list[str]:
    """A note when the container asks for a rotation, saying who applies it."""
    meta = _rotation_meta(cap)
    if meta == 0:
        return []
    by = "by the reader (this OpenCV build cannot auto-rotate)" if rotate else "by OpenCV"
    return [f"rotated {meta} degrees per the container's rotation metadata, {by}"]


def _walk(cap: cv2.VideoCapture, rotate: int, wanted: np.ndarray) -> _Walk:
    """Grab every frame up to the last wanted index and retrieve only the wanted ones; never seeks."""
    walk, want, last = _Walk(), set(wanted.tolist()), int(wanted[-1])
    while walk.grabbed <= last:
        if not cap.grab():
            walk.ended_early = True
            break
        if walk.grabbed in want:
            ok, frame = cap.retrieve()
            if ok and frame is not None and frame.size:
                walk.frames.append(_frame_to_rgb(frame, rotate))
                walk.indices.append(walk.grabbed)
            else:
                walk.undecodable.append(walk.grabbed)
        walk.grabbed += 1
    return walk


def _walk_path(path: Path, wanted: np.ndarray) -> _Walk:
    """``_walk`` on a freshly opened capture of ``path``."""
    with _capture(path) as (cap, rotate):
        return _walk(cap, rotate, wanted)


def _count_frames(path: Path) -> int:
    """The number of frames in the stream, counted by a grab-only pass (no decoding to pixels)."""
    count = 0
    with _capture(path) as (cap, _):
        while cap.grab():
            count += 1
    return count


def _frame_to_rgb(frame: np.ndarray, rotate: int) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or grey) as RGB uint8, rotated clockwise by ``rotate`` degrees."""
    if frame.dtype != np.uint8:
        raise MediaError(f"video frames are {frame.dtype}, expected 8-bit")
    if frame.ndim == 2:
        rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    elif frame.shape[2] == 4:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return cv2.rotate(rgb, _ROTATIONS[rotate]) if rotate else rgb


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """A PIL image of any common mode as RGB uint8; 16-bit is scaled by 1/257, alpha composited on black."""
    if img.mode in _MODES_16BIT:
        grey = _scale_16bit(np.asarray(img), img.mode)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if img.mode in _MODES_ALPHA or "transparency" in img.info:
        return _composite_on_black(np.asarray(img.convert("RGBA")))
    if img.mode == "F":
        raise MediaError("32-bit floating-point images (PIL mode F) are not supported")
    return np.array(img.convert("RGB"), dtype=np.uint8)


def _scale_16bit(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit grey values (0..65535) as 8-bit by /257 and rounding; MediaError when outside that range."""
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi > 65535:
        raise MediaError(f"integer image (PIL mode {mode}) has values {lo}..{hi}, outside the 16-bit range")
    return np.round(values.astype(np.float32) / 257.0).astype(np.uint8)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 composited on a black background: each colour times alpha / 255, rounded."""
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    return ((rgba[:, :, :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
