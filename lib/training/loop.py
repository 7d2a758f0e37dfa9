"""The training loop: optimiser, scheduler, the strategy's loss, per-epoch validation by file, early stopping on a
chosen metric, the best weights kept."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..devices import amp_dtype, autocast, resolve_device
from ..errors import ParameterError
from ..faces import resize
from ..models import normalized
from ..progress import tqdm
from .data import CropSet, TrainSamples
from .evaluate import file_metrics, file_scores

SCHEDULERS = ("cosine", "step", "plateau", "none")
MONITORS = ("val_f1", "val_auc", "val_loss", "loo_auc")  # loo_auc: epochs chosen by leave-one-out (job.py)


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
    """Everything the loop needs besides model and data (checked by train.ipynb's schema, ``TRAIN``)."""

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
    keep: str = "best"  # best: early stopping and the best epoch's weights on val | last: every epoch, last weights
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


def predict(model: nn.Module, crops: np.ndarray, data: dict[str, Any], device: torch.device, batch_size: int = 64,
            precision: str = "auto") -> np.ndarray:
    """Logits (N, C) of uint8 crops, in eval mode, batch by batch."""
    model.eval()
    out = []
    with torch.inference_mode(), autocast(device, amp_dtype(device, precision, training=True)):
        for i in range(0, len(crops), batch_size):
            batch = fit_size(crops[i:i + batch_size], int(data["size"]))
            out.append(model(pixel_values=normalized(batch, data, device)).logits.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 2), np.float32)


def _better(monitor: str, new: float | None, best: float | None) -> bool:
    if new is None:
        return False
    return best is None or (new < best if monitor == "val_loss" else new > best)


def _val_loss(logits: np.ndarray, val: CropSet) -> float:
    y = torch.from_numpy(val.labels()).long()
    return float(nn.functional.cross_entropy(torch.from_numpy(logits), y))


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep BatchNorm layers whose weights are frozen in eval mode, so training does not shift their statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(q.requires_grad for q in m.parameters()):
            m.eval()


def _epoch(model: nn.Module, samples: TrainSamples, data: dict[str, Any], loop: Loop, opt: torch.optim.Optimizer,
           sched: Any, loss_fn: Callable, device: torch.device, strategy: Any, extras: np.ndarray | None,
           scaler: Any) -> float:
    model.train()
    freeze_batchnorm(model)
    order = samples.order()
    n_batches = (len(order) + loop.batch_size - 1) // loop.batch_size
    total, seen = 0.0, 0
    opt.zero_grad(set_to_none=True)
    bar = tqdm(range(n_batches), desc=f"epoch {samples.epoch + 1}/{loop.epochs}", unit="batch", leave=False)
    for b in bar:
        ks = order[b * loop.batch_size:(b + 1) * loop.batch_size]
        imgs, ys = samples.batch(ks)
        x, y = normalized(fit_size(imgs, int(data["size"])), data, device), torch.from_numpy(ys).long().to(device)
        extra = torch.from_numpy(extras[ks]).to(device) if extras is not None else None
        with autocast(device, amp_dtype(device, loop.precision, training=True)):
            loss = strategy.loss(model(pixel_values=x).logits.float(), y, extra, loss_fn)
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


def _validate(model: nn.Module, val: CropSet | None, data: dict[str, Any], device: torch.device,
              loop: Loop) -> dict[str, Any]:
    """Val loss, F1 and AUC by file (nothing without a val set)."""
    if val is None:
        return {}
    logits = predict(model, val.crops, data, device, loop.eval_batch_size, loop.precision)
    return {"val_loss": _val_loss(logits, val), **file_metrics(file_scores(val, logits))}


def fit(model: nn.Module, samples: TrainSamples, val: CropSet | None, data: dict[str, Any], loop: Loop,
        loss_fn: Callable, strategy: Any, extras: np.ndarray | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """Train; returns the model and the history (one row per epoch: train loss, val loss, F1, AUC, lr, seconds).

    With ``loop.keep == "best"`` and a val set: early stopping on ``loop.monitor`` and the best epoch's weights.
    With ``keep == "last"`` or no val set: every epoch runs and the last weights are kept (val, when given, is only
    measured: a leave-one-out fold's held-out files). ``strategy.loss`` turns each batch's logits into the loss, with
    the batch's rows of ``extras`` (e.g. a teacher's logits); ``on_epoch`` sees each history row as soon as it exists."""
    import time

    device = resolve_device(loop.device)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ParameterError("strategy", "", why="no parameter is left trainable (check frozen_blocks)")
    opt = torch.optim.AdamW(params, lr=loop.lr, weight_decay=loop.weight_decay)
    sched = _scheduler(opt, loop.scheduler, loop.epochs, -(-len(samples) // (loop.batch_size * loop.grad_accum)))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and loop.precision in ("auto", "fp16"))
    selecting = loop.keep == "best" and val is not None
    best, best_state, since = None, None, 0
    for epoch in range(loop.epochs):
        samples.epoch = epoch
        t0 = time.perf_counter()
        train_loss = _epoch(model, samples, data, loop, opt, sched, loss_fn, device, strategy, extras, scaler)
        row = {"epoch": epoch + 1, "train_loss": train_loss, **_validate(model, val, data, device, loop),
               "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        if loop.scheduler == "step":
            sched.step()
        elif loop.scheduler == "plateau":
            sched.step(row.get("val_loss", train_loss))
        row["best"] = improved = selecting and _better(loop.monitor, row[loop.monitor], best)
        loop.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        _print_epoch(row, improved)
        if not selecting:
            continue
        if improved or best_state is None:
            best, best_state, since = (row[loop.monitor] if improved else best), copy.deepcopy(model.state_dict()), 0
        else:
            since += 1
            if since >= loop.patience:
                print(f"early stop: {loop.monitor} did not improve for {loop.patience} epochs")
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, pd.DataFrame(loop.history)


def _print_epoch(row: dict[str, Any], improved: bool) -> None:
    print(f"epoch {row['epoch']}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                if isinstance(v, float) and k != "seconds")
          + f" ({row['seconds']:.0f} s){'  ← best' if improved else ''}")


def fit_size(crops: np.ndarray, size: int) -> np.ndarray:
    """Crops resized to ``size`` (no copy when they already are): the same faces for a student and its teacher."""
    return crops if crops.shape[1] == size else np.stack([resize(c, size) for c in crops])


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


def counts(model: nn.Module) -> dict[str, int]:
    """Parameters of ``model``, and how many of them train."""
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
