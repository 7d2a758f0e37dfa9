"""The search space of a sweep: a YAML mapping of notebook parameter → choices or a range, checked against the
notebook's parameters cell (and, for the kit's notebooks, against its own parameter checks) before any trial."""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import ParameterError
from ..paths import resolve

_RANGE_KEYS = {"low", "high", "log", "int", "step"}
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}
_SWEEP_OWNS = ("exp",)  # named by the sweep for every trial
_GRID_MAX = 1000  # a numeric range expanded for the grid sampler has at most this many values


@dataclass(frozen=True)
class Dim:
    """One searched parameter: categorical ``choices``, or a numeric range ``low``..``high``."""

    name: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    step: float | None = None

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    def labels(self) -> list[Any]:
        """The choices as Optuna stores them: lists and dicts as JSON text, scalars as they are."""
        return [encode(c) for c in self.choices]

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for an Optuna trial (decoded back to a list where the choice was one)."""
        if self.categorical:
            return decode(trial.suggest_categorical(self.name, self.labels()))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """Every value the grid sampler visits (a range needs integers or a ``step``)."""
        if self.categorical:
            return self.labels()
        if self.log or (not self.integer and self.step is None):
            raise ParameterError(self.name, {"low": self.low, "high": self.high},
                                 "a list of choices, or a range with int or step (and no log)",
                                 why="the grid sampler needs a finite set of values")
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        if n > _GRID_MAX:
            raise ParameterError(self.name, {"low": self.low, "high": self.high, "step": step},
                                 f"at most {_GRID_MAX} grid values", why=f"the range has {n} values on the grid")
        values = [self.low + i * step for i in range(n)]
        return [int(round(v)) for v in values] if self.integer else [round(v, 12) for v in values]

    def values_to_check(self) -> list[Any]:
        """The values whose validity the notebook's own check is asked about: every choice, or both ends."""
        if self.categorical:
            return list(self.choices)
        ends = [self.low, self.high]
        return [int(v) for v in ends] if self.integer else ends


def encode(value: Any) -> Any:
    """A choice as Optuna can store it (lists and dicts become JSON text)."""
    return json.dumps(value) if isinstance(value, (list, dict, tuple)) else value


def decode(value: Any) -> Any:
    """Undo ``encode``."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def read_yaml_mapping(value: str | dict | None, name: str) -> dict[str, Any]:
    """A mapping given as a dict, as YAML text, or as the path of a YAML file ('' → empty)."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise ParameterError(name, value, "YAML text, or the path of a YAML file")
    text = value
    if "\n" not in value and value.strip().endswith((".yaml", ".yml")):
        path = Path(value).expanduser()
        path = path if path.is_file() else resolve(value)
        if not path.is_file():
            raise ParameterError(name, value, "an existing YAML file, or YAML text", why="no such file")
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ParameterError(name, value, "a YAML mapping", why=f"not valid YAML ({str(e).splitlines()[0]})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(name, value, "a YAML mapping of parameter names to values")
    return data


def notebook_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The parameters cell of ``notebook``: name → {type, default (a Python value), help}."""
    import papermill as pm

    out = {}
    for name, p in pm.inspect_notebook(str(notebook)).items():
        try:
            default = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            default = p["default"]
        out[name] = {"type": p["inferred_type_name"], "default": default, "help": p["help"]}
    if not out:
        raise ParameterError("notebook", str(notebook), "a notebook with a cell tagged 'parameters'",
                             why="it has no parameters cell")
    return out


def _dim(name: str, spec: Any, kind: str) -> Dim:
    """One entry of the space, structurally checked (choices non-empty and of the parameter's type; a range on a
    number parameter with low ≤ high)."""
    if isinstance(spec, list):
        return _choices(name, spec, kind)
    if isinstance(spec, dict):
        return _range(name, spec, kind)
    raise ParameterError(name, spec, "a list of choices, e.g. [16, 32], or a range {low: .., high: .., log: true}",
                         why="a single value belongs in the fixed params file")


def _choices(name: str, spec: list, kind: str) -> Dim:
    if not spec:
        raise ParameterError(name, spec, "at least one choice", why="empty list of choices")
    if kind == "list" and not all(isinstance(c, list) for c in spec):
        raise ParameterError(name, spec, f"a list of lists, e.g. {name}: [[flip], [flip, rotate]]",
                             why=f"{name} is a list parameter: each choice is a whole list")
    labels = [encode(c) for c in spec]
    if len(set(map(repr, labels))) != len(labels):
        raise ParameterError(name, spec, "distinct choices", why="a choice is repeated")
    return Dim(name, tuple(spec))


def _range(name: str, spec: dict, kind: str) -> Dim:
    unknown = sorted(set(spec) - _RANGE_KEYS)
    if unknown or not {"low", "high"} <= set(spec):
        raise ParameterError(name, spec, "{low: number, high: number[, log: true][, int: true][, step: number]}",
                             why=f"unknown key {unknown[0]!r}" if unknown else "a range needs low and high")
    if kind not in ("int", "float"):
        raise ParameterError(name, spec, "a list of choices", why=f"{name} is a {kind} parameter, not a number")
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ParameterError(name, spec, "numbers for low and high")
    integer = bool(spec.get("int", kind == "int"))
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int) and integer):
        raise ParameterError(name, spec, "integer low and high", why=f"{name} is an int parameter")
    if low > high:
        raise ParameterError(name, spec, "low ≤ high", why=f"low {low} > high {high}")
    if spec.get("log") and low <= 0:
        raise ParameterError(name, spec, "low > 0 with log: true", why="a log range cannot start at or below 0")
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0
                             or (spec.get("log") and step)):
        raise ParameterError(name, spec, "a positive step, and no step with log: true")
    return Dim(name, low=low, high=high, log=bool(spec.get("log")), integer=integer, step=step)


def parse_space(space: str | dict, parameters: dict[str, dict[str, Any]], notebook: str) -> list[Dim]:
    """The searched dimensions; an unknown parameter, empty choices, low > high or a wrong type is an error."""
    raw = read_yaml_mapping(space, "space")
    if not raw:
        raise ParameterError("space", space, "a YAML mapping such as 'frames: [16, 32]'", why="nothing to search")
    dims = []
    for name, spec in raw.items():
        if name in _SWEEP_OWNS:
            raise ParameterError(name, spec, why="the sweep names every trial <study>-t<N>; do not search it")
        if name not in parameters:
            raise ParameterError(name, spec, sorted(parameters), why=f"{notebook} has no such parameter")
        dims.append(_dim(str(name), spec, parameters[name]["type"]))
    return dims


def type_ok(value: Any, kind: str) -> bool:
    """Whether ``value`` has the parameter's declared type (an int is a float; a bool is not an int)."""
    if kind not in _TYPES:
        return True
    if isinstance(value, bool) and kind != "bool":
        return False
    return isinstance(value, _TYPES[kind])


def kit_schemas() -> dict[str, Any]:
    """The kit's notebooks a sweep names (``notebook: infer``) and their schemas, whose checks every value of the space
    passes before any trial (imported when needed: train's imports torch)."""
    from ..parameters import INFER
    from ..review.ensemble import ENSEMBLE
    from ..training.parameters import TRAIN

    return {"infer": INFER, "train": TRAIN, "ensemble": ENSEMBLE}


def checker(notebook: str) -> Callable[[dict[str, Any]], Any] | None:
    """The kit notebook's own parameter check (None for another notebook)."""
    schema = kit_schemas().get(notebook)
    return schema.check if schema is not None else None


def check_values(dims: list[Dim], base: dict[str, Any], parameters: dict[str, dict[str, Any]],
                 check: Callable[[dict[str, Any]], Any] | None) -> None:
    """Every value of the space, one at a time on top of ``base``: of the declared type (or accepted by the
    notebook's own check, e.g. infer's threshold 'model'), and not rejected by that check by name."""
    for d in dims:
        kind = parameters[d.name]["type"]
        for value in d.values_to_check():
            if check is None:
                if not type_ok(value, kind):
                    raise ParameterError(d.name, value, f"a {kind}", why="wrong type for this notebook parameter")
                continue
            try:
                check({**base, d.name: value})
            except ParameterError as e:
                if e.name == d.name:
                    raise ParameterError(d.name, value, why=f"in the space: {e}") from e
                if not type_ok(value, kind):  # rejected for another reason; its type decides
                    raise ParameterError(d.name, value, f"a {kind}", why="wrong type for this notebook parameter") from e
            except (TypeError, ValueError, AttributeError) as e:
                raise ParameterError(d.name, value, f"a {kind}",
                                     why=f"the notebook's check failed on it ({type(e).__name__}: {e})") from e


def check_base(base: dict[str, Any], dims: list[Dim], check: Callable[[dict[str, Any]], Any] | None) -> None:
    """The fixed parameters (with the notebook's defaults) pass the notebook's check, except for searched ones."""
    if check is None:
        return
    try:
        check(base)
    except ParameterError as e:
        if e.name not in {d.name for d in dims}:
            raise ParameterError(e.name, e.value, why=f"every trial would fail on the fixed parameters: {e}") from e


@dataclass
class Plan:
    """A checked sweep: what every trial runs, and everything it needs, settled before any trial."""

    params: dict[str, Any]  # the sweep's own parameters, as given
    notebook: Path
    kind: str
    dims: list[Dim]
    fixed: dict[str, Any]
    study: str
    objective: str
    direction: str
    trials: int
    timeout: float | None
    parallel: int
    progress_key: str | None
    notes: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
