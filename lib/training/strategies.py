"""Training strategies as registered objects — feature_extractor, fine_tune, lora, distill, linear_probe, and
trace_signals (``lib.training.traces``, which builds on ``Strategy`` and registers itself when
``lib.training`` is imported).

A strategy is made from its own options (``Options``: a dataclass of the flat train.ipynb parameters only it reads,
each declared once with ``lib.options.option``) and owns everything that sets it apart:
which parameters train (``prepare``), the crop size and sample needs, extra per-sample inputs (``extras``: a
teacher's logits), the loss, how the trained model becomes a plain Hugging Face model (``finalize``) and what it
adds to the run's record (``report``). The loop and the notebook call these and nothing else, so a new strategy is
one class here (and its options type) plus its test; train.ipynb's schema takes every registered strategy's options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import backbones, checks
from ..checks import rule
from ..errors import ParameterError
from ..options import CheckedOptions, option
from ..paths import CACHE
from ..progress import tqdm
from ..registry import Registry
from .data import CropSet, TrainSamples
from .loop import Loop, fit, fit_size, measure_speed, predict
from .losses import Loss, distill_loss


class Strategy:
    """Train every parameter; the base of the others (``fine_tune`` with no frozen blocks)."""

    name = ""
    Options: type | None = None  # its own options (flat train.ipynb parameters no other strategy reads), or None
    fixed_fakes = False  # the same pseudo-fakes every epoch (needed when extras are computed once per sample)
    aggregate = "mean"  # how a file's crop scores make its score, in validation (infer's ``aggregate``)

    def __init__(self, options: Any = None):
        self.options = options

    def crop_size(self, model_size: int) -> int:
        """The size crops are cached at."""
        return int(model_size)

    def configure(self, crops: Any, data_cfg: dict[str, Any]) -> None:
        """What the strategy needs to know of the crops (``PrepSettings``) and the model's input normalisation before
        ``prepare``; nothing for most."""

    def prepare(self, model: nn.Module) -> nn.Module:
        """The module to train, with ``requires_grad`` set."""
        return _set_trainable(model, lambda n: True)

    def extras(self, samples: TrainSamples, device: str) -> np.ndarray | None:
        """Per-sample inputs besides image and label (rows aligned with ``samples``), or None."""
        return None

    def loss(self, logits: torch.Tensor, y: torch.Tensor, extra: torch.Tensor | None, base: Loss) -> torch.Tensor:
        """The batch's loss from its logits, labels and rows of ``extras``."""
        return base(logits, y)

    def fit(self, model: nn.Module, samples: TrainSamples, val: CropSet | None, data: dict[str, Any], settings: Loop,
            base: Loss, extras: np.ndarray | None, on_epoch: Callable | None = None) -> tuple[nn.Module, Any]:
        """Train ``model``; returns it and the history (one row per epoch). The kit's loop, unless overridden."""
        return fit(model, samples, val, data, settings, base, self, extras, on_epoch)

    def finalize(self, model: nn.Module) -> nn.Module:
        """A plain Hugging Face model for inference, every parameter trainable again, in eval mode."""
        return _set_trainable(model, lambda n: True).eval()

    def score(self, model: nn.Module, data: CropSet, data_cfg: dict[str, Any], device: str,
              precision: str = "auto") -> tuple[np.ndarray, Any]:
        """Per-crop P(fake) of ``data`` and its files with their P(fake) (``evaluate.file_scores``: the crops'
        scores aggregated as infer does with ``aggregate``)."""
        from ..devices import resolve_device
        from .evaluate import file_scores

        logits = predict(model, data.crops, data_cfg, resolve_device(device), precision=precision)
        return fake_prob(logits), file_scores(data, logits, self.aggregate)

    def report(self, model: nn.Module, val: CropSet | None, speed: dict[str, float],
               device: str) -> dict[str, Any] | None:
        """What the strategy adds to the run's record (None: nothing); ``val`` is None under leave-one-out."""
        return None


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: register a strategy under its ``name``."""
    return STRATEGIES.register(cls.name)(cls)


def option_defaults(cls: type[Strategy]) -> dict[str, Any]:
    """The parameters a strategy owns (its ``Options`` fields) and their defaults."""
    return {f.name: f.metadata["default"] for f in fields(cls.Options)} if cls.Options is not None else {}


def own_options(name: str, p: dict[str, Any]) -> Any:
    """Strategy ``name``'s own options from flat parameters ``p`` (keys missing from ``p`` at their defaults), or None.

    A parameter of another strategy set away from its default is a ParameterError: it would be silently unused."""
    cls = STRATEGIES.get(name)
    own = option_defaults(cls)
    owners = {n: option_defaults(STRATEGIES.get(n)) for n in STRATEGIES}
    for key, default in {k: d for o in owners.values() for k, d in o.items() if k not in own}.items():
        if key in p and p[key] != default:
            users = " and ".join(repr(n) for n, o in owners.items() if key in o)
            raise ParameterError(key, p[key], repr(default), why=f"{key} is used only by strategy {users}, and "
                                 f"strategy is {name!r}")
    return cls.Options(**{k: p[k] for k in own if k in p}) if cls.Options is not None else None


def make(name: str, p: dict[str, Any] | Any) -> Strategy:
    """The strategy ``name`` with its own options: given, or taken from flat parameters ``p`` (``own_options``); an
    unknown name lists the valid ones."""
    return STRATEGIES.get(name)(own_options(name, p) if isinstance(p, dict) else p)


def _set_trainable(model: nn.Module, trainable: Callable[[str], bool]) -> nn.Module:
    for n, param in model.named_parameters():
        param.requires_grad_(trainable(n))
    return model


def _block_of(param: str, names: list[str]) -> int | None:
    return next((i for i, b in enumerate(names) if param.startswith(b + ".")), None)


def frozen_names(model: nn.Module, frozen_blocks: list[Any]) -> set[str]:
    """Parameters frozen by ``frozen_blocks``: block indices (negative from the end) and/or "stem" (before block 0)."""
    names = backbones.blocks(model)
    params = [n for n, _ in model.named_parameters()]
    first = next(i for i, n in enumerate(params) if _block_of(n, names) is not None)
    frozen: set[str] = set()
    for b in frozen_blocks:
        if b == "stem":
            frozen |= set(params[:first])
        elif isinstance(b, int) and not isinstance(b, bool) and -len(names) <= b < len(names):
            frozen |= {n for n in params if _block_of(n, names) == b % len(names)}
        else:
            raise ParameterError("frozen_blocks", b, f"'stem' or block indices in [{-len(names)}, {len(names) - 1}]")
    return frozen


@register
class FeatureExtractor(Strategy):
    """The head only; the backbone (and its BatchNorm statistics) stays as it was."""

    name = "feature_extractor"

    def prepare(self, model: nn.Module) -> nn.Module:
        head = set(backbones.head_parameters(model))
        return _set_trainable(model, lambda n: n in head)


def _block_list(name: str, value: Any) -> list:
    if not isinstance(value, (list, tuple)):
        raise ParameterError(name, value, "a list of block indices and/or 'stem'")
    return list(value)


@dataclass(frozen=True)
class FineTuneOptions(CheckedOptions):
    """fine_tune's own options (distill's too)."""

    frozen_blocks: list = option([], 'fine_tune/distill: block indices (negative from the end) and/or "stem" kept '
                                 "frozen", _block_list)


@register
class FineTune(Strategy):
    """Every parameter but those of ``frozen_blocks``."""

    name = "fine_tune"
    Options = FineTuneOptions

    def prepare(self, model: nn.Module) -> nn.Module:
        frozen = frozen_names(model, list(self.options.frozen_blocks))
        return _set_trainable(model, lambda n: n not in frozen)


@dataclass(frozen=True)
class LoraOptions(CheckedOptions):
    """lora's own options."""

    lora_rank: int = option(8, "lora: adapter rank", rule(checks.positive_int, "LoRA rank"))
    lora_alpha: float = option(16.0, "lora: scaling numerator (scale alpha / rank)",
                               rule(checks.number, 1e-6, 1e6, "a positive number"))
    lora_dropout: float = option(0.05, "lora: dropout on the adapter input",
                                 rule(checks.number, 0.0, 0.9, "a number in [0, 0.9]"))
    lora_targets: list = option([], "lora: module names; [] → 1x1 convs of EfficientNet, query/value of a ViT",
                                rule(checks.names, "a list of module names, or [] for the default"))


@register
class Lora(Strategy):
    """PEFT LoRA adapters on ``lora_targets`` (default: the backbone's own choice) and the head; merged when saved."""

    name = "lora"
    Options = LoraOptions

    def prepare(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        o = self.options
        targets = list(o.lora_targets) if o.lora_targets else backbones.lora_targets(model)
        config = LoraConfig(r=int(o.lora_rank), lora_alpha=float(o.lora_alpha), lora_dropout=float(o.lora_dropout),
                            target_modules=targets, modules_to_save=[backbones.head_name(model)])
        return get_peft_model(model, config)

    def finalize(self, model: nn.Module) -> nn.Module:
        """The LoRA adapters merged into the weights: inference needs no extra step."""
        return super().finalize(model.merge_and_unload())


@dataclass(frozen=True)
class DistillOptions(FineTuneOptions):
    """distill's own options (the student fine-tunes: fine_tune's too)."""

    teacher: str = option("", "distill: the teacher model folder or hub id",
                          lambda name, value: checks.model_source(value, name) if value else value)
    distill_alpha: float = option(0.5, "distill: weight of the hard-label loss; 1 - alpha goes to the soft (KL) loss",
                                  rule(checks.number, 0.0, 1.0, "a number in [0, 1]"))
    distill_temperature: float = option(4.0, "distill: softmax temperature T (the KL term is scaled by T squared)",
                                        checks.positive_number)


@register
class Distill(FineTune):
    """A student trained like fine_tune on α·hard loss + (1−α)·T²·KL against a teacher's cached soft labels."""

    name = "distill"
    Options = DistillOptions
    fixed_fakes = True  # the teacher's logits are computed once, on the same pseudo-fakes every epoch

    def __init__(self, options: DistillOptions):
        if not options.teacher:
            raise ParameterError("teacher", options.teacher, "a trained model folder or hub id",
                                 why="strategy 'distill' needs a teacher")
        super().__init__(options)
        self.teacher = checks.model_source(options.teacher, "teacher")
        self.alpha, self.temperature = float(options.distill_alpha), float(options.distill_temperature)

    def crop_size(self, model_size: int) -> int:
        """The teacher's size when it is bigger: it sees its own resolution, the student the same crops resized."""
        return max(int(model_size), int(backbones.resolve_data_config(self.teacher)["size"]))

    def extras(self, samples: TrainSamples, device: str) -> np.ndarray:
        return teacher_logits(self.teacher, samples, CACHE, device=device)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, extra: torch.Tensor | None, base: Loss) -> torch.Tensor:
        return distill_loss(logits, extra, y, self.alpha, self.temperature, base)

    def report(self, model: nn.Module, val: CropSet | None, speed: dict[str, float],
               device: str) -> dict[str, Any] | None:
        """The student against its teacher on the val files (nothing under leave-one-out: no val set)."""
        if val is None:
            return None
        params = sum(q.numel() for q in model.parameters())
        return compare_teacher(self.teacher, val, speed, params, device)


def soft_label_key(teacher: str, data: CropSet, items: list[tuple[int, bool]], seed: int) -> str:
    """Cache key of a teacher's outputs on a set of samples (teacher folder, crops and sample list)."""
    import hashlib

    h = hashlib.sha256(str(Path(teacher).resolve()).encode())
    for f in sorted(Path(teacher).glob("*.safetensors")):
        h.update(f"{f.name}{f.stat().st_size}{f.stat().st_mtime_ns}".encode())
    h.update(np.ascontiguousarray(data.crops).data)
    h.update(repr((items, seed)).encode())
    return h.hexdigest()[:24]


def teacher_logits(teacher: str, samples: TrainSamples, cache_dir: Path = CACHE, batch_size: int = 64,
                   device: str = "auto") -> np.ndarray:
    """The teacher's logits on every (un-augmented) training sample, computed once and cached on disk."""
    from ..models import load_model, normalized

    key = soft_label_key(teacher, samples.data, samples.items, samples.seed)
    path = Path(cache_dir) / "teacher" / f"{key}.npy"
    if path.is_file():
        print(f"teacher soft labels: cached ({path.name})")
        return np.load(path)
    lm = load_model(teacher, device)
    out = []
    for i in tqdm(range(0, len(samples), batch_size), desc="teacher soft labels", unit="batch", leave=False):
        imgs = fit_size(np.stack([samples.raw(k)[0] for k in range(i, min(i + batch_size, len(samples)))]), lm.size)
        with torch.inference_mode():
            out.append(lm.module(pixel_values=normalized(imgs, lm.data, lm.device)).logits.float().cpu().numpy())
    logits = np.concatenate(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    return logits


def compare_teacher(teacher: str, val: CropSet, student_speed: dict[str, float], student_parameters: int,
                    device: str = "auto") -> dict[str, Any]:
    """The distilled student against its teacher on the same val files: parameters, speed, F1 and AUC."""
    from ..models import load_model
    from .evaluate import choose_threshold, file_metrics, file_scores

    lm = load_model(teacher, device)
    crops = fit_size(val.crops, lm.size)
    t_scores = file_scores(val, predict(lm.module, crops, lm.data, lm.device))
    t_speed = measure_speed(lm.module, crops, lm.data, device)
    return {"teacher": teacher, "teacher_parameters": lm.info["parameters"], "student_parameters": student_parameters,
            "parameters_saved": 1 - student_parameters / lm.info["parameters"],
            "teacher_crops_per_s": t_speed["crops_per_s"], "student_crops_per_s": student_speed["crops_per_s"],
            "time_saved": 1 - t_speed["crops_per_s"] / student_speed["crops_per_s"],
            "teacher_val": {**file_metrics(t_scores), "val_f1_best_threshold": choose_threshold(t_scores)[1]}}


def _probe_features(name: str, value: Any) -> str:
    from ..linear_probe import FEATURES  # transformers: imported when a probe is made

    return checks.choice(name, value, FEATURES)


@dataclass(frozen=True)
class ProbeOptions(CheckedOptions):
    """linear_probe's own options."""

    probe_features: str = option("multi", "linear_probe: multi (stage mean/std + pooled) | stages | head (pooled only)",
                                 _probe_features)
    probe_stages: list = option([1, 2, 3, 4, 5, 6], "linear_probe: the backbone stages whose channel mean and std are "
                                "features", rule(checks.int_list, "stage indices ≥ 0"))
    probe_tau: float = option(0.0, "linear_probe: keep the features whose fake-vs-real effect is at least tau, one "
                              "sign, in every fake kind; 0 keeps all",
                              rule(checks.number, 0.0, 5.0, "a number in [0, 5] (0: every feature; e.g. 0.5: consistent "
                                   "ones only)"))
    probe_k: list = option([], "linear_probe: numbers of the most consistent features to choose from by inner "
                           "leave-one-kind-out, e.g. [4, 8, 16, 32]; [] uses probe_tau",
                           rule(checks.int_list, "numbers of consistent features to choose from by inner "
                                "leave-one-kind-out, e.g. [4, 8, 16, 32]; [] to use probe_tau"))
    probe_c: float = option(0.1, "linear_probe: inverse L2 strength of the logistic regression",
                            rule(checks.positive_number, "a positive number (inverse L2 strength)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.probe_stages and self.probe_features != "head":
            raise ParameterError("probe_stages", [], "stage indices such as [4, 5, 6]",
                                 why=f"probe_features {self.probe_features!r} uses stage statistics")


@register
class LinearProbe(Strategy):
    """Frozen backbone features (stage statistics and/or pooled features, ``probe_features``) averaged per file, and a
    logistic regression fitted in closed form (``lib.training.heads``); ``probe_tau`` > 0 keeps only the features
    that separate every training kind of fake from the reals the same way. Self-blended pseudo-fakes, when asked
    for, are one more kind of fake. No epochs: one fit. Score files with ``aggregate: logit_mean``."""

    name = "linear_probe"
    Options = ProbeOptions
    fixed_fakes = True  # features are computed once per crop: the same pseudo-fake every time
    aggregate = "logit_mean"

    def __init__(self, options: ProbeOptions):
        super().__init__(options)
        self.features, self.stages = options.probe_features, tuple(options.probe_stages)
        self.tau, self.k, self.c = float(options.probe_tau), list(options.probe_k), float(options.probe_c)
        self._memo: dict[str, np.ndarray] = {}  # crop digest -> features, shared by the folds of a run

    def prepare(self, model: nn.Module) -> nn.Module:
        from .. import linear_probe as probe

        if getattr(model, "timm_model", None) is None:
            raise ParameterError("backbone", type(model).__name__, [n for n in backbones.BACKBONES.names()
                                                                     if n.startswith("efficientnet")],
                                 why="linear_probe needs a timm backbone")
        blocks = len(model.timm_model.blocks)
        if any(i >= blocks for i in self.stages):
            raise ParameterError("probe_stages", list(self.stages), f"stage indices in [0, {blocks - 1}]")
        fitted = probe.from_timm(model.timm_model, model.config.architecture, model.config.id2label, self.features,
                                 self.stages)
        return _set_trainable(fitted, lambda n: n.startswith("classifier."))  # what the regression fits

    def fit(self, model: nn.Module, samples: TrainSamples, val: CropSet | None, data: dict[str, Any], settings: Loop,
            base: Loss, extras: np.ndarray | None, on_epoch: Callable | None = None) -> tuple[nn.Module, Any]:
        import time

        import pandas as pd

        from . import heads
        from .evaluate import file_metrics

        t0 = time.perf_counter()
        x_files, files, extra = self.file_features(model, samples, data, settings.device)
        self.k_chosen, self.k_scores = 0, {}
        if self.k:
            self.k_chosen, self.k_scores = heads.choose_k(x_files, files, self.k, self.c, samples.seed, extra)
        x = np.vstack([x_files, extra[0]]) if extra is not None else x_files
        y = np.r_[files["label"].to_numpy(), extra[1]] if extra is not None else files["label"].to_numpy()
        kinds = np.r_[files["kind"].astype(str).to_numpy(), extra[2]] if extra is not None \
            else files["kind"].astype(str).to_numpy()
        head = heads.fit(x, y, kinds, self.tau, self.c, samples.seed, self.k_chosen)
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.zero_()
            model.classifier.weight[1] = torch.from_numpy(head.weight).float()
            model.classifier.bias[1] = float(head.bias)
        self.kept = len(head.kept)
        logit = x @ head.weight + head.bias
        row: dict[str, Any] = {"epoch": 1, "train_loss": float(np.mean(np.logaddexp(0, -(2 * y - 1) * logit))),
                               "kept_features": len(head.kept), "features": int(x.shape[1])}
        if val is not None:
            vx = self.crop_features(model, val.crops, data, settings.device)
            scores = _file_table(val, vx @ head.weight + head.bias)
            row.update(file_metrics(scores))
        row["seconds"] = time.perf_counter() - t0
        if on_epoch is not None:
            on_epoch(row)
        print(f"linear probe: {len(head.kept)} of {x.shape[1]} features kept "
              f"({f'k {self.k_chosen} by inner leave-one-kind-out {self.k_scores}' if self.k else f'tau {self.tau}'}), "
              f"train loss {row['train_loss']:.4f}" + (f", val AUC {row.get('val_auc')}" if val is not None else ""))
        return model, pd.DataFrame([row])

    def crop_features(self, model: nn.Module, crops: np.ndarray, data: dict[str, Any], device: str) -> np.ndarray:
        """The probe's feature vector of every crop: memoised by crop content across the folds of a run, and cached
        on disk (``cache/features/<backbone, features and input size>/``) for later runs."""
        from ..devices import resolve_device
        from ..models import normalized

        dev = resolve_device(device)
        model = model.to(dev).eval()

        def compute(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model.features(normalized(fit_size(batch, int(data["size"])), data, dev)).float().cpu().numpy()

        return cached_rows(self._memo, self._feature_cache(model, data), crops, compute, 64, "probe features")

    def _feature_cache(self, model: nn.Module, data: dict[str, Any]) -> Path:
        """The feature cache folder of this backbone (its weights' digest), feature choice and input data config."""
        import hashlib

        if getattr(self, "_cache_folder", None) is None:
            h = hashlib.blake2b(repr((model.config.architecture, model.config.features, model.config.stages,
                                      sorted(data.items()))).encode(), digest_size=8)
            for tensor in model.backbone.state_dict().values():
                h.update(tensor.detach().cpu().numpy().tobytes())
            self._cache_folder = CACHE / "features" / f"{model.config.architecture}-{self.features}-{h.hexdigest()}"
        return self._cache_folder

    def file_features(self, model: nn.Module, samples: TrainSamples, data: dict[str, Any],
                      device: str) -> tuple[np.ndarray, Any, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """One row per training file (the mean of its crops' features) and the files' table; and, when
        self-blending, one pseudo-fake row per real file (features, labels, kinds), else None."""
        crops = np.stack([samples.raw(k)[0] for k in range(len(samples))])
        feats = self.crop_features(model, crops, data, device)
        owner = np.array([samples.data.file_index[i] for i, _ in samples.items])
        pseudo = np.array([fake for _, fake in samples.items])
        files = samples.data.files
        x = np.stack([feats[(owner == f) & ~pseudo].mean(0) for f in range(len(files))])
        if not pseudo.any():
            return x, files, None
        sources = np.unique(owner[pseudo])
        extra = np.stack([feats[(owner == f) & pseudo].mean(0) for f in sources])
        return x, files, (extra, np.ones(len(sources), int), np.full(len(sources), "self_blend"))

    def report(self, model: nn.Module, val: CropSet | None, speed: dict[str, float], device: str) -> dict[str, Any]:
        return {"features": self.features, "stages": list(self.stages), "tau": self.tau, "c": self.c,
                "k_candidates": self.k, "k_chosen": getattr(self, "k_chosen", None),
                "k_inner_auc": getattr(self, "k_scores", None), "kept_features": getattr(self, "kept", None)}


def cached_rows(memo: dict[str, np.ndarray], folder: Path, crops: np.ndarray,
                compute: Callable[[np.ndarray], np.ndarray], batch: int, desc: str) -> np.ndarray:
    """One feature row per crop (float64): memoised by crop content in ``memo`` (shared by the folds of a run) and
    cached on disk under ``folder`` for later runs; ``compute`` maps a batch of crops to their rows."""
    import hashlib

    keys = [hashlib.blake2b(c.tobytes(), digest_size=16).hexdigest() for c in crops]
    for k in keys:
        if k not in memo and (folder / k[:2] / f"{k}.npy").is_file():
            memo[k] = np.load(folder / k[:2] / f"{k}.npy")
    todo = [i for i, k in enumerate(keys) if k not in memo]
    for start in tqdm(range(0, len(todo), batch), desc=desc, unit="batch", leave=False, disable=len(todo) < 2 * batch):
        idx = todo[start:start + batch]
        for i, row in zip(idx, compute(crops[idx])):
            memo[keys[i]] = row
            _save_atomic(folder / keys[i][:2] / f"{keys[i]}.npy", row)
    return np.stack([memo[k] for k in keys]).astype(np.float64) if keys else np.zeros((0, 0))


def fake_prob(logits: np.ndarray) -> np.ndarray:
    """P(fake) of each crop from its logits (class 1 is fake)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e[:, 1] / e.sum(axis=1)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save through a temporary file renamed into place (concurrent runs never read half a file)."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _file_table(val: CropSet, crop_logits: np.ndarray) -> Any:
    """Per-file P(fake) from per-crop logits of the fake class: sigmoid of their mean (aggregate logit_mean)."""
    import pandas as pd

    mean_logit = pd.Series(crop_logits).groupby(val.file_index).mean().reindex(range(len(val.files))).to_numpy()
    return val.files.assign(prob_fake=1 / (1 + np.exp(-mean_logit)))

