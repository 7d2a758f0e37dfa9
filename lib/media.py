"""List the media files of a flat data folder (like the scoring server's ``./data``) and tell images from videos."""

from __future__ import annotations

from pathlib import Path

from .errors import ParameterError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg")


def media_kind(path: str | Path) -> str | None:
    """"image", "video" or None, from the file's extension (case-insensitive)."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return None


def is_hidden(path: str | Path) -> bool:
    """True for dot-files such as ".DS_Store" and macOS "._name.jpg" resource forks."""
    return Path(path).name.startswith(".")


def list_media(folder: str | Path) -> list[Path]:
    """The image and video files directly inside ``folder``, sorted by name; no recursion, hidden files skipped."""
    return [p for p in _entries(folder) if p.is_file() and not is_hidden(p) and media_kind(p) is not None]


def list_other_files(folder: str | Path) -> list[Path]:
    """Every entry of ``folder`` that ``list_media`` leaves out (hidden files, other extensions, subfolders), sorted."""
    media = set(list_media(folder))
    return [p for p in _entries(folder) if p not in media]


def link_outside(path: str | Path) -> Path | None:
    """Where ``path`` leads when it is a symbolic link to a file outside its own folder; None otherwise."""
    path = Path(path)
    if not path.is_symlink():
        return None
    target = path.resolve()
    return None if path.parent.resolve() in target.parents else target


def _entries(folder: str | Path) -> list[Path]:
    """All entries of ``folder`` sorted by name; ParameterError when it is not an existing folder."""
    root = Path(folder)
    if not root.is_dir():
        why = "no such folder (it is a file)" if root.exists() else "no such folder"
        raise ParameterError("data_dir", folder, why=why)
    return sorted(root.iterdir(), key=lambda p: p.name)
