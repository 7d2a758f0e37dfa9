"""train.ipynb's parameters: ``TrainOptions`` (typed, built from the flat papermill keys, the way infer has
``InferOptions``) and ``TRAIN``, the notebook's schema, checked once before any work starts.

The schema is the common options, the crop settings and where preprocessing runs (shared with infer), and every
registered strategy's own options (``strategies.<Name>Options``: ``probe_*``, ``frozen_blocks``, ``lora_*``,
``teacher`` and ``distill_*``). The chosen strategy gets its own options and nothing else; a parameter of another
strategy set away from its default is a ParameterError.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .. import backbones, checks
from ..checks import alternatives, rule
from ..errors import ParameterError
from ..options import CheckedOptions, CropOptions, option
from ..parameters import CROP, DEVICE, EXP, WHERE, Param, Schema, fields_of
from ..paths import MODELS, resolve
from . import augment, data, losses, strategies
from .data import GROUP_BY, TRAIN_ON
from .evaluate import THRESHOLD_RULES
from .loop import MONITORS, SCHEDULERS
from .losses import LOSSES
from .validation import LEAVE_OUT_BY, VALIDATE

CROPS = tuple(p.but(default=8, help="frames sampled per video (photos give one crop)") if p.name == "frames" else p
              for p in CROP)  # train.ipynb's crop settings: 8 frames


def _data(name: str, value: Any) -> list[str]:
    """The dataset folders of ``data`` (patterns expanded), each holding labels.csv."""
    folders = data.expand_folders(list(value)) if isinstance(value, (list, tuple)) else []
    if not folders:
        raise ParameterError(name, value, "a list of dataset folders, each holding labels.csv (patterns such as "
                             "../shared/data/* stand for every matching folder)")
    for folder in folders:
        data.dataset_paths(folder)
    return folders


def _augment(name: str, value: Any) -> list[str]:
    return augment.check(list(value) if isinstance(value, (list, tuple)) else value)


@dataclass(frozen=True)
class TrainOptions(CheckedOptions):
    """Every train.ipynb option but where preprocessing runs and the run's names: the common ones as fields, the crop
    settings (``crop``) and the chosen strategy's own options (``strategy_options``, None when it has none)."""

    data: list = option(["data/sample/fit"], "dataset folders, each with labels.csv (filename,label[,source,kind,"
                        "origin]); media in media/ or beside it", _data)
    train_on: str = option("all", "all: every train-side file | real: real files only, their fakes go to val (needs "
                           "self_blend True)", rule(checks.choice, TRAIN_ON))
    self_blend: bool = option(False, "add a self-blended pseudo-fake (SBI) of every real train crop, new each epoch",
                              checks.boolean)
    validate: str = option("split", "split: val on held-back groups | leave_one_out: one model per held-out fake "
                           "kind/source, scored on a generator it never saw", rule(checks.choice, VALIDATE))
    leave_out_by: str = option("kind", f"leave_one_out: hold out each fake {alternatives(LEAVE_OUT_BY)}",
                               rule(checks.choice, LEAVE_OUT_BY))
    loo_epochs: int = option(0, "leave_one_out: epochs of each fold's model (0 → epochs)",
                             rule(checks.int_at_least, 0, "0 (as epochs) or the epochs of each fold"))
    loo_min_files: int = option(10, "leave_one_out: a held-out group with fewer fakes is reported but left out of mean "
                                "and worst", rule(checks.positive_int, "fakes a held-out group needs to count in mean "
                                                  "and worst"))
    group_by: str = option("origin", f"split unit, never divided between train and val: {alternatives(GROUP_BY)}",
                           rule(checks.choice, GROUP_BY))
    val_fraction: float = option(0.25, "share of groups held back for validation (stratified by label)",
                                 rule(checks.number, 0.05, 0.95, "a number in [0.05, 0.95]"))
    box_reuse: bool = option(False, "fakes cropped with their original's face boxes (labels.csv origin; same frames "
                             "and size, checked on one key frame), else detected", checks.boolean)
    backbone: str = option("efficientnet_lite0", "efficientnet_lite0 | efficientnet_lite1 | efficientnet_lite2 (timm, "
                           "offline ImageNet weights) | resnet_tiny | a hub id | a local model folder",
                           lambda name, value: backbones.check(value))
    strategy: str = option("feature_extractor", alternatives(strategies.STRATEGIES),
                           rule(checks.choice, strategies.STRATEGIES))
    epochs: int = option(3, "passes over the training samples", rule(checks.positive_int, "training epochs"))
    batch_size: int = option(16, "crops per step", rule(checks.positive_int, "crops per step"))
    grad_accum: int = option(1, "steps whose gradients add up before one optimiser update",
                             rule(checks.positive_int, "steps whose gradients are summed before an update"))
    lr: float = option(0.001, "AdamW learning rate", rule(checks.number, 1e-8, 1.0, "a learning rate in (0, 1]"))
    weight_decay: float = option(0.01, "AdamW weight decay", rule(checks.number, 0.0, 1.0, "a number in [0, 1]"))
    scheduler: str = option("cosine", alternatives(SCHEDULERS), rule(checks.choice, SCHEDULERS))
    loss: str = option("cross_entropy", alternatives(LOSSES), rule(checks.choice, LOSSES))
    label_smoothing: float = option(0.0, "cross_entropy/focal label smoothing")  # checked by losses.make_loss
    focal_gamma: float = option(2.0, "focal: focusing exponent (0 → cross-entropy)")  # checked by losses.make_loss
    augment: list = option(["flip", "rotate", "color", "erase", "blur", "jpeg"], "each applied with probability 0.5",
                           _augment)
    monitor: str = option("val_f1", "early stopping and best checkpoint: val_f1 | val_auc | val_loss (files, not "
                          "crops) | loo_auc (leave_one_out: the final model's epochs)", rule(checks.choice, MONITORS))
    patience: int = option(3, "epochs without improvement before stopping",
                           rule(checks.positive_int, "epochs without improvement before stopping"))
    threshold_rule: str = option("max_f1", "the stored threshold: max_f1 (best macro F1 on val or held-out scores) | "
                                 "reals (threshold_reals of the reals called real)",
                                 rule(checks.choice, THRESHOLD_RULES))
    threshold_reals: float = option(0.9, "threshold_rule reals: the share of real files to call real",
                                    rule(checks.number, 0.5, 0.999, "the share of reals to call real, in [0.5, 0.999]"))
    dropout: float = option(0.2, "dropout before the new head (efficientnet_lite0/1/2)",
                            rule(checks.number, 0.0, 0.9, "a number in [0, 0.9]"))
    seed: int = option(42, "seeds the split, samples, augmentations and torch", checks.integer)
    out: str = option("", 'model folder to write; "" → models/<exp>')
    crop: CropOptions = field(default_factory=lambda: CropOptions(**{p.name: p.default for p in CROPS}))
    device: str = DEVICE[0].default
    precision: str = DEVICE[1].default
    strategy_options: Any = None

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "TrainOptions":
        """The typed options of train.ipynb's flat parameters (another strategy's parameter away from its default is
        a ParameterError)."""
        own = {f.name: p[f.name] for f in fields(cls) if "help" in f.metadata}
        return cls(**own, crop=CropOptions(**{c.name: p[c.name] for c in CROPS}), device=p["device"],
                   precision=p["precision"], strategy_options=strategies.own_options(p["strategy"], p))


def _strategy_params() -> tuple[Param, ...]:
    """Every registered strategy's own parameters, in registry order; each is checked when the chosen strategy's
    options are made (another strategy's must stay at its default)."""
    found = {p.name: p.but(check=None) for name in strategies.STRATEGIES
             for p in (fields_of(strategies.STRATEGIES.get(name).Options) if strategies.STRATEGIES.get(name).Options
                       else ())}
    return tuple(found.values())


def _resolve(p: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """train.ipynb's resolved values: the options, the strategy object, dataset paths, where crops are made, names."""
    if p["monitor"] == "loo_auc" and p["validate"] != "leave_one_out":
        raise ParameterError("monitor", p["monitor"], [m for m in MONITORS if m != "loo_auc"],
                             why="loo_auc needs validate: leave_one_out")
    if p["train_on"] == "real" and not p["self_blend"]:
        raise ParameterError("self_blend", p["self_blend"], "True", why="train_on 'real' has no fakes to learn from "
                             "without self-blended pseudo-fakes")
    losses.make_loss(p["loss"], p["label_smoothing"], p["focal_gamma"])
    options = TrainOptions.from_params(p)
    return {"options": options, "strategy": strategies.make(options.strategy, options.strategy_options),
            "datasets": [data.dataset_paths(f) for f in v["data"]], "folders": v["data"], "workers": v["workers"],
            "cluster": v["cluster"], "file_timeout": v["file_timeout"], "cache_dir": v["cache_dir"], "exp": v["exp"],
            "out": resolve(p["out"]) if p["out"] else MODELS / v["exp"]}


def _names(*names: str) -> tuple[Param, ...]:
    return fields_of(TrainOptions, *names)


TRAIN = Schema("train.ipynb", (
    *_names("data", "train_on", "self_blend", "validate", "leave_out_by", "loo_epochs", "loo_min_files", "group_by",
            "val_fraction"), *CROPS, *WHERE, *_names("box_reuse", "backbone", "strategy"), *_strategy_params(),
    *_names("epochs", "batch_size", "grad_accum", "lr", "weight_decay", "scheduler", "loss", "label_smoothing",
            "focal_gamma", "augment", "monitor", "patience", "threshold_rule", "threshold_reals", "dropout", "seed"),
    *DEVICE, *_names("out"), EXP.but(default="train001", help="run name: submissions/<exp>/ and the EXPERIMENTS.md "
                                                              "row")), _resolve)
