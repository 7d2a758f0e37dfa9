"""Atomic file writes: a temporary file created with the user's umask, renamed into place; a full disk is one error.

Readers never see a half-written file (a crash leaves at most a hidden ``.<name>.*.tmp``), concurrent writers of the
same path each rename a complete file, and files come out with the mode any other file of the user would have (not
``mkstemp``'s 0600). A full disk or quota (ENOSPC, EDQUOT) raises ``DiskFullError`` naming the folder.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import DiskFullError

FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def write_atomic(path: Path, write: Callable[[BinaryIO], None], size_hint: int = 0) -> Path:
    """Write ``path`` through ``write(file)`` atomically; ``size_hint`` (bytes) sizes the error of a full disk."""
    path = Path(path)
    tmp = path.parent / f".{path.name[:40]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in FULL:
            raise DiskFullError(str(path.parent), size_hint, f"{errno.errorcode.get(e.errno, e.errno)}: "
                                f"{e.strerror}") from e
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda f: f.write(data), len(data))


def user_mode(folder: Path) -> None:
    """Give the files directly in ``folder`` the mode a new file of this user gets (0666 less the umask): libraries
    that write through ``mkstemp`` (safetensors' weights) leave 0600 behind, unlike every other file of the folder."""
    mask = os.umask(0)
    os.umask(mask)
    for f in Path(folder).iterdir():
        if f.is_file() and not f.is_symlink():
            f.chmod(0o666 & ~mask)
