"""Notebook parameters: the keys of each notebook, collecting them from a notebook's namespace (unknown names are
errors), and the checks of the preprocess, infer, eda and task notebooks, run once before any work starts.

The ensemble and train notebooks check theirs with ``ensemble.check_params`` and ``training.params.check_params``,
next to what they check, so this module stays low in the house: the server bundle ships it without the training
code.
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from . import checks
from .devices import DEVICES, PRECISIONS
from .engines import FILE_TIMEOUT
from .errors import ParameterError
from .options import CROP_KEYS, InferOptions, PrepSettings
from .paths import resolve

_LITERAL = (str, int, float, bool, type(None), list, tuple, dict)
_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}

# the crop settings and where preprocessing runs (worker processes, or a Dask cluster: lib.engines, lib.scale.cluster;
# file_timeout: each file's time limit there), shared by preprocess, infer and train
_CROPS = CROP_KEYS + ("workers", "cluster", "file_timeout", "cache_dir")
_COMMON = ("data_dir", "model") + _CROPS + ("follow_links", "shard")
_NOT_ON_SERVER = ("cluster", "shard")  # the scoring server runs every file on its one machine
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
# the scoring-server bundle's task.ipynb (lib.bundle)
TASK_KEYS = tuple(k for k in INFER_KEYS if k not in _NOT_ON_SERVER) + ("model_name",)
TRAIN_KEYS = ("data", "train_on", "self_blend", "validate", "leave_out_by", "loo_epochs", "loo_min_files", "group_by",
              "val_fraction") + _CROPS + ("box_reuse",
    "backbone", "strategy", "probe_features", "probe_stages", "probe_tau", "probe_k", "probe_c", "frozen_blocks",
    "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "teacher", "distill_alpha", "distill_temperature",
    "epochs", "batch_size", "grad_accum", "lr", "weight_decay", "scheduler", "loss", "label_smoothing", "focal_gamma",
    "augment", "monitor", "patience", "threshold_rule", "threshold_reals", "dropout", "seed", "device", "precision",
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
    return checks.existing_dir("data_dir", value, "an existing flat folder of .jpg/.png/.mp4 files")


def check_prep(p: dict[str, Any]) -> dict[str, Any]:
    """Check the preprocessing parameters; returns resolved values (paths, workers)."""
    PrepSettings.from_params(p, 224)  # the crop settings check themselves
    if isinstance(p.get("size", 0), bool) or not isinstance(p.get("size", 0), int) or p.get("size", 0) < 0:
        raise ParameterError("size", p["size"], "0 (the model's input size) or a positive integer")
    checks.shard(p.get("shard", ""))
    return {"data_dir": data_dir(p["data_dir"]), "model": checks.model_source(p["model"]),
            "workers": checks.workers(p["workers"]), "cluster": checks.cluster(p.get("cluster", "")),
            "file_timeout": checks.file_timeout(p.get("file_timeout", FILE_TIMEOUT)),
            "shard": p.get("shard", ""), "follow_links": checks.boolean("follow_links", p["follow_links"]),
            "cache_dir": (resolve(p["cache_dir"]) if p["cache_dir"] else None)}


def check_infer(p: dict[str, Any]) -> dict[str, Any]:
    """Check every infer parameter before any work starts; returns resolved values, ``options`` among them."""
    out = check_prep(p)
    options = InferOptions.from_params(p)
    checks.choice("device", p["device"], DEVICES)
    checks.boolean("torch_compile", p["torch_compile"])
    checks.choice("precision", p["precision"], PRECISIONS)
    labels = infer_labels(p["labels"], out["data_dir"])
    if labels is not None:
        labels_overlap(labels, out["data_dir"], p["labels"])
    return {**out, "options": options, "labels": labels, "exp": checks.exp_name(p["exp"])}


AUTO_LABELS = "auto"  # labels: data_dir/labels.csv when the folder has one, else none


def infer_labels(value: str, data_dir: Path) -> Path | None:
    """The labels file of an infer run: a path, '' for none, or ``auto``: ``data_dir/labels.csv`` if it exists."""
    if value == AUTO_LABELS:
        found = data_dir / "labels.csv"
        return found.resolve() if found.is_file() else None
    return checks.optional_file("labels", value)


def labels_overlap(labels: Path, folder: Path, value: str) -> int:
    """How many media files of ``folder`` the labels file names; a file that names none of them (or that is not a
    labels CSV) is a ParameterError now, before any prediction is made."""
    from . import media, names
    from .metrics import read_labels

    known = {names.escape(f.name) for f in media.list_media(folder)}
    listed = read_labels(labels)["filename"].astype(str)
    common = int(listed.isin(known).sum())
    if not common:
        raise ParameterError("labels", value, "a labels CSV whose filename column names files of data_dir, or ''",
                             why=f"none of its {len(listed)} filenames (e.g. {listed.head(3).tolist()}) is one of the "
                                 f"{len(known)} media files in {folder}")
    return common


def check_eda(p: dict[str, Any]) -> dict[str, Any]:
    """Check every eda.ipynb parameter before any work starts; returns resolved values."""
    checks.positive_int("sample", p["sample"], "files whose faces are surveyed")
    PrepSettings(frames=p["frames"], face_margin=p["face_margin"], detect_width=p["detect_width"],
                 detector=p["detector"], size=p["size"] if isinstance(p["size"], int) and p["size"] > 0 else 224)
    checks.integer("seed", p["seed"])
    exts = tuple(e.strip().lower() for e in str(p["expected_exts"]).split(",") if e.strip())
    if not exts or not all(e.startswith(".") for e in exts):
        raise ParameterError("expected_exts", p["expected_exts"], "comma-separated extensions such as '.jpg,.png,.mp4'")
    checks.positive_number("expected_seconds", p["expected_seconds"], "a positive number of seconds")
    exp = checks.exp_name(p["exp"] or datetime.now().strftime("eda-%Y%m%d-%H%M%S"))
    return {"data_dir": data_dir(p["data_dir"]), "labels": checks.optional_file("labels", p["labels"]),
            "size": p["size"] or 224, "extensions": exts, "exp": exp}


def check_task(p: dict[str, Any]) -> dict[str, Any]:
    """Check the parameters of a scoring-server task.ipynb (infer's, plus the submission's name)."""
    if not isinstance(p["model_name"], str) or not p["model_name"]:
        raise ParameterError("model_name", p["model_name"], "a non-empty name for the submission")
    return check_infer(p)
