"""Build ``kernels/<exp>/``: task.ipynb with the experiment's parameters baked in, the top-level ``lib/*.py`` modules
it imports (its closure: exactly the top-level modules, never a subpackage), and the model folder."""

from __future__ import annotations

import ast
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import yaml

from .. import checks, models
from ..errors import ParameterError
from ..experiments import git_info
from ..parameters import INFER, TASK
from ..paths import KERNELS, PARAMS, ROOT, SUBMISSIONS, resolve
from .server import KEY_ENV, SERVER_PIP, SERVER_PIP_NO_DEPS, SKIPPED_WORDS

TASK_MODULES = ("media", "models", "predict", "parameters", "submission", "experiments")  # what task.ipynb imports
TRAINING_PACKAGE = "training"  # lib/training/: never shipped (the bundle's closure must not reach it)
ENTRY = "predict_folder"  # the function task.ipynb runs: the same one as infer.ipynb (lib.predict)
_MODEL_FILES = ("config.json", "preprocessor_config.json", "*.safetensors", "*.bin", "*.json", "*.txt", "*.md")
BUNDLE_MODEL_DIR = "model"


def _load_params(exp: str, params_file: str | None) -> dict[str, Any]:
    """The experiment's parameters: a params YAML (flat keys), else the run record of ``submissions/<exp>/``."""
    path = resolve(params_file) if params_file else PARAMS / f"{exp}.yaml"
    if path.is_file():
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    record = SUBMISSIONS / exp / "run.json"
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))["params"]
    known = sorted(p.stem for p in PARAMS.glob("*.yaml"))
    raise ParameterError("exp", exp, known, why=f"no {path} and no {record}")


def lib_closure(names: tuple[str, ...] = TASK_MODULES) -> list[str]:
    """The lib modules ``names`` import, directly or not (relative imports, including ones inside functions).

    What ships is the top-level ``lib/*.py`` and nothing else: a closure that reaches a subpackage (``lib/training``,
    ``lib/bundle``, ``lib/scale``, ...) is a bug, refused here; ``tests/test_layout.py`` checks that the closure is
    every top-level module."""
    todo, seen = [*names, "__init__"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name == TRAINING_PACKAGE or not (ROOT / "lib" / f"{name}.py").is_file():  # a package or a missing module
            raise RuntimeError(f"the bundle's code would import lib.{name}: subpackages of lib (lib/{TRAINING_PACKAGE}/ "
                               "among them) are never shipped to the server; move what inference needs to lib/*.py")
        seen.add(name)
        tree = ast.parse((ROOT / "lib" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo += [node.module] if node.module else [a.name for a in node.names]
    return sorted(seen)


def _safe_name(name: str) -> str:
    """A folder name that aif.submit will not skip."""
    return "weights" if any(w in name.lower() for w in SKIPPED_WORDS) else name


def _copy_model(source: Path, dest: Path) -> list[str]:
    dest.mkdir(parents=True)
    copied = []
    for pattern in _MODEL_FILES:
        for f in sorted(source.glob(pattern)):
            if f.is_file() and not (dest / f.name).exists():
                shutil.copy2(f, dest / f.name)
                copied.append(f.name)
    return copied


def build(exp: str, model: str | None = None, params_file: str | None = None, out_root: Path = KERNELS) -> Path:
    """Write ``kernels/<exp>/``: task.ipynb with the experiment's parameters, the lib code it imports, the model."""
    params = _load_params(exp, params_file)
    if model:
        params["model"] = model
    source = Path(checks.model_source(str(params.get("model", ""))))
    if not source.is_dir():
        raise ParameterError("model", params.get("model"), "a local model folder (--model models/<folder>)",
                             why="the scoring server has no internet: the weights must travel inside the bundle")
    models.model_classes(str(source))  # P(fake)'s classes, read as the loader reads them (a ModelLoadError if none)
    bundle = Path(out_root) / exp
    if bundle.exists():
        shutil.rmtree(bundle)
    (bundle / "lib").mkdir(parents=True)
    for name in lib_closure():
        shutil.copy2(ROOT / "lib" / f"{name}.py", bundle / "lib" / f"{name}.py")
    model_rel = f"{BUNDLE_MODEL_DIR}/{_safe_name(source.name)}"
    files = _copy_model(source, bundle / model_rel)
    task = {**INFER.defaults, **{k: params[k] for k in INFER.keys if k in params}, "model": model_rel}
    nbformat.write(task_notebook(exp, task), bundle / "task.ipynb")
    (bundle / "README.md").write_text(_bundle_readme(exp, model_rel), encoding="utf-8")
    manifest = {"exp": exp, "built": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git": git_info(),
                "params": task, "model_source": str(source), "model_files": files, "pip": [*SERVER_PIP, *SERVER_PIP_NO_DEPS]}
    (bundle / "kernel.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return bundle


_SETUP = '''import sys
from pathlib import Path

BUNDLE = Path.cwd()
sys.path.insert(0, str(BUNDLE))
import lib  # noqa: E402  the bundle's own copy, never an installed one

if Path(lib.__file__).resolve().parent != (BUNDLE / "lib").resolve():
    raise ImportError(f"lib was imported from {lib.__file__}, not from this bundle: run the notebook from its folder")
from lib import media, models, parameters, pipeline, predict  # noqa: E402'''

_RUN = '''params = parameters.TASK.collect(globals())
cfg = parameters.TASK.check(params)
import json, resource, shutil, tempfile, time  # noqa: E402

t0 = time.time()
crop_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="kit-crops-"))  # never inside the bundle
lm = models.load_model(model, device, precision, torch_compile)
print(f"{len(media.list_media(cfg['data_dir']))} files; {lm.info['architecture']} on {lm.device}; "
      f"P(fake) = classes {lm.fake_indices}; {cfg['options'].crops(lm.size)}")
load_s = time.time() - t0
# the one road that infer.ipynb takes too; crops are deleted once read (little disk)
pred = predict.predict_folder(cfg["data_dir"], lm, cfg["options"], BUNDLE, crop_dir, cfg["workers"], keep_cache=False,
                              file_timeout=cfg["file_timeout"])  # a file that hangs gets a fallback row
if not cache_dir:
    shutil.rmtree(crop_dir, ignore_errors=True)
stats = {"files": len(pred.records), "workers": cfg["workers"], "load_s": load_s, "total_s": time.time() - t0,
         **pred.times, "per_file": [{"filename": r.filename, "kind": r.kind, "frames_read": r.frames_read,
                                     "n_crops": r.n_crops, "decode_s": r.decode_s, "detect_s": r.detect_s}
                                    for r in pred.records],
         "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         "gpu_mb": (__import__("torch").cuda.max_memory_allocated() / 2**20) if lm.device.type == "cuda" else None}
(BUNDLE / "kit_stats.json").write_text(json.dumps(stats, indent=1, default=str))
print(pipeline.summarize(pred.table))
print(f"wrote {BUNDLE / 'submission.csv'} ({len(pred.table)} rows) in {stats['total_s']:.0f} s")'''

_SUBMIT = '''# Runs only where a key is available (an interactive session on the server); otherwise it does nothing.
import os

key = os.environ.get("AIF_KEY") or next((p.read_text().strip() for p in (Path.home() / ".aif_key",) if p.is_file()), "")
if key:
    import aifactory.score as aif

    aif.submit(model_name=model_name, key=key)
else:
    print("no submission key (AIF_KEY or ~/.aif_key): submit skipped")'''


def task_notebook(exp: str, task: dict[str, Any]) -> nbformat.NotebookNode:
    """task.ipynb for the server: pip cell, parameters baked in, inference over ./data, the submit cell."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    server = {k: TASK[k].default for k in ("data_dir", "labels", "cache_dir")}  # never the experiment's local ones
    values = {**task, **server, "exp": exp, "model_name": exp}
    cells = [new_markdown_cell(f"# {exp}: scoring-server task\n\nBuilt by `python -m lib.bundle build {exp}`; see "
                               "README.md. Run every cell from this folder in an interactive Jupyter session."),
             new_code_cell("!pip install -q -U " + " ".join(f'"{p}"' for p in SERVER_PIP) + "\n"
                           + "!pip install -q --no-deps " + " ".join(f'"{p}"' for p in SERVER_PIP_NO_DEPS)),
             new_code_cell(TASK.cell(values)), new_code_cell(_SETUP), new_code_cell(_RUN), new_code_cell(_SUBMIT)]
    for i, (cell, tag) in enumerate(zip(cells, (None, "pip", "parameters", None, None, "submit"))):
        cell["id"] = f"cell-{i}"
        if tag:
            cell.metadata["tags"] = [tag]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return nb


def _bundle_readme(exp: str, model_rel: str) -> str:
    return f"""# Scoring-server bundle: {exp}

Built by `python -m lib.bundle build {exp}`, checked by `python -m lib.bundle check {exp}`. Self-contained:
`task.ipynb`, the `lib/` code it imports, and the model in `{model_rel}/` (a path without `train`, `drive` or
`sample_data`, which the uploader skips).

## Run it on the server
1. Upload this folder's content next to the server's `./data` folder and open `task.ipynb` in Jupyter.
2. Run all cells from the top in the interactive session. The first cell installs `aifactory` and the packages the
   server lacks; the inference cell writes `./submission.csv` (and `predictions.csv`, `kit_stats.json`).
3. The last cell submits. It reads your key from the environment variable `{KEY_ENV}` or from `~/.aif_key`;
   never type the key into the notebook. Without a key the cell does nothing, so when the server re-executes the
   notebook to score it, the cell is harmless.

Why interactively: `aif.submit` finds the notebook's name with `ipynbname`, which does not work under
papermill/nbconvert, and it zips the current directory as it is.
"""
