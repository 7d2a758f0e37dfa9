"""Preprocessing throughput by engine: in-process, the worker pool, and Dask LocalClusters of 1 and 2 workers; and
what the Dask path costs per file in scheduling.

    python bench/scale.py [--media DIR] [--frames 10] [--pool 2] [--clusters 1 2] [--limit N] [--dfdc-like]

Media: the dev set (../shared/data/dev/media, 39 files) when present, else the generated sample set
(data/sample/test, made with ``python -m lib.corpora.sample`` when absent). Every engine starts from an empty crop cache
(all misses). A cluster's start-up, and a warm-up on 2 files per worker (imports, the detector), are timed apart
from its run. Wall time shows throughput on this machine as it is
(other work competing for the cores included); CPU seconds of this process and all below it show the work itself:
the Dask path's overhead per file is its CPU per file minus in-process's (serialisation, the scheduler, the
worker's event loop, the nanny). Also the round trip of a task that does nothing with the same payload (submit →
result) through the ordered, bounded stream the pipeline uses. ``--dfdc-like`` also times one generated 1920x1080,
300-frame face clip in-process (DFDC's format) and projects DFDC's 100k clips on N machines.
Prints a table and writes bench/out/scale-cluster.json. Numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import engines, media, pipeline  # noqa: E402
from lib.options import PrepSettings  # noqa: E402
from lib.scale import cluster  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "dev" / "media"
SAMPLE = ROOT / "data" / "sample" / "test"
OUT = ROOT / "bench" / "out" / "scale-cluster.json"


def media_folder(given: str) -> Path:
    """The folder to measure: given, else the dev set, else the generated sample set (made when absent)."""
    if given:
        return Path(given)
    if DEV.is_dir():
        return DEV
    if not SAMPLE.is_dir():
        subprocess.run([sys.executable, "-m", "lib.corpora.sample", "--out", str(SAMPLE.parent)], cwd=ROOT, check=True)
    return SAMPLE


def noop(job: engines.Job) -> str:
    """A task that does nothing but return: its round trip is the scheduling cost."""
    return job.path.name


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every process below it, the reaped ones included: the worker
    pool's (reaped by the forkserver) and a LocalCluster's workers (alive). Unlike wall time, it is barely changed
    by other work competing for the cores."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def timed_run(files: list[Path], prep: PrepSettings, workers: Any) -> dict[str, float]:
    """Preprocess ``files`` into a fresh cache with ``workers`` (processes or an engine): wall and CPU seconds."""
    with tempfile.TemporaryDirectory(prefix="kit-scale-") as tmp:
        c0, t0 = cpu_seconds(), perf_counter()
        records = pipeline.preprocess(files, prep, Path(tmp), workers, progress=False)
        wall, cpu = perf_counter() - t0, cpu_seconds() - c0
    times = pipeline.stage_times(records)
    return {"wall_s": wall, "files_per_s": len(files) / wall, "cpu_s": cpu, "cpu_ms_per_file": 1000 * cpu / len(files),
            "stage_s": times["decode_s"] + times["detect_s"], "errors": sum(bool(r.error) for r in records)}


def noop_ms(eng: cluster.DaskEngine, files: list[Path], prep: PrepSettings, rounds: int = 3) -> float:
    """Milliseconds per file of no-op tasks through the ordered stream (best of ``rounds``)."""
    jobs = [engines.Job(f, prep, Path(tempfile.gettempdir())) for f in files]
    best = float("inf")
    for _ in range(rounds):
        t0 = perf_counter()
        list(eng.stream(noop, jobs, 0, progress=False))
        best = min(best, perf_counter() - t0)
    return 1000 * best / len(files)


def measure(files: list[Path], prep: PrepSettings, pool: int, clusters: list[int]) -> list[dict[str, Any]]:
    rows = [{"engine": "in-process", "workers": 0, **timed_run(files, prep, 0)}]
    rows.append({"engine": "worker pool", "workers": pool, **timed_run(files, prep, pool)})
    for n in clusters:
        t0 = perf_counter()
        with engines.opened(f"local:{n}") as eng:
            start = perf_counter() - t0
            t1 = perf_counter()
            timed_run(files[: 2 * n], prep, eng)  # each worker imports the kit and builds its detector first
            warm = perf_counter() - t1
            row = {"warmup_s": warm, "engine": f"LocalCluster local:{n}", "workers": n, **timed_run(files, prep, eng),
                   "startup_s": start, "noop_ms_per_file": noop_ms(eng, files, prep)}
        rows.append(row)
    base = rows[0]["wall_s"]
    for r in rows:
        r["speedup"] = base / r["wall_s"]
        r["overhead_ms_per_file"] = r["cpu_ms_per_file"] - rows[0]["cpu_ms_per_file"]
    return rows


def dfdc_like(prep: PrepSettings) -> dict[str, float]:
    """CPU seconds to preprocess one generated 1920x1080, 300-frame face clip in this process (best of 2): what one
    worker on a core of its own takes; decode and detect split as the stage timers saw it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from media_factory import face_frames, write_video

    with tempfile.TemporaryDirectory(prefix="kit-dfdc-like-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        frames = face_frames(30, (1920, 1080))
        write_video(clip, [frames[i % 30] for i in range(300)], fps=30)
        runs = []
        for _ in range(2):
            c0, t0 = process_time(), perf_counter()
            entry = pipeline.prepare_file(clip, prep)
            runs.append((process_time() - c0, perf_counter() - t0, entry.record))
    cpu, wall, record = min(runs, key=lambda x: x[0])
    share = cpu / wall  # the stage times are wall seconds: scaled to CPU seconds like the whole
    return {"s_per_clip": cpu, "wall_s": wall, "decode_s": record.decode_s * share,
            "detect_s": record.detect_s * share, "faces_found": record.faces_found, "frames_read": record.frames_read}


DFDC_CLIPS, DFDC_REALS = 100_000, 19_154  # DFDC's training set: ~100k clips, ~19k of them real (metadata.json)


def projection(clip: dict[str, float], efficiency: float, machines: list[int], workers: int) -> list[dict[str, Any]]:
    """Hours to preprocess DFDC on N machines of ``workers`` worker processes: clips × s/clip ÷ (N × workers ×
    efficiency); with box reuse the fakes pay decode + one detection instead of decode + detection on every frame."""
    per_frame_detect = clip["detect_s"] / max(clip["frames_read"], 1)
    reuse_fake = clip["decode_s"] + per_frame_detect
    with_reuse = DFDC_REALS * clip["s_per_clip"] + (DFDC_CLIPS - DFDC_REALS) * reuse_fake
    return [{"machines": n, "workers": n * workers,
             "hours": DFDC_CLIPS * clip["s_per_clip"] / (n * workers * efficiency) / 3600,
             "hours_box_reuse": with_reuse / (n * workers * efficiency) / 3600} for n in machines]


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| engine | workers | wall s | files/s | speed-up | CPU ms/file | CPU overhead ms/file | start-up s | "
            "no-op task ms/file |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        extra = [f"{r['startup_s']:.1f}", f"{r['noop_ms_per_file']:.1f}"] if "startup_s" in r else ["", ""]
        lines.append(f"| {r['engine']} | {r['workers']} | {r['wall_s']:.1f} | {r['files_per_s']:.2f} | "
                     f"{r['speedup']:.2f}x | {r['cpu_ms_per_file']:.0f} | {r['overhead_ms_per_file']:+.0f} | "
                     + " | ".join(extra) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", default="", help="flat media folder (default: the dev set, else the sample set)")
    ap.add_argument("--frames", type=int, default=10, help="frames sampled per video")
    ap.add_argument("--detect-width", type=int, default=640)
    ap.add_argument("--pool", type=int, default=2, help="worker processes of the pool")
    ap.add_argument("--clusters", type=int, nargs="*", default=[1, 2], help="LocalCluster sizes")
    ap.add_argument("--limit", type=int, default=0, help="first N files only (0: all)")
    ap.add_argument("--dfdc-like", action="store_true", help="also time one generated 1080p, 300-frame clip")
    ap.add_argument("--machines", type=int, nargs="*", default=[1, 4, 16, 64], help="projection: machine counts")
    ap.add_argument("--machine-workers", type=int, default=15, help="projection: worker processes per machine")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    folder = media_folder(args.media)
    files = media.list_media(folder)[: args.limit or None]
    prep = PrepSettings(frames=args.frames, detect_width=args.detect_width, size=224)
    print(f"{len(files)} files from {folder}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {prep}")
    rows = measure(files, prep, args.pool, args.clusters)
    result = {"media": str(folder), "files": len(files), "prep": prep.__dict__, "cpus": os.cpu_count(),
              "load_average_start": os.getloadavg()[0], "python": platform.python_version(), "rows": rows}
    if args.dfdc_like:
        result["dfdc_like"] = dfdc_like(prep)
        base = rows[0]["cpu_ms_per_file"]
        dask = [r for r in rows if r["engine"].startswith("LocalCluster")]
        eff = base / max(r["cpu_ms_per_file"] for r in dask) if dask else 1.0  # work ÷ work plus Dask's overhead
        result["projection"] = {"efficiency": eff, "machine_workers": args.machine_workers,
                                "rows": projection(result["dfdc_like"], eff, args.machines, args.machine_workers)}
    result["load_average_end"] = os.getloadavg()[0]
    print(table(rows))
    if "dfdc_like" in result:
        print(f"DFDC-like clip (1920x1080, 300 frames, {args.frames} sampled): {result['dfdc_like']}")
        proj = result["projection"]
        print(f"DFDC projection ({DFDC_CLIPS} clips, {args.machine_workers} workers per machine, efficiency "
              f"{proj['efficiency']:.2f} = in-process CPU per file / the Dask path's):")
        for r in proj["rows"]:
            print(f"  {r['machines']:>3} machines: {r['hours']:.1f} h; with box reuse {r['hours_box_reuse']:.1f} h")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
