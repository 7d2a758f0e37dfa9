"""Run records (``submissions/<exp>/run.json``) and EXPERIMENTS.md, regenerated from them under a lock.

Command line:
    python -m lib.experiments score exp003 0.5600            # record a public score
    python -m lib.experiments score exp003 0.5712 --private  # record a private score
    python -m lib.experiments rebuild                        # regenerate EXPERIMENTS.md from the records
    python -m lib.experiments submitted exp003               # mark a run as submitted (before its score is known)
    python -m lib.experiments check exp003                   # is its submission.csv a copy of one already scored?
    python -m lib.experiments plot                           # local macro F1 against public score, as a PNG
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock

from . import metrics
from .atomic import write_text
from .errors import DiskFullError, ParameterError
from .paths import EXPERIMENTS_MD, ROOT, SUBMISSIONS
from .submission import SUBMISSION

RECORD = "run.json"
RUN_LOG = "run.log"  # a failed run's full traceback
BRIEF_ERRORS = (DiskFullError,)  # errors a notebook shows as their message alone (the traceback goes to RUN_LOG)
_NOT_PARAMETERS = ("exp", "workers", "cache_dir", "device")  # knobs that do not change a run's predictions
_DIFF_SHOWN = 4  # parameter changes named in the "changed" column before "+n more"
_VERSIONED = ("torch", "transformers", "numpy", "cv2", "dlib", "pandas", "sklearn", "PIL", "papermill")


def _atomic_write(path: Path, text: str) -> None:
    write_text(path, text)  # a temporary file renamed into place, created with the user's umask


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
    """Peak resident memory of this process (MB) and peak GPU memory when used (workers report their own peak)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20  # ru_maxrss: KiB on Linux, bytes on macOS
    out: dict[str, float | None] = {
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1),
        "gpu_mb": None}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run_dir(exp: str, root: Path = SUBMISSIONS, kind: str = "", create: bool = True) -> Path:
    """``submissions/<exp>/`` (made when ``create``); refuses to overwrite a run that has a recorded score, or a run
    of another kind."""
    d = Path(root) / exp
    old = read_record(d)
    if old and old.get("scores"):
        raise ParameterError("exp", exp, "a new experiment name",
                             why=f"{d} already holds a scored run ({old['scores']}); its record would be lost")
    if old and kind and old.get("kind") != kind:
        raise ParameterError("exp", exp, "a new experiment name",
                             why=f"{d} holds a run of kind {old.get('kind')!r}; a {kind!r} run would replace its record")
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


class Run:
    """One run's record: parameters, environment, stage times; ``finish`` writes it and refreshes EXPERIMENTS.md.

    The run's folder (``path``) is made when the run first uses ``dir``, to write there: a run killed before (kill -9
    while its files are preprocessed) leaves no empty folder."""

    def __init__(self, kind: str, exp: str, params: dict[str, Any], root: Path = SUBMISSIONS):
        self.root = Path(root)
        self.path = run_dir(exp, self.root, kind, create=False)
        self.t0 = time.time()
        self.log: Path | None = None  # the traceback of the error the run failed with (RUN_LOG), once written
        self.record: dict[str, Any] = {"exp": exp, "kind": kind, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "params": dict(params), "git": git_info(), "timings": {}, "scores": {}}

    @property
    def dir(self) -> Path:
        """The run's folder, made on first use: everything the run writes goes there."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

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

    def record_failures(self) -> None:
        """From now on, an exception in a notebook cell (IPython only) is recorded before it is shown: when this run
        has written files, ``run.json`` says ``status: failed`` with the error and ``run.log`` holds its traceback;
        when it has written nothing, its empty folder is removed. A full disk's message is shown alone
        (``handle_cell_errors``). Outside IPython this does nothing."""
        def fail(error: BaseException) -> Path | None:
            return self.log if self.fail(error) else None

        handle_cell_errors(fail, self.record["exp"])

    def fail(self, error: BaseException) -> Path | None:
        """Record that the run stopped with ``error``: ``run.json`` (status failed) and ``run.log`` (the traceback)
        when the run wrote anything, else no record and no empty folder. Returns the record's path, or None."""
        folder = self.path
        wrote = [f for f in folder.glob("*") if f.is_file() and f.stat().st_mtime >= self.t0 - 1]
        if not wrote:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            return None
        log = self.log = write_traceback(error, folder / RUN_LOG)
        try:
            where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
            return self.finish(status="failed", error=f"{type(error).__name__}: {error}",
                               error_at=" ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in where),
                               log=log.name if log else None)
        except (OSError, DiskFullError) as e:  # a full disk can refuse the record too: say so next to the error
            print(f"the run's failure could not be recorded in {folder / RECORD}: {e}", file=sys.stderr)
            return None

    def finish(self, **fields: Any) -> Path:
        """Write ``run.json`` (with versions, peak memory and total time) and regenerate EXPERIMENTS.md."""
        self.record["status"] = "complete"
        self.record.update(fields)
        self.record["timings"]["total_s"] = time.time() - self.t0
        if (self.dir / SUBMISSION).is_file():
            self.record["submission_labels_sha256"] = submission_fingerprint(self.dir / SUBMISSION)
        memory = peak_memory()
        if "worker_peak_rss_mb" in self.record["timings"]:  # worker processes report their own peak
            memory["worker_rss_mb"] = self.record["timings"].pop("worker_peak_rss_mb")
        self.record.update(versions=versions(), memory=memory,
                           finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        path = self.dir / RECORD
        _atomic_write(path, json.dumps(self.record, indent=2, default=str))
        rebuild_table(self.root)
        return path


def handle_cell_errors(fail: Callable[[BaseException], Path | None] | None = None, name: str = "notebook") -> None:
    """From now on (IPython only), an exception in a notebook cell goes first to ``fail`` (which records it and
    returns the log holding its traceback, or None), then is shown: in full, or, for ``BRIEF_ERRORS`` (a full disk,
    whose message says what to do), as its message alone and where its traceback went (``fail``'s log, else a
    temporary file named for ``name``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(ip: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
        log = fail(value) if fail else None
        if not isinstance(value, BRIEF_ERRORS):
            ip.showtraceback((etype, value, tb), tb_offset=tb_offset)  # shown and sent to the client as usual
            return
        log = log or write_traceback(value, Path(tempfile.gettempdir()) / f"kit-{name}-{RUN_LOG}")
        where = f"Its traceback is in {log}." if log else "Its traceback could not be written."
        ip._showtraceback(etype, value, [f"{etype.__name__}: {value}\n\n{where}"])  # sent as the cell's error

    shell.set_custom_exc((Exception,), handler)


def write_traceback(error: BaseException, path: Path) -> Path | None:
    """Write ``error``'s full traceback (chained exceptions included) to ``path``; None when it cannot be written."""
    try:
        write_text(path, "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except (OSError, DiskFullError) as e:
        print(f"the traceback could not be written to {path}: {e}", file=sys.stderr)
        return None
    return path


def write_record(run_dir: Path, record: dict[str, Any], root: Path = SUBMISSIONS) -> Path:
    """Write a run record written elsewhere (a sweep's, or a sweep trial's with its state) and regenerate EXPERIMENTS.md."""
    path = Path(run_dir) / RECORD
    _atomic_write(path, json.dumps(record, indent=2, default=str))
    rebuild_table(root)
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


def _model_name(r: dict[str, Any]) -> str:
    """The run's model; for an ensemble, the models of its inputs."""
    models = r.get("models")
    p = r.get("params", {})
    return " + ".join(map(str, models)) if models else str(p.get("model") or p.get("backbone") or "")  # train: backbone


def _row(r: dict[str, Any], changed: str = "") -> list[str]:
    p, m, s = r.get("params", {}), r.get("metrics") or {}, r.get("scores", {})
    minutes = r.get("timings", {}).get("total_s")
    kind = r.get("kind", "") + (" (failed)" if r.get("status") == "failed" else "")
    return [r["exp"], r.get("started", "")[:16].replace("T", " "), kind, _model_name(r),
            _fmt(p.get("frames")), _fmt(p.get("tta")), _fmt(p.get("aggregate")),
            r.get("status") or _fmt(m.get("macro_f1")), _loo_cell(m), _fmt(m.get("loo_reals_called_real"), 3),
            f"{minutes / 60:.1f} min" if minutes is not None else "", _fmt(s.get("public")), _fmt(s.get("private")),
            str(r.get("counts", {}).get("fallback_files", "")), changed]


def _loo_cell(m: dict[str, Any]) -> str:
    """Leave-one-out AUC: mean / worst (which group), for a training run validated that way."""
    if m.get("loo_mean_auc") is None:
        return ""
    return f"{m['loo_mean_auc']:.3f} / {_fmt(m.get('loo_worst_auc'), 3)} ({m.get('loo_worst', '')})"


HEADER = ["exp", "date (UTC)", "kind", "model", "frames", "tta", "aggregate", "local F1",
          "leave-one-out AUC mean / worst", "LOO reals called real", "runtime", "public", "private", "fallbacks",
          "changed vs best earlier run"]


def _merit(r: dict[str, Any]) -> tuple[int, float] | None:
    """How good a run looked: (1, public score) when scored, else (0, local macro F1); None when neither is known."""
    public = (r.get("scores") or {}).get("public")
    if public is not None:
        return 1, float(public)
    f1 = (r.get("metrics") or {}).get("macro_f1")
    return (0, float(f1)) if f1 is not None else None


def best_before(records: list[dict[str, Any]], i: int) -> dict[str, Any] | None:
    """The best of ``records[:i]``: highest public score if any earlier run has one, else highest local macro F1.

    Training runs (val F1 of a model) are compared only with training runs, submissions only with submissions.
    """
    training = records[i].get("kind") == "train"
    rated = [(m, k, r) for k, r in enumerate(records[:i])
             if (r.get("kind") == "train") == training and (m := _merit(r)) is not None]
    return max(rated, key=lambda t: (t[0], t[1]))[2] if rated else None


def param_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``name old→new`` for every parameter that differs (run names, workers, cache and device left out)."""
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in _NOT_PARAMETERS]
    return [f"{k} {_shown(old.get(k, '–'))}→{_shown(new.get(k, '–'))}" for k in keys if old.get(k, "–") != new.get(k, "–")]


def _shown(value: Any) -> str:
    """A parameter value as the "changed" column writes it ('' for an empty string)."""
    if isinstance(value, float):
        return f"{value:.4g}"  # 0.0003 stays 0.0003, 0.5 stays 0.5
    return _fmt(value) if value != "" else "''"


def changed_text(records: list[dict[str, Any]], i: int) -> str:
    """The EXPERIMENTS.md cell naming what changed in ``records[i]`` from the best earlier run."""
    r = records[i]
    if r.get("kind") == "sweep":
        return _sweep_text(r)
    best = best_before(records, i)
    if best is None:
        return ""
    diff = param_diff(best.get("params", {}), r.get("params", {}))
    if best.get("kind") != r.get("kind"):
        diff.insert(0, f"kind {best.get('kind')}→{r.get('kind')}")
    shown = ", ".join(diff[:_DIFF_SHOWN]) + (f", +{len(diff) - _DIFF_SHOWN} more" if len(diff) > _DIFF_SHOWN else "")
    return f"vs {best['exp']}: {shown or 'same parameters'}"


def _sweep_text(r: dict[str, Any]) -> str:
    """A sweep's "changed" cell: its best trial and how its trials ended (the trials have rows of their own)."""
    s, best = r.get("study") or {}, r.get("best") or {}
    counts = ", ".join(f"{n} {state}" for state, n in (s.get("states") or {}).items())
    head = f"best {best['exp']}: {s.get('objective')} {_fmt(best.get('value'))}" if best else "no completed trial"
    return f"{head} ({s.get('notebook')}; {counts or 'no trials'})"


def render_table(records: list[dict[str, Any]]) -> str:
    """EXPERIMENTS.md's text for ``records``."""
    lines = ["# Experiments", "",
             "Generated from `submissions/*/run.json` by `python -m lib.experiments rebuild`; do not edit by hand.",
             "Record a leaderboard score with `python -m lib.experiments score <exp> <score> [--private]`.",
             "\"changed\" names the parameters that differ from the best earlier run (public score when one is "
             "recorded, else local F1).", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _row(r, changed_text(records, i))) + " |"
              for i, r in enumerate(records)]
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
    return _update_scores(exp, {which: score}, which, root)


def mark_submitted(exp: str, root: Path = SUBMISSIONS) -> Path:
    """Record that a run's submission was sent (its score not known yet); the run folder is then protected."""
    return _update_scores(exp, {}, "submitted", root)


def _update_scores(exp: str, values: dict[str, Any], stamp: str, root: Path) -> Path:
    """Merge ``values`` and a ``<stamp>_recorded`` time into a run's ``scores``; regenerate EXPERIMENTS.md."""
    d = Path(root) / exp
    with FileLock(str(Path(root) / ".experiments.lock")):
        rec = read_record(d)
        if rec is None:
            known = [r["exp"] for r in read_records(root)]
            raise ParameterError("exp", exp, known or "no runs recorded yet", why=f"no {RECORD} in {d}")
        rec.setdefault("scores", {}).update(values)
        rec["scores"][f"{stamp}_recorded"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _atomic_write(d / RECORD, json.dumps(rec, indent=2, default=str))
    return rebuild_table(root)


def submission_fingerprint(path: Path) -> str:
    """SHA-256 of a submission's content: its filename→label pairs sorted by name (row order and format ignored)."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"filename": str}, keep_default_na=False)
    pairs = sorted(zip(df["filename"].astype(str), df["label"].astype(int)))
    return hashlib.sha256("".join(f"{n}\t{y}\n" for n, y in pairs).encode("utf-8")).hexdigest()


def _fingerprint_of(rec: dict[str, Any], root: Path) -> str | None:
    """A recorded run's submission fingerprint, from its submission.csv when it is still there."""
    path = Path(root) / rec["exp"] / SUBMISSION
    return submission_fingerprint(path) if path.is_file() else rec.get("submission_labels_sha256")


def duplicate_submissions(path: Path, root: Path = SUBMISSIONS, exclude: str = "") -> list[dict[str, Any]]:
    """The other runs whose submission has the same labels as ``path``, each with whether it was scored or sent."""
    path, fp = Path(path), submission_fingerprint(path)
    raw = hashlib.sha256(path.read_bytes()).hexdigest()
    out = []
    for rec in read_records(root):
        if rec["exp"] == exclude:
            continue
        if _fingerprint_of(rec, root) == fp or rec.get("submission_sha256") == raw:
            scores = rec.get("scores") or {}
            out.append({"exp": rec["exp"], "kind": rec.get("kind"), "public": scores.get("public"),
                        "submitted": bool(scores.get("public") is not None or scores.get("private") is not None
                                          or scores.get("submitted_recorded"))})
    return out


def check_duplicate(run_dir: Path, root: Path | None = None) -> list[dict[str, Any]]:
    """Warn when a run's submission.csv has the same labels as one already scored or submitted; returns all copies."""
    run_dir = Path(run_dir)
    root = Path(root) if root else run_dir.parent
    path = run_dir / SUBMISSION
    if not path.is_file():
        print(f"{run_dir.name}: no {SUBMISSION} to check")
        return []
    dups = duplicate_submissions(path, root, exclude=run_dir.name)
    sent = [d for d in dups if d["submitted"]]
    if sent:
        names = ", ".join(f"{d['exp']} (public {_fmt(d['public']) or 'not yet known'})" for d in sent)
        msg = f"DUPLICATE SUBMISSION: {path} has the same labels as {names}; submitting it again spends a slot for nothing"
        print("!" * 80 + "\n" + msg + "\n" + "!" * 80)
        warnings.warn(msg, stacklevel=2)
    elif dups:
        print(f"note: same labels as unsubmitted run(s) {', '.join(d['exp'] for d in dups)}")
    else:
        print(f"{run_dir.name}: submission labels differ from every other recorded run")
    return dups


def plot_scores(records: list[dict[str, Any]]):  # -> matplotlib Figure
    """Local macro F1 against public (and private) score per run: does local validation predict the leaderboard?"""
    import matplotlib.pyplot as plt
    import numpy as np

    pts = [(r["exp"], (r.get("metrics") or {}).get("macro_f1"), r.get("scores") or {}) for r in records]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for which, marker in (("public", "o"), ("private", "s")):
        xy = [(e, f, s[which]) for e, f, s in pts if f is not None and s.get(which) is not None]
        if xy:
            ax.scatter([f for _, f, _ in xy], [v for *_, v in xy], marker=marker, label=which)
            for e, f, v in xy:
                ax.annotate(e, (f, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
    both = [(f, s["public"]) for _, f, s in pts if f is not None and s.get("public") is not None]
    title = f"{len(both)} runs with a local F1 and a public score"
    if len(both) >= 3:
        title += f"; Spearman r = {metrics.spearman(*zip(*both)):.2f}"
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    ax.set(xlabel="local macro F1", ylabel="leaderboard macro F1", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.title.set_fontsize(9)
    if both:
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def save_score_plot(root: Path = SUBMISSIONS, out: Path | None = None) -> Path:
    """Write the local-vs-public plot of every run under ``root`` as a PNG (next to EXPERIMENTS.md by default)."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out) if out else (EXPERIMENTS_MD.parent if Path(root) == SUBMISSIONS else Path(root)) / "local_vs_public.png"
    fig = plot_scores(read_records(root))
    fig.savefig(out, dpi=120)
    return out


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
    sub.add_parser("submitted", help="mark a run as submitted (score not known yet)").add_argument("exp")
    sub.add_parser("check", help="exit 1 when a run's submission.csv repeats one already scored or submitted"
                   ).add_argument("exp")
    sub.add_parser("plot", help="PNG of local macro F1 against public score").add_argument("--out", type=Path)
    sub.add_parser("rebuild", help="regenerate EXPERIMENTS.md from submissions/*/run.json")
    ap.add_argument("--submissions", type=Path, default=SUBMISSIONS, help="folder of run folders (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "check":
            dups = check_duplicate(args.submissions / args.exp, args.submissions)
            sys.exit(1 if any(d["submitted"] for d in dups) else 0)
        path = {"score": lambda: record_score(args.exp, args.score, "private" if args.private else "public",
                                              root=args.submissions),
                "submitted": lambda: mark_submitted(args.exp, args.submissions),
                "plot": lambda: save_score_plot(args.submissions, args.out),
                "rebuild": lambda: rebuild_table(args.submissions)}[args.cmd]()
    except ParameterError as e:
        ap.exit(2, f"error: {e}\n")
    print(f"{'wrote' if args.cmd == 'plot' else 'updated'} {path}")


if __name__ == "__main__":
    main()
