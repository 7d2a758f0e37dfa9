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


class ModelLoadError(RuntimeError):
    """A model cannot be loaded, or loads with weights that were not in its checkpoint."""
