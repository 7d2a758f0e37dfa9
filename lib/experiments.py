"""Run records (``submissions/<exp>/run.json``) and EXPERIMENTS.md, regenerated from them under a lock.

Command line:
    python -m lib.experiments score exp003 0.5600            # record a public score
    python -m lib.experiments score exp003 0.5712 --private  # record a private score
    python -m lib.experiments rebuild                        # regenerate EXPERIMENTS.md from the records
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock

from .errors import ParameterError
from .paths import EXPERIMENTS_MD, ROOT, SUBMISSIONS

RECORD = "run.json"
_EXP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
_VERSIONED = ("torch", "transformers", "numpy", "cv2", "dlib", "pandas", "sklearn", "PIL", "papermill")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def git_info(root: Path = ROOT) -> dict[str, Any]:
    """The commit the code ran at, and whether the work tree had uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError) as e:
        return {"commit": None, "dirty": None, "error": str(e)}


def versions() -> dict[str, str]:
    """Python, platform and the versions of the libraries that change numbers."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = str(getattr(mod, "__version__", getattr(mod, "DLIB_VERSION", "?")))
    return out


def peak_memory() -> dict[str, float | None]:
    """Peak resident memory of this process and of its finished children (MB), and peak GPU memory when used."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20  # ru_maxrss: KiB on Linux, bytes on macOS
    out: dict[str, float | None] = {
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1),
        "children_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale, 1),
        "gpu_mb": None}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def check_exp(exp: str) -> str:
    """A valid experiment name, or a new timestamped one when ``exp`` is empty."""
    if not exp:
        return datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if not _EXP_NAME.match(exp):
        raise ParameterError("exp", exp, "letters, digits, '.', '_' and '-' (a folder name under submissions/)")
    return exp


def run_dir(exp: str, root: Path = SUBMISSIONS) -> Path:
    """``submissions/<exp>/``; refuses to overwrite a run that already has a recorded score."""
    d = Path(root) / exp
    old = read_record(d)
    if old and old.get("scores"):
        raise ParameterError("exp", exp, "a new experiment name",
                             why=f"{d} already holds a scored run ({old['scores']}); its record would be lost")
    d.mkdir(parents=True, exist_ok=True)
    return d


class Run:
    """One run's record: parameters, environment, stage times; ``finish`` writes it and refreshes EXPERIMENTS.md."""

    def __init__(self, kind: str, exp: str, params: dict[str, Any], root: Path = SUBMISSIONS):
        self.root = Path(root)
        self.dir = run_dir(exp, self.root)
        self.t0 = time.time()
        self.record: dict[str, Any] = {"exp": exp, "kind": kind, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "params": dict(params), "git": git_info(), "timings": {}, "scores": {}}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage of the run (seconds added to ``timings[name + '_s']``)."""
        t = time.perf_counter()
        try:
            yield
        finally:
            key = f"{name}_s"
            self.record["timings"][key] = self.record["timings"].get(key, 0.0) + time.perf_counter() - t

    def add_times(self, **values: float) -> None:
        """Add stage times and counters measured elsewhere (decode/detect seconds summed over workers, cache hits)."""
        self.record["timings"].update(values)

    def finish(self, **fields: Any) -> Path:
        """Write ``run.json`` (with versions, peak memory and total time) and regenerate EXPERIMENTS.md."""
        self.record.update(fields)
        self.record["timings"]["total_s"] = time.time() - self.t0
        self.record.update(versions=versions(), memory=peak_memory(),
                           finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        path = self.dir / RECORD
        _atomic_write(path, json.dumps(self.record, indent=2, default=str))
        rebuild_table(self.root)
        return path


def read_record(run_dir: Path) -> dict[str, Any] | None:
    p = Path(run_dir) / RECORD
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def read_records(root: Path = SUBMISSIONS) -> list[dict[str, Any]]:
    """Every run record under ``root``, oldest first."""
    recs = [r for d in sorted(Path(root).glob("*/")) if (r := read_record(d))]
    return sorted(recs, key=lambda r: r.get("started", ""))


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or x == "":
        return ""
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _row(r: dict[str, Any]) -> list[str]:
    p, m, s = r.get("params", {}), r.get("metrics") or {}, r.get("scores", {})
    minutes = r.get("timings", {}).get("total_s")
    return [r["exp"], r.get("started", "")[:16].replace("T", " "), r.get("kind", ""), str(p.get("model", "")),
            _fmt(p.get("frames")), _fmt(p.get("tta")), _fmt(p.get("aggregate")), _fmt(m.get("macro_f1")),
            f"{minutes / 60:.1f} min" if minutes is not None else "", _fmt(s.get("public")), _fmt(s.get("private")),
            str(r.get("counts", {}).get("fallback_files", ""))]


HEADER = ["exp", "date (UTC)", "kind", "model", "frames", "tta", "aggregate", "local F1", "runtime", "public",
          "private", "fallbacks"]


def render_table(records: list[dict[str, Any]]) -> str:
    """EXPERIMENTS.md's text for ``records``."""
    lines = ["# Experiments", "",
             "Generated from `submissions/*/run.json` by `python -m lib.experiments rebuild`; do not edit by hand.",
             "Record a leaderboard score with `python -m lib.experiments score <exp> <score> [--private]`.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _row(r)) + " |" for r in records]
    return "\n".join(lines) + "\n"


def rebuild_table(root: Path = SUBMISSIONS, out: Path | None = None) -> Path:
    """Regenerate EXPERIMENTS.md from every record, atomically and under a lock (concurrent runs lose no row)."""
    out = Path(out) if out else (EXPERIMENTS_MD if Path(root) == SUBMISSIONS else Path(root) / "EXPERIMENTS.md")
    with FileLock(str(Path(root) / ".experiments.lock")):
        _atomic_write(out, render_table(read_records(root)))
    return out


def record_score(exp: str, score: float, which: str = "public", root: Path = SUBMISSIONS) -> Path:
    """Add a leaderboard score to a run's record and regenerate EXPERIMENTS.md."""
    if not 0.0 <= score <= 1.0:
        raise ParameterError("score", score, "a number in [0, 1]")
    d = Path(root) / exp
    with FileLock(str(Path(root) / ".experiments.lock")):
        rec = read_record(d)
        if rec is None:
            known = [r["exp"] for r in read_records(root)]
            raise ParameterError("exp", exp, known or "no runs recorded yet", why=f"no {RECORD} in {d}")
        rec.setdefault("scores", {})[which] = score
        rec["scores"][f"{which}_recorded"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _atomic_write(d / RECORD, json.dumps(rec, indent=2, default=str))
    return rebuild_table(root)


def _parent_notebook_paths() -> list[Path]:
    """The .ipynb paths on the command line of the process that started this kernel (papermill's), Linux only."""
    try:
        args = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = Path(os.readlink(f"/proc/{os.getppid()}/cwd"))
    except OSError:
        return []
    return [cwd / a for a in args if a.endswith(".ipynb")]


def save_notebook(dest_dir: Path, name: str = "notebook.ipynb") -> Path | None:
    """Copy the executed notebook (as papermill has saved it so far) into the run's folder.

    The output path comes from ``KIT_OUTPUT_NOTEBOOK`` or from papermill's command line; when neither gives it,
    a warning says so and None is returned.
    """
    env = os.environ.get("KIT_OUTPUT_NOTEBOOK")
    paths = [Path(env)] if env else _parent_notebook_paths()[1:2]
    if not paths or not paths[0].is_file():
        warnings.warn("the executed notebook was not found (not run by papermill?); it is not saved with the run", stacklevel=2)
        return None
    dest = Path(dest_dir) / name
    if paths[0].resolve() != dest.resolve():
        shutil.copyfile(paths[0], dest)
    return dest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lib.experiments", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("score", help="record a leaderboard score for a run")
    sc.add_argument("exp")
    sc.add_argument("score", type=float)
    sc.add_argument("--private", action="store_true", help="the private leaderboard's score")
    sub.add_parser("rebuild", help="regenerate EXPERIMENTS.md from submissions/*/run.json")
    ap.add_argument("--submissions", type=Path, default=SUBMISSIONS, help="folder of run folders (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        path = (record_score(args.exp, args.score, "private" if args.private else "public", root=args.submissions)
                if args.cmd == "score" else rebuild_table(args.submissions))
    except ParameterError as e:
        ap.exit(2, f"error: {e}\n")
    print(f"updated {path}")


if __name__ == "__main__":
    main()
