"""Training strategies by name — feature_extractor, fine_tune, lora, distill — and the model folder a run writes.

A strategy takes a freshly built two-class model (id2label {0: real, 1: fake}) and returns the module to train, with
``requires_grad`` set; ``finalize`` turns it back into a plain Hugging Face model that ``models.load_model`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import backbones
from .errors import ParameterError
from .models import resolve_data_config, resolve_source
from .registry import Registry

ID2LABEL = {0: "real", 1: "fake"}
# Built in, no download; anything else is a hub id or a local model folder. resnet_tiny starts from random weights:
# it is a small, fast distillation student (about 0.5 M parameters at 112 px), not a backbone to fine-tune.
OFFLINE_BACKBONES = ("efficientnet_lite0", "resnet_tiny")
_IMAGENET = {"mean": backbones.IMAGENET_MEAN, "std": backbones.IMAGENET_STD, "rescale": 1 / 255}
HEAD_NAMES = ("classifier", "head", "heads", "fc", "score")
TRAINING_FILE = "training.json"  # written into the model folder: the training run, its threshold and val metrics

Strategy = Callable[[nn.Module, dict[str, Any]], nn.Module]
STRATEGIES: Registry[Strategy] = Registry("strategy")


def build_model(backbone: str, dropout: float = 0.2) -> tuple[nn.Module, dict[str, Any]]:
    """A two-class classifier on ``backbone`` with a new head, and its preprocessing (size, mean, std, rescale)."""
    if backbone == "efficientnet_lite0":
        return backbones.from_imagenet(id2label=ID2LABEL, dropout=dropout), {"size": 224, **_IMAGENET}
    from transformers import AutoModelForImageClassification, ResNetConfig

    if backbone == "resnet_tiny":
        config = ResNetConfig(embedding_size=24, hidden_sizes=[24, 48, 96, 192], depths=[1, 1, 2, 1],
                              layer_type="basic", id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()})
        return AutoModelForImageClassification.from_config(config), {"size": 112, **_IMAGENET}

    source = check_backbone(backbone)
    model = AutoModelForImageClassification.from_pretrained(
        source, num_labels=2, id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()},
        ignore_mismatched_sizes=True)
    return model, resolve_data_config(source)


def check_backbone(backbone: str) -> str:
    """A built-in backbone name, or the resolved hub id / local folder of any Hugging Face image classifier."""
    if backbone in OFFLINE_BACKBONES:
        return backbone
    try:
        return resolve_source(backbone)
    except ParameterError as e:
        raise ParameterError("backbone", backbone, [*OFFLINE_BACKBONES, "a hub id", "a local model folder"],
                             why=e.args[0]) from e


def head_parameters(model: nn.Module) -> list[str]:
    """Names of the classification head's parameters (a top-level ``classifier``/``head``/``fc`` module)."""
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), nn.Module):
            return [f"{name}.{n}" for n, _ in getattr(model, name).named_parameters()]
    raise ParameterError("strategy", "feature_extractor", why=f"{type(model).__name__} has no head module named one of "
                         f"{HEAD_NAMES}; use fine_tune with frozen_blocks instead")


def blocks(model: nn.Module) -> list[str]:
    """Module names of the backbone's repeated blocks: the longest ModuleList (MBConv blocks, transformer layers)."""
    lists = [(len(m), name) for name, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ParameterError("frozen_blocks", None, why=f"{type(model).__name__} has no list of blocks to freeze")
    _, name = max(lists)
    return [f"{name}.{i}" for i in range(len(model.get_submodule(name)))]


def _block_of(param: str, names: list[str]) -> int | None:
    return next((i for i, b in enumerate(names) if param.startswith(b + ".")), None)


def frozen_names(model: nn.Module, frozen_blocks: list[Any]) -> set[str]:
    """Parameters frozen by ``frozen_blocks``: block indices (negative from the end) and/or "stem" (before block 0)."""
    names = blocks(model)
    params = [n for n, _ in model.named_parameters()]
    first = next(i for i, n in enumerate(params) if _block_of(n, names) is not None)
    frozen: set[str] = set()
    for b in frozen_blocks:
        if b == "stem":
            frozen |= set(params[:first])
        elif isinstance(b, int) and -len(names) <= b < len(names):
            frozen |= {n for n in params if _block_of(n, names) == b % len(names)}
        else:
            raise ParameterError("frozen_blocks", b, f"'stem' or block indices in [{-len(names)}, {len(names) - 1}]")
    return frozen


def _set_trainable(model: nn.Module, trainable: Callable[[str], bool]) -> nn.Module:
    for n, p in model.named_parameters():
        p.requires_grad_(trainable(n))
    return model


@STRATEGIES.register("feature_extractor")
def _feature_extractor(model: nn.Module, p: dict[str, Any]) -> nn.Module:
    head = set(head_parameters(model))
    return _set_trainable(model, lambda n: n in head)


@STRATEGIES.register("fine_tune")
def _fine_tune(model: nn.Module, p: dict[str, Any]) -> nn.Module:
    frozen = frozen_names(model, list(p.get("frozen_blocks") or []))
    return _set_trainable(model, lambda n: n not in frozen)


def lora_targets(model: nn.Module, targets: Any) -> Any:
    """LoRA target modules: the given names, or when none are given the kit EfficientNet's 1×1 convolutions or a
    transformer's query/value projections."""
    if targets:
        return list(targets)
    if isinstance(model, backbones.KitEfficientNetLiteForImageClassification):
        return r".*\.(_expand_conv|_project_conv|_conv_head)"
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    for pair in (["query", "value"], ["q_proj", "v_proj"], ["qkv"]):
        if set(pair) <= names:
            return pair
    raise ParameterError("lora_targets", targets, "a list of module names", why=f"no default for {type(model).__name__}")


@STRATEGIES.register("lora")
def _lora(model: nn.Module, p: dict[str, Any]) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    head = head_parameters(model)[0].split(".")[0]
    config = LoraConfig(r=int(p["lora_rank"]), lora_alpha=float(p["lora_alpha"]), lora_dropout=float(p["lora_dropout"]),
                        target_modules=lora_targets(model, p["lora_targets"]), modules_to_save=[head])
    return get_peft_model(model, config)


@STRATEGIES.register("distill")
def _distill(model: nn.Module, p: dict[str, Any]) -> nn.Module:
    return _fine_tune(model, p)  # the student trains like fine_tune; the loss (train.py) brings in the teacher


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep BatchNorm layers whose weights are frozen in eval mode, so training does not shift their statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(q.requires_grad for q in m.parameters()):
            m.eval()


def finalize(model: nn.Module) -> nn.Module:
    """A plain Hugging Face model: LoRA adapters merged into the weights (inference needs no extra step)."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return _set_trainable(model, lambda n: True).eval()


def counts(model: nn.Module) -> dict[str, int]:
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def save(model: nn.Module, out: Path, data: dict[str, Any], training: dict[str, Any]) -> Path:
    """Write the model folder: weights and config, preprocessor_config.json, training.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    backbones.write_preprocessor_config(out, int(data["size"]), data["mean"], data["std"])
    (out / TRAINING_FILE).write_text(json.dumps(training, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def read_training(model_dir: str | Path) -> dict[str, Any] | None:
    """The training record a kit-trained model folder carries (None for other models)."""
    p = Path(model_dir) / TRAINING_FILE
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def check_saved(out: Path, model: nn.Module, crops: Any, data: dict[str, Any]) -> float:
    """Reload ``out`` with the inference loader and return the largest |ΔP(fake)| against ``model`` on ``crops``."""
    from .models import load_model, pixels, predict_crops

    lm = load_model(str(out), device="cpu", precision="fp32")
    model = model.to("cpu").eval()
    with torch.inference_mode():
        ref = torch.softmax(model(pixel_values=pixels(crops, data)).logits.float(), -1)[:, 1].numpy()
    return float(abs(predict_crops(lm, crops) - ref).max())
