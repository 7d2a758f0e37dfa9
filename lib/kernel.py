"""Scoring-server bundles: ``kernels/<exp>/`` with task.ipynb, the lib code it imports and the model, checked locally.

Command line:
    python -m lib.kernel build exp003 [--model models/my-detector] [--params params/exp003.yaml]
    python -m lib.kernel check exp003 [--data data/val] [--files 3000] [--video-share 0.5] [--max-size-mb 2048]

The submission key is read from the environment (``AIF_KEY``) or from a key file outside the bundle
(``~/.aif_key``, or ``.aif_key`` at the project root, which git ignores); it is never written anywhere.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import yaml

from . import checks, models, settings
from .errors import ModelLoadError, ParameterError
from .experiments import git_info
from .paths import KERNELS, PARAMS, ROOT, SAMPLE, SUBMISSIONS, resolve

KEY_ENV = "AIF_KEY"
KEY_FILES = (Path.home() / ".aif_key", ROOT / ".aif_key")
SKIPPED_WORDS = ("train", "drive", "sample_data")  # aif.submit leaves out every directory whose path contains one
SERVER_PYTHON = (3, 10)
SERVER_BUDGET_S = 3 * 3600
SERVER_WORKERS = 7  # the server's 8 CPU cores → min(cpu - 1, 8) preprocessing workers
# What task.ipynb's pip cell installs: the newest releases that install on the server's Python 3.10 next to its
# torch 2.7.1 (checked with `pip download --python-version 3.10`); torch and Jupyter are the server's own.
SERVER_PIP = ("aifactory", "transformers==5.20.2", "huggingface_hub>=1.0,<3", "safetensors>=0.4",
              "opencv-python-headless==5.0.0.93", "dlib-bin==20.0.1.post1", "numpy>=1.24,<2.3", "pandas>=2.0,<2.4",
              "scikit-learn>=1.3,<1.8", "pillow>=10", "tqdm>=4.60", "filelock>=3.12", "pyyaml>=6", "matplotlib>=3.7",
              "torchvision==0.22.1")  # the release built for torch 2.7.1 (a no-op where the server already has it)
# Installed without their dependencies, so that pip never replaces the server's torch: timm (pure Python; the kit's
# EfficientNet backbones are timm models) needs only torch, torchvision, pyyaml, huggingface_hub and safetensors.
SERVER_PIP_NO_DEPS = ("timm==1.0.31",)
SERVER_HAS = {"torch", "IPython", "ipykernel"}
_PIP_MODULES = {"transformers": "transformers", "huggingface_hub": "huggingface_hub", "safetensors": "safetensors",
                "cv2": "opencv-python-headless", "dlib": "dlib-bin", "numpy": "numpy", "pandas": "pandas",
                "sklearn": "scikit-learn", "PIL": "pillow", "tqdm": "tqdm", "filelock": "filelock", "yaml": "pyyaml",
                "matplotlib": "matplotlib", "torchvision": "torchvision", "timm": "timm",
                "aifactory": "aifactory"}
# APIs newer than the server's Python 3.10 / torch 2.7 that the bundle must not use (a short list, by name).
_NEWER_APIS = ("tomllib", "typing.Self", "datetime.UTC", "enum.StrEnum", "itertools.batched", "typing.override",
               "torch.compiler.set_stance", "torch.accelerator")
_TASK_MODULES = ("media", "models", "predict", "settings", "submission", "experiments")
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


def _lib_closure(names: tuple[str, ...]) -> list[str]:
    """The lib modules ``names`` import, directly or not (relative imports, including ones inside functions).

    The training code is a folder of its own: a closure that reaches ``lib/training`` is a bug, refused here."""
    todo, seen = [*names, "__init__"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name == TRAINING_PACKAGE or not (ROOT / "lib" / f"{name}.py").is_file():  # a package or a missing module
            raise RuntimeError(f"the bundle's code would import lib.{name}: lib/{TRAINING_PACKAGE}/ and packages "
                                 "are never shipped to the server; move what inference needs out of it")
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
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    models.fake_indices({int(k): v for k, v in config.get("id2label", {}).items()})
    bundle = Path(out_root) / exp
    if bundle.exists():
        shutil.rmtree(bundle)
    (bundle / "lib").mkdir(parents=True)
    for name in _lib_closure(_TASK_MODULES):
        shutil.copy2(ROOT / "lib" / f"{name}.py", bundle / "lib" / f"{name}.py")
    model_rel = f"{BUNDLE_MODEL_DIR}/{_safe_name(source.name)}"
    files = _copy_model(source, bundle / model_rel)
    task = {**_defaults(), **{k: params[k] for k in settings.INFER_KEYS if k in params}, "model": model_rel}
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
from lib import media, models, pipeline, predict, settings  # noqa: E402'''

_RUN = '''params = settings.collect(globals(), settings.TASK_KEYS, "task.ipynb")
cfg = settings.check_task(params)
import json, resource, shutil, tempfile, time  # noqa: E402

t0 = time.time()
crop_dir = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="kit-crops-"))  # never inside the bundle
lm = models.load_model(model, device, precision, torch_compile)
print(f"{len(media.list_media(cfg['data_dir']))} files; {lm.info['architecture']} on {lm.device}; "
      f"P(fake) = classes {lm.fake_indices}; {cfg['options'].crops(lm.size)}")
load_s = time.time() - t0
# the one road that infer.ipynb takes too; crops are deleted once read (little disk)
pred = predict.predict_folder(cfg["data_dir"], lm, cfg["options"], BUNDLE, crop_dir, cfg["workers"], keep_cache=False)
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

    values = {**task, "data_dir": "./data", "labels": "", "cache_dir": "", "exp": exp, "model_name": exp}
    lines = [f"{k}: {type(v).__name__} = {v!r}  # {_HELP.get(k, 'baked in from the experiment')}"
             for k, v in values.items() if k in settings.TASK_KEYS]
    cells = [new_markdown_cell(f"# {exp}: scoring-server task\n\nBuilt by `python -m lib.kernel build {exp}`; see "
                               "README.md. Run every cell from this folder in an interactive Jupyter session."),
             new_code_cell("!pip install -q -U " + " ".join(f'"{p}"' for p in SERVER_PIP) + "\n"
                           + "!pip install -q --no-deps " + " ".join(f'"{p}"' for p in SERVER_PIP_NO_DEPS)),
             new_code_cell("\n".join(lines)), new_code_cell(_SETUP), new_code_cell(_RUN), new_code_cell(_SUBMIT)]
    for i, (cell, tag) in enumerate(zip(cells, (None, "pip", "parameters", None, None, "submit"))):
        cell["id"] = f"cell-{i}"
        if tag:
            cell.metadata["tags"] = [tag]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return nb


_HELP = {"data_dir": "the server's flat test folder", "model": "model folder inside this bundle",
         "cache_dir": "'' means a temporary folder outside the bundle, deleted after the run",
         "follow_links": "a link in ./data to a file outside it: True → read it, False → refuse it (a fallback row)",
         "model_name": "the name aif.submit gives this submission", "exp": "the experiment this bundle was built from"}


def _bundle_readme(exp: str, model_rel: str) -> str:
    return f"""# Scoring-server bundle: {exp}

Built by `python -m lib.kernel build {exp}`, checked by `python -m lib.kernel check {exp}`. Self-contained:
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


# ---------------------------------------------------------------------------------------------------------------- check
def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _code_sources(bundle: Path) -> dict[str, str]:
    """Every piece of Python the bundle runs: lib/*.py and task.ipynb's code cells (shell and magic lines dropped)."""
    out = {str(p.relative_to(bundle)): p.read_text(encoding="utf-8") for p in sorted(bundle.rglob("*.py"))}
    nb = nbformat.read(bundle / "task.ipynb", as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            out[f"task.ipynb[cell {i}]"] = "\n".join(l for l in c.source.splitlines() if not l.lstrip().startswith(("!", "%")))
    return out


def task_parameters(bundle: Path) -> dict[str, Any]:
    """The literal values of task.ipynb's parameters cell."""
    nb = nbformat.read(Path(bundle) / "task.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    return {n.target.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.AnnAssign) and n.value}


def _syntax_problems(sources: dict[str, str]) -> list[str]:
    problems = []
    for name, text in sources.items():
        try:
            ast.parse(text, feature_version=SERVER_PYTHON)
        except SyntaxError as e:
            problems.append(f"{name}: not valid Python {SERVER_PYTHON[0]}.{SERVER_PYTHON[1]} syntax (line {e.lineno}: {e.msg})")
        problems += [f"{name}: uses {api}, newer than the server's Python 3.10 / torch 2.7" for api in _NEWER_APIS
                     if api in text or (api.count(".") == 1 and f"from {api.split('.')[0]} import {api.split('.')[1]}" in text)]
    return problems


def _import_problems(sources: dict[str, str]) -> list[str]:
    """Imports that neither the bundle, the standard library, the server nor the pip cell provides."""
    pip_names = {p.split("=")[0].split(">")[0].split("<")[0] for p in (*SERVER_PIP, *SERVER_PIP_NO_DEPS)}
    problems = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for mod in mods:
                top = mod.split(".")[0]
                if top in sys.stdlib_module_names or top in SERVER_HAS or top == "lib":
                    continue
                if _PIP_MODULES.get(top) not in pip_names:
                    problems.append(f"{name}: imports {mod}, which is neither in the bundle nor installed by the pip cell")
    return sorted(set(problems))


def _known_keys() -> list[str]:
    keys = [os.environ.get(KEY_ENV, "")] + [p.read_text(encoding="utf-8").strip() for p in KEY_FILES if p.is_file()]
    return [k for k in keys if len(k) >= 6]


def key_leaks(folder: Path, keys: list[str] | None = None) -> list[str]:
    """Files under ``folder`` that contain a known submission key."""
    keys = _known_keys() if keys is None else keys
    hits = []
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file() and f.stat().st_size < 50 * 2**20:
            data = f.read_bytes()
            if any(k.encode() in data for k in keys):
                hits.append(str(f.relative_to(folder)))
    return hits


def static_problems(bundle: Path, max_size_mb: float = 2048) -> list[str]:
    """What can be seen wrong in a bundle without running it."""
    bundle = Path(bundle)
    if not (bundle / "task.ipynb").is_file():
        return [f"{bundle} has no task.ipynb (build it: python -m lib.kernel build <exp>)"]
    problems = []
    size_mb = _size(bundle) / 2**20
    if size_mb > max_size_mb:
        problems.append(f"bundle is {size_mb:.0f} MB, over the {max_size_mb:.0f} MB limit")
    skipped = sorted({str(f.parent.relative_to(bundle)) for f in bundle.rglob("*") if f.is_file()
                      and any(w in str(f.parent.relative_to(bundle)).lower() for w in SKIPPED_WORDS)})
    problems += [f"{d}/ would be left out by aif.submit (its path contains {', '.join(SKIPPED_WORDS)})" for d in skipped]
    problems += _model_problems(bundle)
    sources = _code_sources(bundle)
    problems += _code_problems(bundle, sources)
    problems += _syntax_problems(sources) + _import_problems(sources)
    problems += [f"{f} contains the submission key" for f in key_leaks(bundle)]
    return problems


def _called_attributes(sources: dict[str, str]) -> set[str]:
    """Names called as ``x.name(...)`` anywhere in ``sources`` (sources that do not parse are left to the syntax check)."""
    found: set[str] = set()
    for text in sources.values():
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        found |= {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    return found


def _code_problems(bundle: Path, sources: dict[str, str]) -> list[str]:
    """The bundle must run the kit's own inference road: task.ipynb calls ``predict.predict_folder``, its lib files are
    those of this checkout (else the local check would compare two different programs), and no training code."""
    problems = []
    if ENTRY not in _called_attributes({k: v for k, v in sources.items() if k.startswith("task.ipynb")}):
        problems.append(f"task.ipynb does not call predict.{ENTRY}: it would not run the kit's inference road")
    if (bundle / "lib" / TRAINING_PACKAGE).exists():
        problems.append(f"lib/{TRAINING_PACKAGE}/ is in the bundle: training code is never shipped")
    for f in sorted((bundle / "lib").glob("*.py")):
        own = ROOT / "lib" / f.name
        if not own.is_file() or own.read_bytes() != f.read_bytes():
            problems.append(f"lib/{f.name} differs from this checkout's: rebuild the bundle (python -m lib.kernel build "
                            f"{bundle.name})")
    return problems


def _model_problems(bundle: Path) -> list[str]:
    model = str(task_parameters(bundle).get("model", ""))
    folder = (bundle / model).resolve()
    if Path(model).is_absolute() or bundle.resolve() not in folder.parents or not (folder / "config.json").is_file():
        return [f"model={model!r} in task.ipynb does not resolve to a model folder inside the bundle"]
    id2label = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label", {})
    try:
        models.fake_indices({int(k): v for k, v in id2label.items()})
    except ModelLoadError as e:
        return [str(e)]
    return []


def _server_like_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KIT_WORKDIR", "PYTHONPATH", KEY_ENV)}
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}


def _copy_data(data: Path, dest: Path) -> int:
    """Copy the regular files of a flat folder; returns the bytes copied."""
    dest.mkdir()
    for f in sorted(Path(data).iterdir()):
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    return _size(dest)


def run_bundle(bundle: Path, data: Path, workdir: Path, timeout_s: int = 3 * 3600) -> tuple[Path, list[str]]:
    """Run task.ipynb as the server would (in a copy, next to a flat ./data, offline, pip and submit cells left out)."""
    run = Path(workdir) / "bundle"
    shutil.copytree(bundle, run)
    _copy_data(data, run / "data")
    nb = nbformat.read(run / "task.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if not {"pip", "submit"} & set(c.metadata.get("tags", []))]
    nbformat.write(nb, run / ".task-check.ipynb")
    cmd = [sys.executable, "-m", "papermill", "--log-level", "WARNING", "--cwd", str(run),
           str(run / ".task-check.ipynb"), str(run / ".task-check.out.ipynb")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_server_like_env(), timeout=timeout_s)
    if done.returncode == 0:
        return run, []
    tail = [l for l in done.stderr.splitlines() if l.strip()][-6:]
    return run, ["task.ipynb raised an exception: " + " | ".join(tail)]


def _reference(manifest: dict[str, Any], data: Path, workdir: Path) -> tuple[dict[str, float], str]:
    """Per-file prob_fake of the kit's own ``predict_folder`` (project lib, the experiment's model) on the same data."""
    from . import predict
    from .options import InferOptions

    p = manifest["params"]
    source = Path(manifest["model_source"])
    model_dir = source if source.is_dir() else None
    note = "the experiment's model folder" if model_dir else "the bundle's model copy (the source folder is gone)"
    full = {**_defaults(), **p}
    lm = models.load_model(str(model_dir or (Path(workdir) / "bundle" / p["model"])), full["device"],
                           full["precision"], full["torch_compile"])
    pred = predict.predict_folder(data, lm, InferOptions.from_params(full), cache_dir=Path(workdir) / "ref-cache",
                                  workers=0, keep_cache=False, progress=False)
    return _probs_by_file(pred.table), note


def _probs_by_file(table: Any) -> dict[str, float]:
    """prob_fake by file; an escaped name (not valid UTF-8) is marked, so it never meets a valid name of that text."""
    escaped = table["name_escaped"].astype(str) == "True" if "name_escaped" in table else [False] * len(table)
    return {f"{n} (escaped)" if e else n: float(p) for n, p, e in zip(table["filename"], table["prob_fake"], escaped)}


def _defaults() -> dict[str, Any]:
    """The infer notebook's own defaults, read from its parameters cell."""
    import papermill as pm

    from .paths import NOTEBOOKS

    return {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(str(NOTEBOOKS / "infer.ipynb")).items()}


def project(stats: dict[str, Any], n_files: int, video_share: float, model_speedup: float = 1.0,
            server_workers: int = SERVER_WORKERS) -> dict[str, Any]:
    """Time for ``n_files`` files from the measured run: start-up + per-kind seconds per file (no overlap credit).

    A file costs its decode+detect CPU seconds ÷ ``server_workers`` (preprocessing runs in parallel over files), plus
    its share, by crops, of the model's forward time ÷ ``model_speedup`` (e.g. the server's GPU against this machine)
    and of the rest of the prediction side (reading crops, TTA views, batching).
    """
    files = stats["per_file"]
    crops = [f.get("n_crops") or 0 for f in files]
    per_crop = (stats["model_s"] / model_speedup + max(0.0, stats["predict_s"] - stats["model_s"])) / (sum(crops) or 1)
    cost = [((f.get("decode_s") or 0) + (f.get("detect_s") or 0)) / server_workers + c * per_crop
            for f, c in zip(files, crops)]
    per_kind = {}
    for kind in ("video", "image"):
        idx = [i for i, f in enumerate(files) if f.get("kind") == kind]
        per_kind[kind] = sum(cost[i] for i in idx) / len(idx) if idx else None
    known = [v for v in per_kind.values() if v is not None]
    fill = max(known) if known else 0.0  # a kind absent from the check data costs as much as the dearer one
    share = {"video": video_share, "image": 1 - video_share}
    total = stats["load_s"] + n_files * sum(share[k] * (per_kind[k] if per_kind[k] is not None else fill) for k in share)
    return {"files": n_files, "video_share": video_share, "seconds_per_file": per_kind, "startup_s": stats["load_s"],
            "model_speedup": model_speedup, "server_workers": server_workers, "projected_s": total,
            "measured": {k: stats[k] for k in ("preprocess_s", "predict_s", "model_s", "decode_s", "detect_s", "workers")},
            "missing_kinds": sorted(k for k, v in per_kind.items() if v is None)}


def check(exp: str, data: str | Path | None = None, n_files: int = 3000, video_share: float = 0.5,
          max_size_mb: float = 2048, budget_s: float = SERVER_BUDGET_S, tolerance: float = 1e-4,
          model_speedup: float = 1.0, server_workers: int = SERVER_WORKERS, out_root: Path = KERNELS) -> dict[str, Any]:
    """Check ``kernels/<exp>/`` the way the server will run it; returns the report with its PASS/FAIL verdict."""
    bundle = Path(out_root) / exp
    data = Path(settings.data_dir(str(data))) if data else SAMPLE / "test"
    if not data.is_dir():
        raise ParameterError("data", str(data), "a flat folder of media", why="no such folder (make sample creates it)")
    reasons = static_problems(bundle, max_size_mb)
    report: dict[str, Any] = {"exp": exp, "bundle": str(bundle), "data": str(data), "checked":
                              datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if not (bundle / "task.ipynb").is_file():
        return _finish(report, reasons, out_root)
    report["bundle_mb"] = _size(bundle) / 2**20
    with tempfile.TemporaryDirectory(prefix=f"kit-check-{exp}-") as tmp:
        run, errors = run_bundle(bundle, data, Path(tmp))
        reasons += errors
        if not errors:
            reasons += _run_problems(run, report, n_files, video_share, (model_speedup, server_workers), budget_s)
            manifest = json.loads((bundle / "kernel.json").read_text(encoding="utf-8"))
            reasons += _equivalence(run, manifest, data, Path(tmp), tolerance, report)
        reasons += [f"the run left the key in {f}" for f in key_leaks(run)]
    return _finish(report, reasons, out_root)


def _run_problems(run: Path, report: dict[str, Any], n_files: int, video_share: float,
                  speedups: tuple[float, int], budget_s: float) -> list[str]:
    """Checks of what the run produced: submission, per-file exceptions, memory, disk, time and its projection."""
    import pandas as pd

    from .submission import submission_problems

    problems = [f"submission.csv: {p}" for p in submission_problems(run / "submission.csv", run / "data")]
    preds = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    raised = preds[preds["fallback"] == "exception"]
    problems += [f"{r.filename}: exception during preprocessing ({r.reason})" for r in raised.itertuples()]
    stats = json.loads((run / "kit_stats.json").read_text(encoding="utf-8"))
    proj = project(stats, n_files, video_share, *speedups)
    report.update(files=stats["files"], fallbacks=int((preds["fallback"] != "").sum()), seconds=stats["total_s"],
                  peak_rss_mb=stats["rss_mb"], peak_worker_rss_mb=stats["worker_peak_rss_mb"], peak_gpu_mb=stats["gpu_mb"],
                  run_disk_mb=(_size(run) - _size(run / "data")) / 2**20 - report["bundle_mb"],
                  crop_cache_peak_mb=stats["cache_peak_bytes"] / 2**20, projection=proj, budget_s=budget_s)
    if proj["projected_s"] > budget_s:
        problems.append(f"projected {proj['projected_s'] / 3600:.2f} h for {n_files} files, over the "
                        f"{budget_s / 3600:.1f} h budget")
    return problems


def _equivalence(run: Path, manifest: dict[str, Any], data: Path, tmp: Path, tolerance: float,
                 report: dict[str, Any]) -> list[str]:
    """The bundle's per-file probabilities must equal the kit's own infer path on the same data."""
    import pandas as pd

    bundle_probs = _probs_by_file(pd.read_csv(run / "predictions.csv", keep_default_na=False))
    ref, note = _reference(manifest, data, tmp)
    diffs = {f: abs(float(bundle_probs.get(f, float("nan"))) - p) for f, p in ref.items()}
    worst = max(diffs.values(), default=0.0)
    report["equivalence"] = {"reference": note, "files": len(ref), "max_abs_diff": worst, "tolerance": tolerance}
    bad = sorted(f for f, d in diffs.items() if not d <= tolerance)
    return [f"{len(bad)} files differ from the experiment's own infer run by more than {tolerance} "
            f"(max {worst:.2e}): {bad[:5]}"] if bad else []


def _finish(report: dict[str, Any], reasons: list[str], out_root: Path) -> dict[str, Any]:
    report.update(verdict="FAIL" if reasons else "PASS", reasons=reasons)
    path = Path(out_root) / f"{report['exp']}-check.json"
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    report["report_file"] = str(path)
    return report


def format_report(r: dict[str, Any]) -> str:
    """The check's verdict and figures as text."""
    lines = [f"{r['verdict']}: kernels/{r['exp']} on {r['data']}"]
    lines += [f"  - {x}" for x in r["reasons"]]
    if "projection" in r:
        p = r["projection"]
        per = ", ".join(f"{k} {v:.2f} s" for k, v in p["seconds_per_file"].items() if v is not None)
        lines += [f"  ran {r['files']} files in {r['seconds']:.1f} s ({r['fallbacks']} fallbacks); per file: {per}",
                  f"  peak RSS {r['peak_rss_mb']:.0f} MB (each worker ≤ {r['peak_worker_rss_mb']:.0f} MB), GPU "
                  f"{r['peak_gpu_mb'] if r['peak_gpu_mb'] is not None else '-'} MB; bundle {r['bundle_mb']:.1f} MB, run "
                  f"wrote {r['run_disk_mb']:.1f} MB, crop cache peak {r['crop_cache_peak_mb']:.1f} MB",
                  f"  projection: {p['files']} files ({p['video_share']:.0%} videos) ≈ {p['projected_s'] / 3600:.2f} h "
                  f"of the {r['budget_s'] / 3600:.1f} h budget (start-up {p['startup_s']:.0f} s; measured here: decode+detect "
                  f"{p['measured']['decode_s'] + p['measured']['detect_s']:.1f} CPU-s, model {p['measured']['model_s']:.1f} s; "
                  f"assumed on the server: {p['server_workers']} preprocessing workers, model ×{p['model_speedup']}){'; no ' + ', '.join(p['missing_kinds']) + ' in the check data' if p['missing_kinds'] else ''}"]
    if "equivalence" in r:
        e = r["equivalence"]
        lines.append(f"  same as the kit's infer ({e['reference']}): max |Δprob| {e['max_abs_diff']:.2e} over {e['files']} files")
    lines.append(f"  report: {r['report_file']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lib.kernel", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write kernels/<exp>/")
    b.add_argument("exp")
    b.add_argument("--model", help="local model folder (overrides the params file's model)")
    b.add_argument("--params", help="params YAML (default: params/<exp>.yaml, else submissions/<exp>/run.json)")
    c = sub.add_parser("check", help="run kernels/<exp>/ the way the server will and give a verdict")
    c.add_argument("exp")
    c.add_argument("--data", help="flat folder of media (default: data/sample/test)")
    c.add_argument("--files", type=int, default=3000, help="test-set size to project (default %(default)s)")
    c.add_argument("--video-share", type=float, default=0.5, help="share of videos in that test set (default %(default)s)")
    c.add_argument("--max-size-mb", type=float, default=2048, help="bundle size limit (default %(default)s)")
    c.add_argument("--budget-h", type=float, default=3.0, help="server time budget in hours (default %(default)s)")
    c.add_argument("--model-speedup", type=float, default=1.0,
                   help="how much faster the server runs the model than this machine (default %(default)s: no guess)")
    c.add_argument("--server-workers", type=int, default=SERVER_WORKERS,
                   help="preprocessing processes on the server (default %(default)s: 8 cores - 1)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            print(f"built {build(args.exp, args.model, args.params)}")
            return
        r = check(args.exp, args.data, args.files, args.video_share, args.max_size_mb, args.budget_h * 3600,
                  model_speedup=args.model_speedup, server_workers=args.server_workers)
    except (ParameterError, ModelLoadError) as e:
        ap.exit(2, f"error: {e}\n")
    print(format_report(r))
    sys.exit(0 if r["verdict"] == "PASS" else 1)


if __name__ == "__main__":
    main()
