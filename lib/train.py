"""The training loop: optimiser, scheduler, loss or distillation, per-epoch validation by file, early stopping on a
chosen metric, the best weights kept, a threshold chosen on val, curves and a per-kind report."""

from __future__ import annotations

import copy
import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import augment, losses, strategies, traindata
from .errors import ParameterError
from .experiments import check_exp
from .metrics import macro_f1
from .models import DEVICES, PRECISIONS, pixels, resolve_device, resolve_source
from .paths import CACHE, MODELS, resolve
from .pipeline import resolve_workers
from .progress import tqdm
from .settings import positive_int, number, prep_settings
from .traindata import CropSet, TrainSamples

SCHEDULERS = ("cosine", "step", "plateau", "none")
MONITORS = ("val_f1", "val_auc", "val_loss")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; deterministic algorithms where torch has them (warn, not fail, elsewhere)."""
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (read when CUDA starts)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


@dataclass
class Loop:
    """Everything the loop needs besides model and data (checked by ``check_params``)."""

    epochs: int = 3
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    scheduler: str = "cosine"
    monitor: str = "val_f1"
    patience: int = 3
    precision: str = "auto"  # fp16/bf16 autocast on CUDA; fp32 on CPU
    device: str = "auto"
    eval_batch_size: int = 64
    history: list[dict[str, Any]] = field(default_factory=list)


def _scheduler(opt: torch.optim.Optimizer, name: str, epochs: int, steps: int) -> Any:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.3, patience=1)
    if name == "none":
        return None
    raise ParameterError("scheduler", name, SCHEDULERS)


def _autocast(device: torch.device, precision: str) -> Any:
    if device.type != "cuda" or precision == "fp32":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def predict(model: nn.Module, crops: np.ndarray, data: dict[str, Any], device: torch.device, batch_size: int = 64,
            precision: str = "auto") -> np.ndarray:
    """Logits (N, C) of uint8 crops, in eval mode, batch by batch."""
    model.eval()
    out = []
    with torch.inference_mode(), _autocast(device, precision):
        for i in range(0, len(crops), batch_size):
            batch = fit_size(crops[i:i + batch_size], int(data["size"]))
            out.append(model(pixel_values=pixels(batch, data, device)).logits.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 2), np.float32)


def file_scores(val: CropSet, logits: np.ndarray) -> pd.DataFrame:
    """Per-file P(fake): the mean over the file's crops (as infer's default aggregation), with label and kind."""
    prob = torch.softmax(torch.from_numpy(logits), -1)[:, 1].numpy()
    per_file = pd.Series(prob).groupby(val.file_index).mean()
    return val.files.assign(prob_fake=per_file.reindex(range(len(val.files))).to_numpy())


def file_metrics(scores: pd.DataFrame, threshold: float = 0.5) -> dict[str, float | None]:
    """Macro F1 at ``threshold`` and AUC over files."""
    from sklearn.metrics import roc_auc_score

    y, p = scores["label"].to_numpy(), scores["prob_fake"].to_numpy()
    auc = float(roc_auc_score(y, p)) if len(set(y)) == 2 else None
    return {"val_f1": macro_f1(y, (p >= threshold).astype(int)), "val_auc": auc}


def choose_threshold(scores: pd.DataFrame) -> tuple[float, float]:
    """(threshold, macro F1) maximising file-level macro F1 on val, ties broken towards 0.5."""
    from .ensemble import tune_threshold

    return tune_threshold(scores["prob_fake"].to_numpy(), scores["label"].to_numpy(), default=0.5)


def kind_report(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per kind: files, accuracy at ``threshold``, mean P(fake); for fake kinds also AUC and macro F1 against all
    the real val files (a fake kind alone has one class)."""
    from sklearn.metrics import roc_auc_score

    real = scores[scores["label"] == 0]
    rows = []
    for kind, g in scores.groupby("kind", sort=True):
        pred = (g["prob_fake"] >= threshold).astype(int)
        row = {"kind": kind, "label": int(g["label"].iloc[0]), "files": len(g),
               "accuracy": float((pred == g["label"]).mean()), "mean_prob_fake": float(g["prob_fake"].mean())}
        if row["label"] == 1 and len(real):
            both = pd.concat([real, g])
            row["auc_vs_real"] = float(roc_auc_score(both["label"], both["prob_fake"]))
            row["f1_vs_real"] = macro_f1(both["label"].to_numpy(), (both["prob_fake"] >= threshold).astype(int).to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def _better(monitor: str, new: float | None, best: float | None) -> bool:
    if new is None:
        return False
    return best is None or (new < best if monitor == "val_loss" else new > best)


def _val_loss(logits: np.ndarray, val: CropSet) -> float:
    y = torch.from_numpy(val.labels()).long()
    return float(nn.functional.cross_entropy(torch.from_numpy(logits), y))


def _step_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable,
               teacher_logits: torch.Tensor | None, distill: dict[str, float]) -> torch.Tensor:
    logits = model(pixel_values=x).logits.float()
    if teacher_logits is None:
        return loss_fn(logits, y)
    return losses.distill_loss(logits, teacher_logits, y, distill["alpha"], distill["temperature"], loss_fn)


def _epoch(model: nn.Module, samples: TrainSamples, data: dict[str, Any], loop: Loop, opt: torch.optim.Optimizer,
           sched: Any, loss_fn: Callable, device: torch.device, teacher: np.ndarray | None,
           distill: dict[str, float], scaler: Any) -> float:
    model.train()
    strategies.freeze_batchnorm(model)
    order = samples.order()
    n_batches = (len(order) + loop.batch_size - 1) // loop.batch_size
    total, seen = 0.0, 0
    opt.zero_grad(set_to_none=True)
    bar = tqdm(range(n_batches), desc=f"epoch {samples.epoch + 1}/{loop.epochs}", unit="batch", leave=False)
    for b in bar:
        ks = order[b * loop.batch_size:(b + 1) * loop.batch_size]
        imgs, ys = samples.batch(ks)
        x, y = pixels(fit_size(imgs, int(data["size"])), data, device), torch.from_numpy(ys).long().to(device)
        t = torch.from_numpy(teacher[ks]).to(device) if teacher is not None else None
        with _autocast(device, loop.precision):
            loss = _step_loss(model, x, y, loss_fn, t, distill)
        scaler.scale(loss / loop.grad_accum).backward()
        if (b + 1) % loop.grad_accum == 0 or b + 1 == n_batches:
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            if loop.scheduler == "cosine":
                sched.step()
        total, seen = total + float(loss.detach()) * len(ks), seen + len(ks)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    return total / max(seen, 1)


def fit(model: nn.Module, samples: TrainSamples, val: CropSet, data: dict[str, Any], loop: Loop,
        loss_fn: Callable, teacher: np.ndarray | None = None, distill: dict[str, float] | None = None
        ) -> tuple[nn.Module, pd.DataFrame]:
    """Train with early stopping on ``loop.monitor``; returns the model holding the best epoch's weights, and the
    history (one row per epoch: train loss, val loss, F1, AUC, learning rate, seconds)."""
    import time

    device = resolve_device(loop.device)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ParameterError("strategy", "", why="no parameter is left trainable (check frozen_blocks)")
    opt = torch.optim.AdamW(params, lr=loop.lr, weight_decay=loop.weight_decay)
    steps = -(-len(samples) // (loop.batch_size * loop.grad_accum))
    sched = _scheduler(opt, loop.scheduler, loop.epochs, steps)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and loop.precision in ("auto", "fp16"))
    best, best_state, since = None, None, 0
    for epoch in range(loop.epochs):
        samples.epoch = epoch
        t0 = time.perf_counter()
        train_loss = _epoch(model, samples, data, loop, opt, sched, loss_fn, device, teacher, distill or {}, scaler)
        logits = predict(model, val.crops, data, device, loop.eval_batch_size, loop.precision)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": _val_loss(logits, val),
               **file_metrics(file_scores(val, logits)), "lr": opt.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        if loop.scheduler == "step":
            sched.step()
        elif loop.scheduler == "plateau":
            sched.step(row["val_loss"])
        improved = _better(loop.monitor, row[loop.monitor], best)
        row["best"] = improved
        loop.history.append(row)
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                  if isinstance(v, float) and k != "seconds")
              + f" ({row['seconds']:.0f} s){'  ← best' if improved else ''}")
        if improved or best_state is None:
            best, best_state, since = (row[loop.monitor] if improved else best), copy.deepcopy(model.state_dict()), 0
        else:
            since += 1
            if since >= loop.patience:
                print(f"early stop: {loop.monitor} did not improve for {loop.patience} epochs")
                break
    model.load_state_dict(best_state)
    return model, pd.DataFrame(loop.history)


def crop_size(model_size: int, teacher: str | None) -> int:
    """The size crops are cached at: the model's, or a distillation teacher's when that is bigger (the teacher sees
    its own resolution; the student gets the same crops resized down)."""
    from .models import resolve_data_config

    return max(int(model_size), int(resolve_data_config(teacher)["size"])) if teacher else int(model_size)


def fit_size(crops: np.ndarray, size: int) -> np.ndarray:
    """Crops resized to ``size`` (no copy when they already are): the same faces for a student and its teacher."""
    from .faces import resize

    return crops if crops.shape[1] == size else np.stack([resize(c, size) for c in crops])


def teacher_logits(teacher: str, samples: TrainSamples, cache_dir: Path = CACHE, batch_size: int = 64,
                   device: str = "auto") -> np.ndarray:
    """The teacher's logits on every (un-augmented) training sample, computed once and cached on disk."""
    from .models import load_model
    from .traindata import soft_label_key

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


def plot_curves(history: pd.DataFrame):  # -> matplotlib Figure
    """Loss (train, val) and val F1/AUC by epoch."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(history["epoch"], history["train_loss"], "o-", label="train loss")
    a.plot(history["epoch"], history["val_loss"], "o-", label="val loss (CE)")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(history["epoch"], history["val_f1"], "o-", label="val macro F1 (files, threshold 0.5)")
    if history["val_auc"].notna().any():
        b.plot(history["epoch"], history["val_auc"], "o-", label="val AUC (files)")
    b.set_ylim(0, 1.02)
    b.set_xlabel("epoch")
    b.legend()
    fig.tight_layout()
    return fig


def measure_speed(model: nn.Module, crops: np.ndarray, data: dict[str, Any], device: str = "auto",
                  batch_size: int = 32, n: int = 64) -> dict[str, float]:
    """Forward throughput on up to ``n`` crops (one warm-up batch first), in crops per second."""
    import time

    dev = resolve_device(device)
    crops = fit_size(crops, int(data["size"]))
    sample = np.resize(crops, (n, *crops.shape[1:])) if len(crops) else crops
    model = model.to(dev)
    predict(model, sample[:batch_size], data, dev, batch_size)
    t = time.perf_counter()
    predict(model, sample, data, dev, batch_size)
    seconds = time.perf_counter() - t
    return {"crops": int(len(sample)), "seconds": seconds, "crops_per_s": len(sample) / seconds, "device": str(dev)}


def compare_teacher(teacher: str, val: CropSet, student_speed: dict[str, float], student_parameters: int,
                    device: str = "auto") -> dict[str, Any]:
    """The distilled student against its teacher on the same val files: parameters, speed, F1 and AUC."""
    from .models import load_model

    lm = load_model(teacher, device)
    crops = fit_size(val.crops, lm.size)
    t_scores = file_scores(val, predict(lm.module, crops, lm.data, lm.device))
    t_speed = measure_speed(lm.module, crops, lm.data, device)
    return {"teacher": teacher, "teacher_parameters": lm.info["parameters"], "student_parameters": student_parameters,
            "parameters_saved": 1 - student_parameters / lm.info["parameters"],
            "teacher_crops_per_s": t_speed["crops_per_s"], "student_crops_per_s": student_speed["crops_per_s"],
            "time_saved": 1 - t_speed["crops_per_s"] / student_speed["crops_per_s"],
            "teacher_val": {**file_metrics(t_scores), "val_f1_best_threshold": choose_threshold(t_scores)[1]}}


def _train_numbers(p: dict[str, Any]) -> None:
    for name, what in (("epochs", "training epochs"), ("batch_size", "crops per step"),
                       ("grad_accum", "steps whose gradients are summed before an update"),
                       ("patience", "epochs without improvement before stopping"), ("lora_rank", "LoRA rank")):
        positive_int(name, p[name], what)
    number("val_fraction", p["val_fraction"], 0.05, 0.95, "a number in [0.05, 0.95]")
    number("lr", p["lr"], 1e-8, 1.0, "a learning rate in (0, 1]")
    number("weight_decay", p["weight_decay"], 0.0, 1.0, "a number in [0, 1]")
    number("lora_alpha", p["lora_alpha"], 1e-6, 1e6, "a positive number")
    number("lora_dropout", p["lora_dropout"], 0.0, 0.9, "a number in [0, 0.9]")
    number("dropout", p["dropout"], 0.0, 0.9, "a number in [0, 0.9]")
    if isinstance(p["seed"], bool) or not isinstance(p["seed"], int):
        raise ParameterError("seed", p["seed"], "an integer")


def check_params(p: dict[str, Any]) -> dict[str, Any]:
    """Check every train.ipynb parameter before any work starts; returns resolved values.

    Here, not in settings.py: the scoring-server bundle copies settings.py and must not pull in the training code.
    """
    folders = p["data"] if isinstance(p["data"], (list, tuple)) else []
    if not folders:
        raise ParameterError("data", p["data"], "a list of dataset folders, each holding labels.csv")
    datasets = [traindata.dataset_paths(f) for f in folders]
    prep_settings(p, 224)  # validates frames, margin, detector, widths
    strategies.STRATEGIES.get(p["strategy"])
    for name, valid in (("train_on", traindata.TRAIN_ON), ("group_by", traindata.GROUP_BY),
                        ("scheduler", SCHEDULERS), ("monitor", MONITORS), ("device", DEVICES),
                        ("precision", PRECISIONS)):
        if p[name] not in valid:
            raise ParameterError(name, p[name], valid)
    if not isinstance(p["self_blend"], bool):
        raise ParameterError("self_blend", p["self_blend"], "True or False")
    if p["train_on"] == "real" and not p["self_blend"]:
        raise ParameterError("self_blend", p["self_blend"], "True", why="train_on 'real' has no fakes to learn from without "
                             "self-blended pseudo-fakes")
    _train_numbers(p)
    augment.check(list(p["augment"]) if isinstance(p["augment"], (list, tuple)) else p["augment"])
    losses.make_loss(p["loss"], p["label_smoothing"], p["focal_gamma"])
    if not isinstance(p["frozen_blocks"], (list, tuple)):
        raise ParameterError("frozen_blocks", p["frozen_blocks"], "a list of block indices and/or 'stem'")
    if not isinstance(p["lora_targets"], (list, tuple)) or not all(isinstance(t, str) for t in p["lora_targets"]):
        raise ParameterError("lora_targets", p["lora_targets"], "a list of module names, or [] for the default")
    teacher = _check_teacher(p)
    strategies.check_backbone(p["backbone"])
    exp = check_exp(p["exp"])
    out = resolve(p["out"]) if p["out"] else MODELS / exp
    return {"datasets": datasets, "folders": list(folders), "workers": resolve_workers(p["workers"]),
            "cache_dir": resolve(p["cache_dir"]) if p["cache_dir"] else None, "teacher": teacher, "exp": exp,
            "out": out}


def _check_teacher(p: dict[str, Any]) -> str | None:
    if p["strategy"] != "distill":
        if p["teacher"]:
            raise ParameterError("teacher", p["teacher"], "''", why="a teacher is used only by strategy 'distill'")
        return None
    if not p["teacher"]:
        raise ParameterError("teacher", p["teacher"], "a trained model folder or hub id",
                             why="strategy 'distill' needs a teacher")
    number("distill_alpha", p["distill_alpha"], 0.0, 1.0, "a number in [0, 1]")
    if isinstance(p["distill_temperature"], bool) or not isinstance(p["distill_temperature"], (int, float)) \
            or p["distill_temperature"] <= 0:
        raise ParameterError("distill_temperature", p["distill_temperature"], "a positive number")
    return resolve_source(p["teacher"])
