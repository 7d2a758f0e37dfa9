"""Training strategies as registered objects — feature_extractor, fine_tune, lora, distill.

A strategy is made from the run's parameters (checking the ones it owns) and owns everything that sets it apart:
which parameters train (``prepare``), the crop size and sample needs, extra per-sample inputs (``extras``: a
teacher's logits), the loss, how the trained model becomes a plain Hugging Face model (``finalize``) and what it
adds to the run's record (``report``). The loop and the notebook call these and nothing else, so a new strategy is
one class here plus its test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import backbones, checks
from ..errors import ParameterError
from ..paths import CACHE
from ..registry import Registry
from .data import CropSet, TrainSamples
from .loop import Loop, fit, fit_size, measure_speed, predict
from .losses import Loss, distill_loss


class Strategy:
    """Train every parameter; the base of the others (``fine_tune`` with no frozen blocks)."""

    name = ""
    fixed_fakes = False  # the same pseudo-fakes every epoch (needed when extras are computed once per sample)

    def __init__(self, p: dict[str, Any]):
        self.p = p
        if p.get("teacher"):
            raise ParameterError("teacher", p["teacher"], "''", why="a teacher is used only by strategy 'distill'")

    def crop_size(self, model_size: int) -> int:
        """The size crops are cached at."""
        return int(model_size)

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

    def report(self, model: nn.Module, val: CropSet, speed: dict[str, float], device: str) -> dict[str, Any] | None:
        """What the strategy adds to the run's record (None: nothing)."""
        return None


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: register a strategy under its ``name``."""
    return STRATEGIES.register(cls.name)(cls)


def make(name: str, p: dict[str, Any]) -> Strategy:
    """The strategy ``name`` for the run's parameters ``p`` (an unknown name lists the valid ones)."""
    return STRATEGIES.get(name)(p)


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


@register
class FineTune(Strategy):
    """Every parameter but those of ``frozen_blocks``."""

    name = "fine_tune"

    def prepare(self, model: nn.Module) -> nn.Module:
        frozen = frozen_names(model, list(self.p.get("frozen_blocks") or []))
        return _set_trainable(model, lambda n: n not in frozen)


@register
class Lora(Strategy):
    """PEFT LoRA adapters on ``lora_targets`` (default: the backbone's own choice) and the head; merged when saved."""

    name = "lora"

    def prepare(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        p = self.p
        targets = list(p["lora_targets"]) if p.get("lora_targets") else backbones.lora_targets(model)
        config = LoraConfig(r=int(p["lora_rank"]), lora_alpha=float(p["lora_alpha"]),
                            lora_dropout=float(p["lora_dropout"]), target_modules=targets,
                            modules_to_save=[backbones.head_name(model)])
        return get_peft_model(model, config)

    def finalize(self, model: nn.Module) -> nn.Module:
        """The LoRA adapters merged into the weights: inference needs no extra step."""
        return super().finalize(model.merge_and_unload())


@register
class Distill(FineTune):
    """A student trained like fine_tune on α·hard loss + (1−α)·T²·KL against a teacher's cached soft labels."""

    name = "distill"
    fixed_fakes = True  # the teacher's logits are computed once, on the same pseudo-fakes every epoch

    def __init__(self, p: dict[str, Any]):
        if not p.get("teacher"):
            raise ParameterError("teacher", p.get("teacher"), "a trained model folder or hub id",
                                 why="strategy 'distill' needs a teacher")
        self.p, self.teacher = p, checks.model_source(p["teacher"], "teacher")
        self.alpha = checks.number("distill_alpha", p["distill_alpha"], 0.0, 1.0, "a number in [0, 1]")
        self.temperature = checks.positive_number("distill_temperature", p["distill_temperature"])

    def crop_size(self, model_size: int) -> int:
        """The teacher's size when it is bigger: it sees its own resolution, the student the same crops resized."""
        return max(int(model_size), int(backbones.resolve_data_config(self.teacher)["size"]))

    def extras(self, samples: TrainSamples, device: str) -> np.ndarray:
        return teacher_logits(self.teacher, samples, CACHE, device=device)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, extra: torch.Tensor | None, base: Loss) -> torch.Tensor:
        return distill_loss(logits, extra, y, self.alpha, self.temperature, base)

    def report(self, model: nn.Module, val: CropSet, speed: dict[str, float], device: str) -> dict[str, Any]:
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
    from ..models import load_model, pixels

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
            out.append(lm.module(pixel_values=pixels(imgs, lm.data, lm.device)).logits.float().cpu().numpy())
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
