"""Value checks: each takes a parameter's name and value, returns the value to use and raises a ParameterError that
names the parameter and its valid values otherwise.

Every parameter declares its check once (``lib.parameters``, ``lib.options``, ``lib.training.parameters``); ``rule``
binds a check's extra arguments (``rule(number, 0.0, 1.0, "a number in [0, 1]")``). The option types check their
fields with these too, so code below a notebook's edge trusts the values it is given.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import ParameterError
from .paths import resolve

Check = Callable[[str, Any], Any]  # (name, value) → the value to use, or a ParameterError

_EXP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def rule(check: Callable[..., Any], *args: Any) -> Check:
    """``check(name, value, *args)`` as a parameter's check of (name, value)."""
    return lambda name, value: check(name, value, *args)


def alternatives(valid: Iterable[str]) -> str:
    """Valid names as a help text shows them: ``a | b | c``."""
    return " | ".join(valid)


def integer(name: str, value: Any, what: str = "an integer") -> int:
    """An int (booleans rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(name, value, what)
    return value


def int_at_least(name: str, value: Any, low: int, what: str) -> int:
    """An int ≥ ``low`` (booleans rejected); ``what`` names the valid values."""
    if integer(name, value, what) < low:
        raise ParameterError(name, value, what)
    return value


def positive_int(name: str, value: Any, what: str) -> int:
    """An int ≥ 1; ``what`` says what it counts."""
    return int_at_least(name, value, 1, f"an integer ≥ 1 ({what})")


def number(name: str, value: Any, low: float, high: float, what: str) -> float:
    """A number in [low, high] (booleans rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ParameterError(name, value, what)
    return float(value)


def positive_number(name: str, value: Any, what: str = "a positive number") -> float:
    """A number > 0 (booleans rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ParameterError(name, value, what)
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """True or False (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise ParameterError(name, value, "True, False")
    return value


def choice(name: str, value: Any, valid: Iterable[str]) -> str:
    """One of ``valid`` (a tuple, or a registry: its names)."""
    valid = tuple(valid)
    if value not in valid:
        raise ParameterError(name, value, valid)
    return value


def names(name: str, value: Any, what: str) -> list[str]:
    """A list (or tuple) of strings."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ParameterError(name, value, what)
    return list(value)


def int_list(name: str, value: Any, what: str) -> list[int]:
    """A list (or tuple) of integers ≥ 0; ``what`` says what they are."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                       for v in value):
        raise ParameterError(name, value, f"a list of integers ({what})")
    return list(value)


def text(name: str, value: Any, what: str) -> str:
    """A string (empty allowed)."""
    if not isinstance(value, str):
        raise ParameterError(name, value, what)
    return value


def exp_name(exp: str, name: str = "exp") -> str:
    """A valid run name (a folder under submissions/), or a new timestamped one when ``exp`` is empty."""
    if not exp:
        return datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if not isinstance(exp, str) or not _EXP_NAME.match(exp):
        raise ParameterError(name, exp, "letters, digits, '.', '_' and '-' (a folder name under submissions/)")
    return exp


def workers(value: Any) -> int:
    """Preprocessing processes: ``-1`` → min(cpu − 1, 8) (at least 1); ``0`` → work in this process."""
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ParameterError("workers", value, "-1 (auto), 0 (no worker processes) or a positive integer")
    return max(1, min((os.cpu_count() or 2) - 1, 8)) if value == -1 else value


def file_timeout(value: Any) -> float:
    """Seconds a file may take per 10 frames and per 10 MB before its worker is replaced (0: no limit)."""
    return number("file_timeout", value, 0.0, float("inf"), "0 (no limit) or a number of seconds > 0 per 10 frames "
                  "and per 10 MB of a file, after which its worker is stopped and the file gets a fallback row")


def existing_dir(name: str, value: str, what: str) -> Path:
    """An existing folder (relative paths from the current folder, else from the project root)."""
    p = Path(value).expanduser() if value else Path()
    p = p if value and p.is_dir() else resolve(value or ".")
    if not value or not p.is_dir():
        raise ParameterError(name, value, what, why="no such folder")
    return p.resolve()


def optional_file(name: str, value: str) -> Path | None:
    """An optional input file ('' → None); a given path must exist."""
    if not value:
        return None
    p = Path(value).expanduser()
    p = p if p.is_file() else resolve(value)
    if not p.is_file():
        raise ParameterError(name, value, "an existing file, or '' for none", why="no such file")
    return p.resolve()


def optional_path(name: str, value: Any) -> Path | None:
    """A folder to write to ('' → None: the kit's default); relative paths are from the project root."""
    if not isinstance(value, str):
        raise ParameterError(name, value, "a folder path, or '' for the default")
    return resolve(value) if value else None


def model_source(value: str, name: str = "model") -> str:
    """A local model folder (resolved) or a Hugging Face hub id, as a string for ``from_pretrained``."""
    if isinstance(value, str) and value:
        for candidate in (Path(value).expanduser(), resolve(value)):
            if candidate.is_dir():
                return str(candidate.resolve())
        if _HUB_ID.match(value):
            return value
    raise ParameterError(name, value, "a local model folder or a Hugging Face hub id 'owner/name'",
                         why="no such folder, and not a hub id")


CLUSTER_FORMS = ('"" (worker processes on this machine), "local:N" (a Dask LocalCluster of N processes) or '
                 '"tcp://host:port" (a running Dask scheduler)')
_CLUSTER = re.compile(r"^(local:[1-9]\d{0,3}|tcp://[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


def cluster(value: Any) -> str:
    """Where preprocessing runs: "" (``workers`` processes here), "local:N" or "tcp://host:port" (Dask)."""
    if not isinstance(value, str) or (value and not _CLUSTER.match(value)):
        raise ParameterError("cluster", value, CLUSTER_FORMS)
    return value


def shard(value: Any) -> tuple[int, int] | None:
    """A share of the data folder: "" (all of it) or "i/n" (the i-th of n shares, 1 ≤ i ≤ n) → (i, n) or None."""
    what = '"" (every file) or "i/n": the i-th of n shares of the folder\'s files, 1 ≤ i ≤ n (e.g. "2/4")'
    if not isinstance(value, str):
        raise ParameterError("shard", value, what)
    if not value:
        return None
    m = re.match(r"^(\d{1,6})/(\d{1,6})$", value)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise ParameterError("shard", value, what)
    return int(m[1]), int(m[2])
