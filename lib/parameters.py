"""Each notebook's parameters, declared once: a ``Schema`` per notebook holds every parameter's name, type, default,
one-line help and check. From it come the keys, the collection from the notebook's namespace (an unknown name is an
error), the checks run before any work starts, the text of the notebook's parameters cell and its table in
docs/parameters.md.

The groups several notebooks share are declared once and reused: the crop settings (``lib.options.CropOptions``),
where preprocessing runs (``WHERE``), ``DEVICE`` and precision, and the run name (``EXP``). This module ships with
the server bundle, so it holds the schemas of preprocess, infer and the bundle's task; train's is in
``lib.training.parameters``, eda's and ensemble's in ``lib.review``, the sweep's in ``lib.sweep.study``.
``python -m lib.sweep.notebooks`` writes every notebook's parameters cell and docs/parameters.md from them.

To add a parameter: declare it once, as a ``Param`` in its notebook's schema here (or in the shared group it belongs
to), or as an ``option`` field of the option type that reads it (``lib.options``, a training strategy's options)
listed in the schema; if it takes part in a notebook's resolved settings, read it in that schema's ``resolve``. Then
run ``python -m lib.sweep.notebooks``: the parameters cell and docs/parameters.md follow (a test fails until they do).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from . import checks
from .checks import Check, alternatives, rule
from .devices import DEVICES, PRECISIONS
from .engines import FILE_TIMEOUT
from .errors import ParameterError
from .options import CropOptions, InferOptions

_LITERAL = (str, int, float, bool, type(None), list, tuple, dict)
_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


@dataclass(frozen=True)
class Param:
    """One notebook parameter: its name, type, default, one-line help and the check of its value."""

    name: str
    type: type
    default: Any
    help: str
    check: Check | None = None

    def but(self, **changes: Any) -> "Param":
        """The same parameter with another default or help (a notebook whose default differs)."""
        return replace(self, **changes)

    def checked(self, value: Any) -> Any:
        """The value to use (a path resolved, ...); a ParameterError naming the parameter if it is not valid."""
        return self.check(self.name, value) if self.check is not None else value

    def line(self, value: Any = None) -> str:
        """Its line in a parameters cell: ``name: type = value  # help`` (the default when no value is given)."""
        return f"{self.name}: {self.type.__name__} = {literal(self.default if value is None else value)}  # {self.help}"


def literal(value: Any) -> str:
    """A value as Python source, strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return repr(value)


def fields_of(option_type: type, *names: str) -> tuple[Param, ...]:
    """The parameters an option type declares (its ``lib.options.option`` fields), in field order; ``names`` picks
    some of them."""
    found = {f.name: Param(f.name, _TYPES[str(f.type).split("|")[0].split("[")[0].strip()], f.metadata["default"],
                           f.metadata["help"], f.metadata["check"])
             for f in fields(option_type) if "help" in f.metadata}
    return tuple(found[n] for n in names) if names else tuple(found.values())


@dataclass(frozen=True)
class Schema:
    """A notebook's parameters in their cell's order; ``resolve(params, checked)`` makes the notebook's checked and
    resolved settings (cross-parameter checks included) once every parameter passed its own check."""

    notebook: str
    params: tuple[Param, ...]
    resolve: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"{self.notebook}: a parameter is declared twice in {self.keys}")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def __getitem__(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def collect(self, namespace: dict[str, Any]) -> dict[str, Any]:
        """This notebook's parameters from its namespace (``globals()``); see ``collect``."""
        return collect(namespace, self)

    def check(self, params: dict[str, Any]) -> Any:
        """Every parameter's own check in order, then the notebook's resolution; run before any work starts."""
        missing = [k for k in self.keys if k not in params]
        if missing:
            raise ParameterError(missing[0], None, self.keys, why=f"{self.notebook} needs every one of its parameters")
        checked = {p.name: p.checked(params[p.name]) for p in self.params}
        return self.resolve(params, checked) if self.resolve is not None else checked

    def cell(self, values: dict[str, Any] | None = None) -> str:
        """The parameters cell: one line per parameter, with ``values`` instead of the defaults where given."""
        return "\n".join(p.line((values or {}).get(p.name)) for p in self.params)

    def table(self) -> str:
        """The Markdown table of docs/parameters.md: name, type, default, meaning."""
        def cell(text: str, code: bool = False) -> str:  # a table cell: | escaped; <exp> shown, not taken for HTML
            text = text.replace("|", "\\|")
            return f"`{text}`" if code else text.replace("<", "\\<").replace(">", "\\>")

        rows = ["| name | type | default | meaning |", "|---|---|---|---|"]
        rows += [f"| `{p.name}` | {p.type.__name__} | {cell(literal(p.default), True)} | {cell(p.help)} |"
                 for p in self.params]
        return "\n".join(rows)


def collect(namespace: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """The parameters defined in a notebook's namespace; an unknown name (a typo in ``-p``) is an error.

    A name that belongs to another of the kit's notebooks (``tta`` given to preprocess.ipynb through a shared params
    file) is ignored, with a note. A parameter of type ``list`` given as text (``-p data "[a, b]"``) is read as
    JSON/YAML, here and in ``namespace``.
    """
    allowed, notebook = schema.keys, schema.notebook
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
    lists = _text_lists({p.name: found[p.name] for p in schema.params if p.type is list})
    namespace.update(lists)  # the notebook's own cells see the list too
    return {k: lists.get(k, found[k]) for k in allowed}


def _text_lists(values: dict[str, Any]) -> dict[str, list]:
    """List parameters given as text (``papermill -p data "[a, b]"``), read as JSON/YAML. Text that does not read as a
    list is left as it is, for the parameter's check to reject."""
    out = {}
    for name, value in values.items():
        if isinstance(value, str):
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


# ------------------------------------------------------------------------------------------------ the shared groups
def _exp(name: str, value: Any) -> str:
    return checks.exp_name(value, name)


DATA_DIR = Param("data_dir", str, "data/sample/test", "flat folder of media (the server's ./data); relative paths are "
                 "from the project root", rule(checks.existing_dir, "an existing flat folder of .jpg/.png/.mp4 files"))
MODEL = Param("model", str, "models/demo-detector", "Hugging Face hub id or local model folder (the demo detector: "
              "make demo / make lab)", lambda name, value: checks.model_source(value, name))
CROP = fields_of(CropOptions)  # how faces are found and cropped: preprocess, infer, train (and eda, in part)
WHERE = (  # where preprocessing runs: preprocess, infer, train
    Param("workers", int, -1, "preprocessing processes: -1 → min(cpu - 1, 8), 0 → in this process",
          lambda name, value: checks.workers(value)),
    Param("cluster", str, "", 'where preprocessing runs: "" → `workers` processes here | "local:N" → a Dask '
          'LocalCluster of N processes | "tcp://host:8786" → a running Dask scheduler',
          lambda name, value: checks.cluster(value)),
    Param("file_timeout", float, FILE_TIMEOUT, "seconds a file may take per 10 frames and per 10 MB before its "
          "worker is stopped and the file gets a fallback row (a decoder that hangs); 0 → no limit (nor with workers "
          "0: nothing can stop this process)",
          lambda name, value: checks.file_timeout(value)),
    Param("cache_dir", str, "", 'crop cache folder; "" → cache/crops', checks.optional_path),
)
DEVICE = (
    Param("device", str, "auto", alternatives(DEVICES), rule(checks.choice, DEVICES)),
    Param("precision", str, "auto", "auto (fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16 | int8 (inference on the "
          "CPU: quantised Linear layers)", rule(checks.choice, PRECISIONS)),
)
EXP = Param("exp", str, "", 'run name: outputs go to submissions/<exp>/; "" → a timestamped name', _exp)
SEED = Param("seed", int, 0, "random seed", checks.integer)

# ------------------------------------------------------------------------------------------ preprocess.ipynb
SHARD = Param("shard", str, "", '"i/n" → only the i-th of n shares of data_dir\'s files (n machines without a '
              'scheduler; join them: python -m lib.submission merge) | "" → every file',
              lambda name, value: checks.shard(value))
FOLLOW_LINKS = fields_of(InferOptions, "follow_links")


def _prep(p: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """Preprocessing's resolved values (paths, workers)."""
    return {"data_dir": v["data_dir"], "model": v["model"], "workers": v["workers"], "cluster": v.get("cluster", ""),
            "file_timeout": v["file_timeout"], "shard": p.get("shard", ""), "follow_links": v["follow_links"], "cache_dir": v["cache_dir"]}


PREPROCESS = Schema("preprocess.ipynb", (DATA_DIR, MODEL, *CROP, *WHERE, *FOLLOW_LINKS, SHARD, Param(
    "size", int, 0, "crop size in pixels; 0 → the model's input size (from its preprocessor_config.json)",
    rule(checks.int_at_least, 0, "0 (the model's input size) or a positive integer"))), _prep)

# ------------------------------------------------------------------------------------------------ infer.ipynb
AUTO_LABELS = "auto"  # labels: data_dir/labels.csv when the folder has one, else none


def _labels(name: str, value: Any) -> Path | str | None:
    return value if value == AUTO_LABELS else checks.optional_file(name, value)


def _infer(p: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """Infer's resolved values, ``options`` and the labels file among them; labels that name none of data_dir's
    files are an error now."""
    out = _prep(p, v)
    labels = _folder_labels(out["data_dir"]) if v["labels"] == AUTO_LABELS else v["labels"]
    if labels is not None:
        labels_overlap(labels, out["data_dir"], p["labels"])
    return {**out, "options": InferOptions.from_params(p), "labels": labels, "exp": v["exp"]}


INFER = Schema("infer.ipynb", (
    DATA_DIR, MODEL, *CROP, *WHERE, *FOLLOW_LINKS, SHARD,
    Param("labels", str, AUTO_LABELS, "labels.csv (filename,label[,source,kind]) for local F1 and error analysis; "
          'auto → data_dir/labels.csv if there is one; "" → none', _labels),
    *fields_of(InferOptions, "tta", "aggregate", "batch_size", "threshold", "fallback_prob"), *DEVICE,
    Param("torch_compile", bool, False, "wrap the model in torch.compile (first batches slower; can pay off on a GPU)",
          checks.boolean),
    EXP), _infer)
ALL_KEYS = tuple(dict.fromkeys(PREPROCESS.keys + INFER.keys))  # an experiment's params file: other notebooks ignore


def _folder_labels(data_dir: Path) -> Path | None:
    """``labels: auto``: ``data_dir/labels.csv`` if it exists, else none."""
    found = data_dir / "labels.csv"
    return found.resolve() if found.is_file() else None


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


# ------------------------------------------------------------------------------------ the server bundle's task.ipynb
NOT_ON_SERVER = ("cluster", "shard")  # the scoring server runs every file on its one machine
_ON_SERVER = {"data_dir": {"default": "./data", "help": "the server's flat test folder"},
              "model": {"default": "", "help": "model folder inside this bundle (python -m lib.bundle build copies it)"},
              "cache_dir": {"help": "'' means a temporary folder outside the bundle, deleted after the run"},
              "labels": {"default": ""}, "exp": {"help": "the experiment this bundle was built from"}}


def _model_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ParameterError(name, value, "a non-empty name for the submission")
    return value


TASK = Schema("task.ipynb", tuple(p.but(**_ON_SERVER[p.name]) if p.name in _ON_SERVER else p for p in INFER.params
                                  if p.name not in NOT_ON_SERVER)
              + (Param("model_name", str, "", "the name aif.submit gives this submission", _model_name),), _infer)
