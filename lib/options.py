"""The option types: how faces are cropped (``CropOptions``), the crop settings at a size (``PrepSettings``, the crop
cache's key) and the inference options (``InferOptions``: the crops plus TTA, aggregation and threshold).

Each field is a notebook parameter declared once with ``option``: its default, one-line help and check. The types
check their fields when they are made, and ``lib.parameters`` builds the notebooks' schemas from the same fields, so
preprocess, infer, train and the server bundle all make their crops, views and labels from the same settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from . import aggregate, checks, faces, tta
from .checks import Check, alternatives, rule

FORMAT = 1  # bump when the crop code changes what a cache entry holds


def option(default: Any, help: str, check: Check | None = None) -> Any:
    """A dataclass field that is also a notebook parameter: its default, one-line help and check."""
    meta = {"help": help, "check": check}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={**meta, "default": default})
    return field(default=default, metadata={**meta, "default": default})


@dataclass(frozen=True)
class CheckedOptions:
    """The base of the option types: the check of every ``option`` field runs when one is made."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.metadata.get("check") is not None:
                f.metadata["check"](f.name, getattr(self, f.name))


# the aggregators that combine per-frame probabilities (file_head is a model's own score of a whole file)
FRAME_AGGREGATES = tuple(name for name in aggregate.AGGREGATORS if name != "file_head")
RANK_RULE = "top:"  # threshold "top:q": rank the files by P(fake) and call the top share q fake
_THRESHOLDS = ("a number in [0, 1], 'model' (the threshold that train.ipynb chose and stored in the model folder), or "
               "'top:q' with 0 < q < 1 (the most suspicious share q of the files called fake, e.g. top:0.5)")


def is_rank_rule(threshold: Any) -> bool:
    """True for a threshold written as the rank rule ``top:q``."""
    return isinstance(threshold, str) and threshold.startswith(RANK_RULE)


def top_share(threshold: str) -> float:
    """q of a rank rule ``top:q`` (0 < q < 1); a wrong one is a ParameterError naming ``threshold``."""
    from .errors import ParameterError

    text = str(threshold)[len(RANK_RULE):] if is_rank_rule(threshold) else ""
    try:
        q = float(text)
    except ValueError:
        q = float("nan")
    if not 0.0 < q < 1.0:
        raise ParameterError("threshold", threshold, _THRESHOLDS)
    return q


def _threshold(name: str, value: Any) -> float | str:
    if value == "model":
        return value
    if is_rank_rule(value):
        top_share(value)
        return value
    return checks.number(name, value, 0.0, 1.0, _THRESHOLDS)


@dataclass(frozen=True)
class CropOptions(CheckedOptions):
    """How a file's faces are found and cropped, whatever the crop size."""

    frames: int = option(30, "frames sampled per video, evenly spaced",
                         rule(checks.positive_int, "frames sampled per video"))
    face_margin: float = option(1.3, "crop side / face box side (square crop centred on the face)",
                                rule(checks.number, 1.0, float("inf"), "a number ≥ 1.0 (crop side / face box side)"))
    detect_width: int = option(640, "the detector sees a copy of each frame scaled to this width",
                               rule(checks.int_at_least, 64, "an integer ≥ 64 (pixels)"))
    detector: str = option("dlib_hog", f"face detector: {alternatives(faces.DETECTORS)}",
                           rule(checks.choice, faces.DETECTORS))
    detect_every: int = option(1, "run the detector on every k-th sampled frame, boxes interpolated between "
                               "(1: all frames)", rule(checks.positive_int, "1: detect on every frame"))
    detect_scale: str = option("fixed", "fixed: detect at detect_width | adaptive: at a width fitted to the face found "
                               "before (faster on big faces)", rule(checks.choice, faces.DETECT_SCALES))
    no_face: str = option("skip", f"a frame with no face: {alternatives(faces.NO_FACE)}",
                          rule(checks.choice, faces.NO_FACE))

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "face_margin", float(self.face_margin))  # 2 and 2.0 give the same cache key

    def crops(self, size: int) -> "PrepSettings":
        """The crop settings at ``size`` (the model's input size)."""
        return PrepSettings(size=size, **{f.name: getattr(self, f.name) for f in fields(CropOptions)})


@dataclass(frozen=True)
class PrepSettings(CropOptions):
    """Everything that decides the crops of a file, the crop size included; any change gives another cache key."""

    size: int = 224

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.int_at_least("size", self.size, 8, "an integer ≥ 8 (pixels)")

    @classmethod
    def from_params(cls, p: dict[str, Any], size: int) -> "PrepSettings":
        """The crop settings of a notebook's parameters, at crop ``size``."""
        return cls(size=size, **{k: p[k] for k in CROP_KEYS})

    def key_text(self) -> str:
        defaults = {"detect_every": 1, "detect_scale": "fixed"}  # left out at their defaults: old keys stay valid
        values = {k: v for k, v in asdict(self).items() if not (k in defaults and v == defaults[k])}
        return json.dumps({"format": FORMAT, **values}, sort_keys=True)


@dataclass(frozen=True)
class InferOptions(CropOptions):
    """What decides the predictions besides the model: the crops (at the model's size), TTA, aggregation, threshold,
    and which files are read (``follow_links``)."""

    tta: str = option("none", f"test-time views of each crop: {alternatives(tta.TTA)}",
                      rule(checks.choice, tta.TTA))
    aggregate: str = option("mean", f"frames → file: {alternatives(aggregate.AGGREGATORS)}",
                            rule(checks.choice, aggregate.AGGREGATORS))
    batch_size: int = option(64, "crops per forward pass: bounds memory whatever frames × TTA views",
                             rule(checks.positive_int, "crops per forward pass"))
    threshold: float | str = option(0.5, 'prob_fake ≥ threshold → label 1 (fake); "model": the threshold '
                                    'train.ipynb stored with the model; "top:q": the share q of the files with the '
                                    "highest prob_fake called fake (a rank rule: no calibration needed)", _threshold)
    fallback_prob: float = option(0.0, "prob_fake of a file with no usable crop (unreadable, or no face with no_face: "
                                  "skip)", rule(checks.number, 0.0, 1.0, "a number in [0, 1]"))
    follow_links: bool = option(True, "a link in data_dir to a file outside it: True → read it, False → refuse it "
                                "(fallback row, reason)", checks.boolean)

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "InferOptions":
        """The inference options of a notebook's parameters (keys it does not use are ignored)."""
        return cls(**{f.name: p[f.name] for f in fields(cls) if f.name in p})


CROP_KEYS = tuple(f.name for f in fields(CropOptions))  # the parameters every notebook that makes crops shares
