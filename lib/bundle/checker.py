"""Check ``kernels/<exp>/`` the way the server will run it: static checks (syntax and APIs of the server's Python and
torch, imports the pip cell provides, the model folder, the key, the kit's own inference road), then a run of
task.ipynb offline next to a flat ./data, its outputs, its projection to the server's budget, and its per-file
probabilities against the kit's own infer on the same data."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from .. import models
from ..errors import ModelLoadError, ParameterError
from ..parameters import DATA_DIR, INFER
from ..paths import KERNELS, ROOT, SAMPLE
from .builder import ENTRY, TRAINING_PACKAGE
from .projection import project
from .server import (_PIP_MODULES, _NEWER_APIS, SERVER_BUDGET_S, SERVER_HAS, SERVER_PIP, SERVER_PIP_NO_DEPS,
                     SERVER_PYTHON, SERVER_WORKERS, SKIPPED_WORDS, key_leaks, server_like_env)


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



def static_problems(bundle: Path, max_size_mb: float = 2048) -> list[str]:
    """What can be seen wrong in a bundle without running it."""
    bundle = Path(bundle)
    if not (bundle / "task.ipynb").is_file():
        return [f"{bundle} has no task.ipynb (build it: python -m lib.bundle build <exp>)"]
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
            problems.append(f"lib/{f.name} differs from this checkout's: rebuild the bundle (python -m lib.bundle build "
                            f"{bundle.name})")
    return problems


def _model_problems(bundle: Path) -> list[str]:
    model = str(task_parameters(bundle).get("model", ""))
    folder = (bundle / model).resolve()
    if Path(model).is_absolute() or bundle.resolve() not in folder.parents or not (folder / "config.json").is_file():
        return [f"model={model!r} in task.ipynb does not resolve to a model folder inside the bundle"]
    try:
        models.model_classes(str(folder))
    except ModelLoadError as e:
        return [str(e)]
    return []



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
    done = subprocess.run(cmd, capture_output=True, text=True, env=server_like_env(), timeout=timeout_s)
    if done.returncode == 0:
        return run, []
    tail = [l for l in done.stderr.splitlines() if l.strip()][-6:]
    return run, ["task.ipynb raised an exception: " + " | ".join(tail)]


def _reference(manifest: dict[str, Any], data: Path, workdir: Path) -> tuple[dict[str, float], str]:
    """Per-file prob_fake of the kit's own ``predict_folder`` (project lib, the experiment's model) on the same data."""
    from .. import predict
    from ..options import InferOptions

    p = manifest["params"]
    source = Path(manifest["model_source"])
    model_dir = source if source.is_dir() else None
    note = "the experiment's model folder" if model_dir else "the bundle's model copy (the source folder is gone)"
    full = {**INFER.defaults, **p}
    lm = models.load_model(str(model_dir or (Path(workdir) / "bundle" / p["model"])), full["device"],
                           full["precision"], full["torch_compile"])
    pred = predict.predict_folder(data, lm, InferOptions.from_params(full), cache_dir=Path(workdir) / "ref-cache",
                                  workers=0, keep_cache=False, progress=False)
    return _probs_by_file(pred.table), note


def _probs_by_file(table: Any) -> dict[str, float]:
    """prob_fake by file; an escaped name (not valid UTF-8) is marked, so it never meets a valid name of that text."""
    escaped = table["name_escaped"].astype(str) == "True" if "name_escaped" in table else [False] * len(table)
    return {f"{n} (escaped)" if e else n: float(p) for n, p, e in zip(table["filename"], table["prob_fake"], escaped)}



def check(exp: str, data: str | Path | None = None, n_files: int = 3000, video_share: float = 0.5,
          max_size_mb: float = 2048, budget_s: float = SERVER_BUDGET_S, tolerance: float = 1e-4,
          model_speedup: float = 1.0, server_workers: int = SERVER_WORKERS, out_root: Path = KERNELS) -> dict[str, Any]:
    """Check ``kernels/<exp>/`` the way the server will run it; returns the report with its PASS/FAIL verdict."""
    bundle = Path(out_root) / exp
    data = DATA_DIR.checked(str(data)) if data else SAMPLE / "test"
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

    from ..submission import submission_problems

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

