"""The ``trace_signals`` strategy: 21 measurements of forgery traces per crop (``lib.trace_signals``), their mean and
spread over each file's crops, and one class-balanced logistic regression, fitted in closed form.

It learns no pixels and no identity: what it reads is sharpness, noise, colour and spectrum of the face against its
surround and of the mouth against the eyes, measured the same way on every generator's output. Under the kit's
held-out protocols (docs/generalisation.md) it transfers to unseen generators and unseen data folders better than a
probe on ImageNet features, which carry mostly what a face is, not how it was made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import checks
from ..checks import rule
from ..errors import ParameterError
from ..options import CheckedOptions, option
from ..paths import CACHE
from .data import CropSet, TrainSamples
from .loop import Loop, fit_size
from .losses import Loss
from .strategies import Strategy, _set_trainable, cached_rows, register

MIN_MARGIN = 1.3  # the signals compare the face with its surround: the crop must hold some


@dataclass(frozen=True)
class TraceOptions(CheckedOptions):
    """trace_signals' own options."""

    trace_c: float = option(0.1, "trace_signals: inverse L2 strength of the logistic regression on the signals' mean "
                            "and spread", rule(checks.positive_number, "a positive number (inverse L2 strength)"))


@register
class TraceSignals(Strategy):
    """Trace signals per crop (``lib.trace_signals``), mean and spread per file, a logistic regression; no epochs.
    Infer with ``aggregate: file_head`` (the model scores a file from all its crops at once) and the crop settings it
    was trained with (``face_margin`` is stored in the model)."""

    name = "trace_signals"
    Options = TraceOptions
    fixed_fakes = True
    aggregate = "file_head"

    def __init__(self, options: TraceOptions):
        super().__init__(options)
        self.c = float(options.trace_c)
        self.margin: float | None = None  # the crops' face_margin (``configure``, before prepare)
        self.data: dict[str, Any] = {}
        self._memo: dict[str, np.ndarray] = {}  # crop digest -> signals, shared by the folds of a run

    def configure(self, crops: Any, data_cfg: dict[str, Any]) -> None:
        """The crop settings (``face_margin`` is the signals' geometry) and the input normalisation (undone by the
        model, which reads 0-255 values)."""
        if crops.face_margin < MIN_MARGIN:
            raise ParameterError("face_margin", crops.face_margin, f"a number ≥ {MIN_MARGIN} for strategy "
                                 "trace_signals (1.3, the default, recommended)",
                                 why="the signals compare the face with its surround")
        self.margin, self.data = float(crops.face_margin), dict(data_cfg)

    def prepare(self, model: nn.Module) -> nn.Module:
        """A trace-signal model with a zero head (the backbone's weights are not used)."""
        from .. import trace_signals

        if self.margin is None:
            raise RuntimeError("trace_signals: configure(crops, data_cfg) must come before prepare")
        fitted = trace_signals.new(self.margin, self.data, {0: "real", 1: "fake"})
        return _set_trainable(fitted, lambda n: n.startswith("classifier."))

    def crop_signals(self, model: nn.Module, crops: np.ndarray, data: dict[str, Any], device: str) -> np.ndarray:
        """The 21 signals of every crop: memoised by crop content across the folds of a run, and cached on disk
        (``cache/features/traces-<margin>/``) for later runs."""
        from ..devices import resolve_device
        from ..models import normalized

        dev = resolve_device(device)
        model = model.to(dev).eval()

        def compute(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = normalized(fit_size(batch, int(data["size"])), data, dev)
                return model.crop_features(x).float().cpu().numpy()

        folder = CACHE / "features" / f"traces-v1-m{self.margin:g}"
        return cached_rows(self._memo, folder, crops, compute, 32, "trace signals")

    def fit(self, model: nn.Module, samples: TrainSamples, val: CropSet | None, data: dict[str, Any], settings: Loop,
            base: Loss, extras: np.ndarray | None, on_epoch: Callable | None = None) -> tuple[nn.Module, Any]:
        from sklearn.linear_model import LogisticRegression

        from .evaluate import file_metrics

        t0 = time.perf_counter()
        cs = samples.data
        x, y = file_features(self.crop_signals(model, cs.crops, data, settings.device), cs.file_index,
                             len(cs.files)), cs.files["label"].to_numpy()
        mean, std = x.mean(0), x.std(0) + 1e-6
        lr = LogisticRegression(C=self.c, max_iter=5000, class_weight="balanced", random_state=samples.seed)
        lr.fit((x - mean) / std, y)
        weight = lr.coef_[0] / std
        bias = float(lr.intercept_[0] - np.dot(lr.coef_[0], mean / std))
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.zero_()
            model.classifier.weight[1] = torch.from_numpy(weight).float()
            model.classifier.bias[1] = bias
        self.weights = dict(zip(_feature_names(), lr.coef_[0].round(4).tolist()))  # per standardised feature
        logit = x @ weight + bias
        row: dict[str, Any] = {"epoch": 1, "train_loss": float(np.mean(np.logaddexp(0, -(2 * y - 1) * logit))),
                               "features": int(x.shape[1])}
        if val is not None:
            row.update(file_metrics(self.score(model, val, data, settings.device)[1]))
        row["seconds"] = time.perf_counter() - t0
        if on_epoch is not None:
            on_epoch(row)
        print(f"trace signals: regression on {x.shape[1]} features of {len(y)} files, train loss "
              f"{row['train_loss']:.4f}" + (f", val AUC {row.get('val_auc')}" if val is not None else ""))
        return model, pd.DataFrame([row])

    def score(self, model: nn.Module, data: CropSet, data_cfg: dict[str, Any], device: str,
              precision: str = "auto") -> tuple[np.ndarray, Any]:
        """Per-crop P(fake) (each crop scored as a file of one crop) and each file's P(fake) from all its crops (the
        file head, as infer computes it)."""
        s = self.crop_signals(model, data.crops, data_cfg, device)
        w = model.classifier.weight.detach().cpu().double().numpy()
        b = model.classifier.bias.detach().cpu().double().numpy()
        head = w[1] - w[0], float(b[1] - b[0])
        crop_logit = np.hstack([s, np.zeros_like(s)]) @ head[0] + head[1]
        file_logit = file_features(s, data.file_index, len(data.files)) @ head[0] + head[1]
        return 1 / (1 + np.exp(-crop_logit)), data.files.assign(prob_fake=1 / (1 + np.exp(-file_logit)))

    def report(self, model: nn.Module, val: CropSet | None, speed: dict[str, float], device: str) -> dict[str, Any]:
        return {"signals": len(_feature_names()) // 2, "face_margin": self.margin, "c": self.c,
                "standardised_weights": getattr(self, "weights", None)}


def file_features(signals: np.ndarray, file_index: np.ndarray, n_files: int) -> np.ndarray:
    """Per file the mean and the (population) standard deviation of its crops' signals: (n_files, 2 × signals)."""
    count = np.bincount(file_index, minlength=n_files).astype(np.float64)[:, None]
    total = np.zeros((n_files, signals.shape[1]))
    squares = np.zeros_like(total)
    np.add.at(total, file_index, signals)
    np.add.at(squares, file_index, signals ** 2)
    mean = total / np.maximum(count, 1)
    return np.hstack([mean, np.sqrt(np.maximum(squares / np.maximum(count, 1) - mean ** 2, 0))])


def _feature_names() -> tuple[str, ...]:
    from ..trace_signals import FEATURES

    return FEATURES
