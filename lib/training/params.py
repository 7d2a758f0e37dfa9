"""train.ipynb's parameters, checked once before any work starts (``lib.settings.TRAIN_KEYS`` names them)."""

from __future__ import annotations

from typing import Any

from .. import backbones, checks
from ..devices import DEVICES, PRECISIONS
from ..errors import ParameterError
from ..options import PrepSettings
from ..paths import MODELS, resolve
from . import augment, data, evaluate, losses, strategies, validation
from .loop import MONITORS, SCHEDULERS


def _numbers(p: dict[str, Any]) -> None:
    for name, what in (("epochs", "training epochs"), ("batch_size", "crops per step"),
                       ("grad_accum", "steps whose gradients are summed before an update"),
                       ("patience", "epochs without improvement before stopping"), ("lora_rank", "LoRA rank")):
        checks.positive_int(name, p[name], what)
    checks.number("val_fraction", p["val_fraction"], 0.05, 0.95, "a number in [0.05, 0.95]")
    checks.number("lr", p["lr"], 1e-8, 1.0, "a learning rate in (0, 1]")
    checks.number("weight_decay", p["weight_decay"], 0.0, 1.0, "a number in [0, 1]")
    checks.number("lora_alpha", p["lora_alpha"], 1e-6, 1e6, "a positive number")
    checks.number("lora_dropout", p["lora_dropout"], 0.0, 0.9, "a number in [0, 0.9]")
    checks.number("dropout", p["dropout"], 0.0, 0.9, "a number in [0, 0.9]")
    checks.number("threshold_reals", p["threshold_reals"], 0.5, 0.999, "the share of reals to call real, in [0.5, 0.999]")
    checks.integer("seed", p["seed"])
    if checks.integer("loo_epochs", p["loo_epochs"], "0 (as epochs) or the epochs of each fold") < 0:
        raise ParameterError("loo_epochs", p["loo_epochs"], "0 (as epochs) or the epochs of each fold")
    checks.positive_int("loo_min_files", p["loo_min_files"], "fakes a held-out group needs to count in mean and worst")


def _choices(p: dict[str, Any]) -> None:
    for name, valid in (("train_on", data.TRAIN_ON), ("group_by", data.GROUP_BY), ("scheduler", SCHEDULERS),
                        ("monitor", MONITORS), ("device", DEVICES), ("precision", PRECISIONS),
                        ("validate", validation.VALIDATE), ("leave_out_by", validation.LEAVE_OUT_BY),
                        ("threshold_rule", evaluate.THRESHOLD_RULES)):
        checks.choice(name, p[name], valid)
    if p["monitor"] == "loo_auc" and p["validate"] != "leave_one_out":
        raise ParameterError("monitor", p["monitor"], [m for m in MONITORS if m != "loo_auc"],
                             why="loo_auc needs validate: leave_one_out")
    checks.boolean("self_blend", p["self_blend"])
    checks.boolean("box_reuse", p["box_reuse"])
    if p["train_on"] == "real" and not p["self_blend"]:
        raise ParameterError("self_blend", p["self_blend"], "True", why="train_on 'real' has no fakes to learn from "
                             "without self-blended pseudo-fakes")


def check_params(p: dict[str, Any]) -> dict[str, Any]:
    """Check every train.ipynb parameter; returns resolved values (the strategy object among them)."""
    folders = data.expand_folders(list(p["data"])) if isinstance(p["data"], (list, tuple)) else []
    if not folders:
        raise ParameterError("data", p["data"], "a list of dataset folders, each holding labels.csv (patterns such "
                             "as ../shared/data/* stand for every matching folder)")
    datasets = [data.dataset_paths(f) for f in folders]
    PrepSettings.from_params(p, 224)  # the crop settings check themselves
    _choices(p)
    _numbers(p)
    augment.check(list(p["augment"]) if isinstance(p["augment"], (list, tuple)) else p["augment"])
    losses.make_loss(p["loss"], p["label_smoothing"], p["focal_gamma"])
    if not isinstance(p["frozen_blocks"], (list, tuple)):
        raise ParameterError("frozen_blocks", p["frozen_blocks"], "a list of block indices and/or 'stem'")
    checks.names("lora_targets", p["lora_targets"], "a list of module names, or [] for the default")
    strategy = strategies.make(p["strategy"], p)
    backbones.check(p["backbone"])
    exp = checks.exp_name(p["exp"])
    return {"datasets": datasets, "folders": list(folders), "workers": checks.workers(p["workers"]),
            "cluster": checks.cluster(p["cluster"]), "file_timeout": checks.file_timeout(p["file_timeout"]),
            "cache_dir": resolve(p["cache_dir"]) if p["cache_dir"] else None, "strategy": strategy, "exp": exp,
            "out": resolve(p["out"]) if p["out"] else MODELS / exp}
