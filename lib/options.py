"""The settings types: how faces are cropped (``CropOptions``), the crop settings at a size (``PrepSettings``, the
crop cache's key) and the inference options (``InferOptions``: the crops plus TTA, aggregation and threshold).

Each checks its own values when it is made and is built from a notebook's parameters by its own ``from_params``, so
preprocess, infer, train and the server bundle all make their crops, views and labels from the same settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import aggregate, checks, faces, tta
from .errors import ParameterError

FORMAT = 1  # bump when the crop code changes what a cache entry holds


@dataclass(frozen=True)
class CropOptions:
    """How a file's faces are found and cropped, whatever the crop size."""

    frames: int = 30
    face_margin: float = 1.3
    detect_width: int = 640
    detector: str = "dlib_hog"
    no_face: str = "skip"
    detect_every: int = 1  # run the detector on every k-th sampled frame; boxes in between are interpolated
    detect_scale: str = "fixed"  # adaptive: detect at a width fitted to the face found before (faces.DETECT_SCALES)

    def __post_init__(self) -> None:
        checks.positive_int("frames", self.frames, "frames sampled per video")
        if isinstance(self.face_margin, bool) or not isinstance(self.face_margin, (int, float)) \
                or not self.face_margin >= 1.0:
            raise ParameterError("face_margin", self.face_margin, "a number ≥ 1.0 (crop side / face box side)")
        object.__setattr__(self, "face_margin", float(self.face_margin))  # 2 and 2.0 give the same cache key
        if isinstance(self.detect_width, bool) or not isinstance(self.detect_width, int) or self.detect_width < 64:
            raise ParameterError("detect_width", self.detect_width, "an integer ≥ 64 (pixels)")
        faces.DETECTORS.get(self.detector)
        checks.choice("no_face", self.no_face, faces.NO_FACE)
        checks.positive_int("detect_every", self.detect_every, "1: detect on every frame")
        checks.choice("detect_scale", self.detect_scale, faces.DETECT_SCALES)


@dataclass(frozen=True)
class PrepSettings(CropOptions):
    """Everything that decides the crops of a file, the crop size included; any change gives another cache key."""

    size: int = 224

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 8:
            raise ParameterError("size", self.size, "an integer ≥ 8 (pixels)")

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

    tta: str = "none"
    aggregate: str = "mean"
    batch_size: int = 64
    threshold: float | str = 0.5  # or "model": the threshold train.ipynb stored | "top:q": the top q share called fake
    fallback_prob: float = 0.0
    follow_links: bool = True  # a link in data_dir to a file outside it: read it (True) or refuse it (a fallback row)

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.boolean("follow_links", self.follow_links)
        tta.TTA.get(self.tta)
        aggregate.AGGREGATORS.get(self.aggregate)
        checks.positive_int("batch_size", self.batch_size, "crops per forward pass")
        if self.threshold != "model" and not is_rank_rule(self.threshold):
            checks.number("threshold", self.threshold, 0.0, 1.0, "a number in [0, 1], 'model' (the threshold that "
                          "train.ipynb chose on val and stored in the model folder), or 'top:q' with q in (0, 1) "
                          "(the most suspicious share q of the files called fake, e.g. top:0.5)")
        top_share(self.threshold) if is_rank_rule(self.threshold) else None
        checks.number("fallback_prob", self.fallback_prob, 0.0, 1.0, "a number in [0, 1]")

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "InferOptions":
        """The inference options of a notebook's parameters (keys it does not use are ignored)."""
        return cls(**{f.name: p[f.name] for f in fields(cls) if f.name in p})

    def crops(self, size: int) -> PrepSettings:
        """The crop settings at ``size`` (the model's input size)."""
        return PrepSettings(size=size, **{f.name: getattr(self, f.name) for f in fields(CropOptions)})


RANK_RULE = "top:"  # threshold "top:q": rank the files by P(fake) and call the top share q fake


def is_rank_rule(threshold: Any) -> bool:
    """True for a threshold written as the rank rule ``top:q``."""
    return isinstance(threshold, str) and threshold.startswith(RANK_RULE)


def top_share(threshold: str) -> float:
    """q of a rank rule ``top:q`` (0 < q < 1); a wrong one is a ParameterError naming ``threshold``."""
    text = str(threshold)[len(RANK_RULE):] if is_rank_rule(threshold) else ""
    try:
        q = float(text)
    except ValueError:
        q = float("nan")
    if not 0.0 < q < 1.0:
        raise ParameterError("threshold", threshold, "a number in [0, 1], 'model', or 'top:q' with 0 < q < 1 "
                             "(e.g. top:0.5: the most suspicious half of the files called fake)")
    return q


CROP_KEYS = tuple(f.name for f in fields(CropOptions))  # the parameters every notebook that makes crops shares
