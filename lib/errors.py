"""The kit's exception types: each names what went wrong in words a competitor can act on."""

from __future__ import annotations

from typing import Iterable


class ParameterError(ValueError):
    """A run parameter has a value the kit cannot use; raised before any work starts."""

    def __init__(self, name: str, value: object, valid: Iterable[object] | str | None = None, why: str = ""):
        self.name, self.value = name, value
        msg = f"parameter {name}={value!r} is not valid"
        if why:
            msg += f": {why}"
        if valid is not None:
            valid_text = valid if isinstance(valid, str) else ", ".join(map(str, valid))
            msg += f" (valid values: {valid_text})"
        super().__init__(msg)


class MediaError(RuntimeError):
    """A media file cannot be read; the message is the reason recorded in predictions.csv."""


class ModelLoadError(ParameterError):
    """A model cannot be loaded, or loads with weights that were not in its checkpoint: the ``model`` parameter is
    not usable, so it is a ParameterError too."""

    def __init__(self, message: str):
        self.name, self.value = "model", None
        ValueError.__init__(self, message)


class DiskFullError(RuntimeError):
    """A disk (or quota) filled up while the kit wrote to ``folder``; ``needed`` estimates the bytes still to write.

    ``message`` replaces the default text once the run knows more (how many files were done, what was kept);
    ``advice`` (what to do) always ends the text."""

    def __init__(self, folder: str, needed: int, detail: str = "", message: str = "", advice: str = ""):
        super().__init__(folder, needed, detail, message, advice)
        self.folder, self.needed, self.detail = str(folder), int(needed), detail
        self.message, self.advice = message, advice

    def __str__(self) -> str:
        head = self.message or (f"the disk holding {self.folder} is full ({self.detail}): about "
                                f"{size_text(self.needed)} more is needed there")
        return f"{head} {self.advice}".strip()

    def __reduce__(self):  # pickled by worker processes: rebuilt from its fields
        return type(self), (self.folder, self.needed, self.detail, self.message, self.advice)


def size_text(n: float) -> str:
    """Bytes as text in KB, MB or GB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.1f} KB"
