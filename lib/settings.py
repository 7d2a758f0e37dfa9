"""Notebook parameters: collect them, reject unknown names, and check every value before any work starts."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from datetime import datetime

import yaml

from . import aggregate, ensemble, faces, tta
from .cache import PrepSettings
from .errors import ParameterError
from .experiments import check_exp
from .models import DEVICES, PRECISIONS, resolve_source
from .paths import resolve
from .pipeline import resolve_workers

_LITERAL = (str, int, float, bool, type(None), list, tuple, dict)
_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}

# the crop settings and preprocessing workers, shared by preprocess, infer and train
_CROPS = ("frames", "face_margin", "detect_width", "detector", "detect_every", "detect_scale", "no_face", "workers",
          "cache_dir")
_COMMON = ("data_dir", "model") + _CROPS
PREPROCESS_KEYS = _COMMON + ("size",)
INFER_KEYS = _COMMON + ("labels", "tta", "aggregate", "batch_size", "threshold", "fallback_prob", "device",
                        "precision", "torch_compile", "exp")
# eda.ipynb and ensemble.ipynb are not run from an experiment's params file: their keys stay out of ALL_KEYS, so a
# typo of one of them given to preprocess/infer still fails. eda.ipynb accepts an experiment's params file (the
# detector settings it shares are the experiment's; the other keys are ignored with a note).
EDA_KEYS = ("data_dir", "labels", "sample", "frames", "detector", "detect_width", "face_margin", "size", "seed",
            "expected_exts", "expected_seconds", "exp")
ENSEMBLE_KEYS = ("runs", "method", "weights", "threshold", "tune_threshold", "labels", "folds", "seed",
                 "allow_model_ensemble", "exp")
ALL_KEYS = tuple(dict.fromkeys(PREPROCESS_KEYS + INFER_KEYS))
TASK_KEYS = INFER_KEYS + ("model_name",)  # the scoring-server bundle's task.ipynb (lib.kernel)
TRAIN_KEYS = ("data", "train_on", "self_blend", "group_by", "val_fraction") + _CROPS + (
    "backbone", "strategy", "frozen_blocks", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "teacher",
    "distill_alpha", "distill_temperature", "epochs", "batch_size", "grad_accum", "lr", "weight_decay", "scheduler",
    "loss", "label_smoothing", "focal_gamma", "augment", "monitor", "patience", "dropout", "seed", "device", "precision",
    "out", "exp")


def collect(namespace: dict[str, Any], allowed: tuple[str, ...], notebook: str) -> dict[str, Any]:
    """The parameters defined in a notebook's namespace; an unknown name (a typo in ``-p``) is an error.

    A name that belongs to another of the kit's notebooks (``tta`` given to preprocess.ipynb through a shared params
    file) is ignored, with a note. A parameter annotated ``list`` but given as text (``-p data "[a, b]"``) is read as
    JSON/YAML, here and in ``namespace``.
    """
    cells = _parameter_cell_names(namespace)
    found = {k: v for k, v in namespace.items()
             if not k.startswith("_") and k not in _IPYTHON and isinstance(v, _LITERAL)
             and (cells is None or k in cells or k in allowed)}
    elsewhere = sorted(set(found) - set(allowed) & set(ALL_KEYS))
    if elsewhere:
        print(f"note: {notebook} ignores parameters of other notebooks: {', '.join(elsewhere)}")
    unknown = sorted(set(found) - set(allowed) - set(ALL_KEYS))
    if unknown:
        raise ParameterError(unknown[0], found[unknown[0]], allowed, why=f"{notebook} has no such parameter")
    missing = sorted(set(allowed) - set(found))
    if missing:
        raise ParameterError(missing[0], None, allowed, why=f"{notebook}'s parameters cell does not define it")
    lists = _text_lists({k: found[k] for k in allowed}, namespace.get("__annotations__") or {})
    namespace.update(lists)  # the notebook's own cells see the list too
    return {k: lists.get(k, found[k]) for k in allowed}


def _text_lists(values: dict[str, Any], annotations: dict[str, Any]) -> dict[str, list]:
    """Parameters annotated ``list`` in the parameters cell but given as text (``papermill -p data "[a, b]"``), read
    as JSON/YAML. Text that does not read as a list is left as it is, for the parameter's check to reject."""
    out = {}
    for name, value in values.items():
        ann = annotations.get(name)
        if isinstance(value, str) and (ann is list or getattr(ann, "__origin__", None) is list
                                       or (isinstance(ann, str) and ann.split("[")[0].strip() == "list")):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            if isinstance(parsed, list):
                out[name] = parsed
    return out


def _assigned_names(source: str) -> set[str] | None:
    """The names a cell assigns when it holds nothing but ``name = value`` / ``name: type = value`` lines, else None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    names: set[str] = set()
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else [None]
        if not all(isinstance(t, ast.Name) for t in targets):
            return None
        names |= {t.id for t in targets}
    return names or None


def _parameter_cell_names(namespace: dict[str, Any]) -> set[str] | None:
    """In an IPython kernel, the names assigned by the latest run of assignment-only cells before the running one
    (the parameters cell, and papermill's injected cell after it); None elsewhere (a plain dict, or a kernel that keeps
    no history: every name counts).

    In JupyterLab the namespace also holds what earlier runs of the notebook computed (``cfg``, ``files``, ...): they
    are neither parameters nor typos.
    """
    history = namespace.get("_ih")
    if not isinstance(history, list):
        return None
    names: set[str] = set()
    for source in reversed(history[:-1]):  # the last entry is the cell running now
        assigned = _assigned_names(source)
        if assigned is None and names:
            break
        names |= assigned or set()
    return names or None


def data_dir(value: str) -> Path:
    """The data folder, which must exist (relative paths are taken from the project root)."""
    p = Path(value).expanduser()
    p = p if p.is_dir() else resolve(value)
    if not value or not p.is_dir():
        raise ParameterError("data_dir", value, "an existing flat folder of .jpg/.png/.mp4 files", why="no such folder")
    return p.resolve()


def optional_file(name: str, value: str) -> Path | None:
    """An optional input file (empty string → None); a given path must exist."""
    if not value:
        return None
    p = Path(value).expanduser()
    p = p if p.is_file() else resolve(value)
    if not p.is_file():
        raise ParameterError(name, value, "an existing file, or '' for none", why="no such file")
    return p.resolve()


def prep_settings(p: dict[str, Any], size: int) -> PrepSettings:
    """PrepSettings from the parameters (validated by PrepSettings itself)."""
    return PrepSettings(frames=p["frames"], face_margin=float(p["face_margin"]), detect_width=p["detect_width"],
                        detector=p["detector"], size=int(size), no_face=p["no_face"], detect_every=p["detect_every"],
                        detect_scale=p["detect_scale"])


def check_prep(p: dict[str, Any]) -> dict[str, Any]:
    """Check the preprocessing parameters; returns resolved values (paths, workers)."""
    faces.DETECTORS.get(p["detector"])
    if p["no_face"] not in faces.NO_FACE:
        raise ParameterError("no_face", p["no_face"], faces.NO_FACE)
    prep_settings(p, 224)  # validates frames, margin, widths
    if not isinstance(p.get("size", 0), int) or p.get("size", 0) < 0:
        raise ParameterError("size", p["size"], "0 (the model's input size) or a positive integer")
    return {"data_dir": data_dir(p["data_dir"]), "model": resolve_source(p["model"]),
            "workers": resolve_workers(p["workers"]),
            "cache_dir": (resolve(p["cache_dir"]) if p["cache_dir"] else None)}


def check_infer(p: dict[str, Any]) -> dict[str, Any]:
    """Check every infer parameter before any work starts; returns resolved values."""
    out = check_prep(p)
    tta.TTA.get(p["tta"])
    aggregate.AGGREGATORS.get(p["aggregate"])
    if p["device"] not in DEVICES:
        raise ParameterError("device", p["device"], DEVICES)
    if not isinstance(p["torch_compile"], bool):
        raise ParameterError("torch_compile", p["torch_compile"], "True or False")
    if p["precision"] not in PRECISIONS:
        raise ParameterError("precision", p["precision"], PRECISIONS)
    if not isinstance(p["batch_size"], int) or p["batch_size"] < 1:
        raise ParameterError("batch_size", p["batch_size"], "an integer ≥ 1 (crops per forward pass)")
    if p["threshold"] != "model":
        number("threshold", p["threshold"], 0.0, 1.0, "a number in [0, 1], or 'model' (the threshold that "
               "train.ipynb chose on val and stored in the model folder)")
    number("fallback_prob", p["fallback_prob"], 0.0, 1.0, "a number in [0, 1]")
    return {**out, "labels": optional_file("labels", p["labels"]), "exp": check_exp(p["exp"])}


def positive_int(name: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(name, value, f"an integer ≥ 1 ({what})")


def check_eda(p: dict[str, Any]) -> dict[str, Any]:
    """Check every eda.ipynb parameter before any work starts; returns resolved values."""
    positive_int("sample", p["sample"], "files whose faces are surveyed")
    PrepSettings(frames=p["frames"], face_margin=float(p["face_margin"]), detect_width=p["detect_width"],
                 detector=p["detector"], size=p["size"] if isinstance(p["size"], int) and p["size"] > 0 else 224)
    if isinstance(p["seed"], bool) or not isinstance(p["seed"], int):
        raise ParameterError("seed", p["seed"], "an integer")
    exts = tuple(e.strip().lower() for e in str(p["expected_exts"]).split(",") if e.strip())
    if not exts or not all(e.startswith(".") for e in exts):
        raise ParameterError("expected_exts", p["expected_exts"], "comma-separated extensions such as '.jpg,.png,.mp4'")
    if not isinstance(p["expected_seconds"], (int, float)) or p["expected_seconds"] <= 0:
        raise ParameterError("expected_seconds", p["expected_seconds"], "a positive number of seconds")
    exp = check_exp(p["exp"] or datetime.now().strftime("eda-%Y%m%d-%H%M%S"))
    return {"data_dir": data_dir(p["data_dir"]), "labels": optional_file("labels", p["labels"]),
            "size": p["size"] or 224, "extensions": exts, "exp": exp}


def check_ensemble(p: dict[str, Any]) -> dict[str, Any]:
    """Check every ensemble.ipynb parameter before any work starts; returns resolved values."""
    exps = ensemble.parse_runs(p["runs"])
    ensemble.ENSEMBLES.get(p["method"])
    weights = ensemble.parse_weights(p["weights"], len(exps))
    if weights is not None and p["method"] != "weighted":
        raise ParameterError("weights", p["weights"], "'' unless method is 'weighted'")
    if not isinstance(p["threshold"], (int, float)) or not 0.0 <= p["threshold"] <= 1.0:
        raise ParameterError("threshold", p["threshold"], "a number in [0, 1]")
    for name in ("tune_threshold", "allow_model_ensemble"):
        if not isinstance(p[name], bool):
            raise ParameterError(name, p[name], "True, False")
    positive_int("folds", p["folds"], "cross-validation folds")
    if isinstance(p["seed"], bool) or not isinstance(p["seed"], int):
        raise ParameterError("seed", p["seed"], "an integer")
    labels = optional_file("labels", p["labels"])
    needs = "tune_threshold" if p["tune_threshold"] else "weights" if p["method"] == "weighted" and weights is None else ""
    if needs and labels is None:
        raise ParameterError(needs, p[needs], why="fitting weights or a threshold needs labels: give labels or "
                             + ("weights" if needs == "weights" else "tune_threshold: False"))
    return {"runs": exps, "weights": weights, "labels": labels, "exp": check_exp(p["exp"])}


def check_task(p: dict[str, Any]) -> dict[str, Any]:
    """Check the parameters of a scoring-server task.ipynb (infer's, plus the submission's name)."""
    if not isinstance(p["model_name"], str) or not p["model_name"]:
        raise ParameterError("model_name", p["model_name"], "a non-empty name for the submission")
    return check_infer(p)


def number(name: str, value: Any, low: float, high: float, what: str) -> None:
    """A number in [low, high] (booleans rejected), else a ParameterError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ParameterError(name, value, what)
