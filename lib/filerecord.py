"""The per-file record: what preprocessing found for one media file, the contract between the crop cache, the
pipeline, the plots, the training data and the server bundle."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

Box = list[int]  # x0, y0, x1, y1 in pixels of the full frame (x1/y1 exclusive)


@dataclass
class FileRecord:
    """One media file after preprocessing: its crops' cache key, frames read, faces found, why it failed, timings."""

    filename: str  # the bare name, escaped when it is not valid UTF-8 (lib.names.escape)
    kind: str | None  # "image" | "video" (from the extension) | None
    key: str | None = None  # cache entry of its crops; None when preprocessing failed (nothing cached, retried next run)
    cached: bool = False  # the entry was already in the cache at this run
    n_crops: int = 0
    frames_read: int = 0
    faces_found: int = 0
    frame_indices: list[int] = field(default_factory=list)  # the frames whose crops were kept
    boxes: list[Box | None] = field(default_factory=list)  # the face box of every frame read (None: no face)
    detections: int = 0  # detector calls (keyframe detection calls it on fewer frames than it reads)
    frame_shape: list[int] | None = None  # (height, width) of the frames read
    count_reported: int | None = None  # frame count the video's header claims
    error: str = ""  # why no frame could be read
    exception: bool = False  # preprocessing raised an unexpected exception (a bug or an unforeseen input)
    timed_out: bool = False  # preprocessing ran past the file's time limit (lib.engines, file_timeout): not read
    note: str = ""  # what was odd but handled (a header that lies about its frame count, a rotation, ...)
    decode_s: float = 0.0  # seconds spent decoding in this run (0 on a cache hit)
    detect_s: float = 0.0  # seconds spent detecting and cropping in this run (0 on a cache hit)
    bytes: int = 0  # size of its cache entry
    worker_rss_mb: float = 0.0  # peak resident memory of the worker process that handled it
    name_escaped: bool = False  # ``filename`` is the escaped form of a name that is not valid UTF-8
    link: str = ""  # "followed" / "refused": the file is a link to a file outside its data folder (follow_links)
    cache_repair: str = ""  # its cache entry failed to load in this run: which entry, why, where it was moved
    boxes_from: str = ""  # box reuse (lib.scale.boxreuse): the original whose face boxes were reused ("" → detected)
    box_reuse: str = ""  # box reuse: its check ("reused: IoU 0.93 on frame 14") or why it detected instead

    @property
    def has_crops(self) -> bool:
        """The file has cached crops the model can read."""
        return bool(self.key) and self.n_crops > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FileRecord":
        """A record from a dict (a cache entry's metadata): keys it does not know are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def but(self, **changes: Any) -> "FileRecord":
        """A copy with ``changes``."""
        return replace(self, **changes)


SUMMARY_COLUMNS = ("filename", "kind", "frames_read", "faces_found", "n_crops", "cached", "error", "note")
