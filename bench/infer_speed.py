"""Inference speed: the organiser's baseline (a) against the kit's infer, cold cache (b) and warm cache + other TTA (c).

    python bench/infer_speed.py [--corpus sample|dev|DIR] [--frames 40] [--tta flip] [--rounds 2]
    python bench/infer_speed.py --model-only      # the model's own forward time for (b)'s crops
    python bench/infer_speed.py --scale           # (b) on 25/50/100 % of the files and at fewer frames

Every run is a separate process (this script re-invoked with ``--mode``, answering JSON on stdout); (a), (b), (c)
alternate over ``--rounds`` rounds and the medians are printed. Prints numbers, never asserts them. Results are also
written to ``bench/out/*.json``. Default model: a random ViT-Small-sized classifier saved under bench/out/vit-small/.
"""

from __future__ import annotations

from time import perf_counter

T_START = perf_counter()  # before the heavy imports: "load" includes importing torch/transformers/dlib

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
for _p in (str(ROOT), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

MARK = "BENCH_JSON "
CORPORA = {"sample": ROOT / "data" / "sample" / "test", "dev": ROOT.parent / "shared" / "data" / "dev" / "media"}
VIT_SMALL = dict(num_hidden_layers=12, hidden_size=384, num_attention_heads=6, intermediate_size=1536,
                 patch_size=16, image_size=224)
# ViT-S/16 at 224: 4.6 GMACs per image (timm's model card) = 9.2 GFLOP; used only for the L4 projection
VIT_SMALL_GFLOP = 9.2
L4_FP16_TFLOPS = 121.0  # NVIDIA L4 datasheet: FP16 tensor core, dense (242 with sparsity)


# ---------------------------------------------------------------------------------------------------- set-up

def make_vit(folder: Path, size: int = 224, seed: int = 0, **overrides: Any) -> Path:
    """Save a random ViT image classifier {0: Realism, 1: Deepfake} with a ViTImageProcessor config to ``folder``."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    id2label = {0: "Realism", 1: "Deepfake"}
    cfg = ViTConfig(**{**VIT_SMALL, "image_size": size, **overrides}, num_labels=2, id2label=id2label,
                    label2id={v: k for k, v in id2label.items()})
    ViTForImageClassification(cfg).save_pretrained(folder)
    from lib.backbones import write_preprocessor_config

    write_preprocessor_config(folder, size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return folder


def resolve_model(model: str | None) -> str:
    """``--model``, else the ViT-Small-sized random model under bench/out/vit-small/ (made once)."""
    if model:
        return model
    folder = OUT / "vit-small"
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        make_vit(folder)
    return str(folder)


def resolve_corpus(corpus: str) -> Path:
    """``sample`` (generated when absent), ``dev`` (../shared/data/dev/media, read in place) or a folder."""
    folder = CORPORA.get(corpus, Path(corpus))
    if corpus == "sample" and not folder.is_dir():
        subprocess.run([sys.executable, "-m", "lib.corpora.sample"], cwd=ROOT, check=True)
    if not folder.is_dir():
        raise SystemExit(f"--corpus {corpus!r}: no such folder {folder}")
    return folder.resolve()


def corpus_files(folder: Path, limit: int = 0) -> list[Path]:
    """The media files of ``folder``; with ``limit``, the first ``limit`` of a fixed shuffle (kinds stay mixed)."""
    from lib.media import list_media

    files = list_media(folder)
    if limit:
        random.Random(0).shuffle(files)
        files = sorted(files[:limit])
    return files


# ---------------------------------------------------------------------------------------------------- children

def _rss() -> dict[str, float]:
    """Peak resident memory of this process and of its waited-for children (worker processes), MB."""
    return {"rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def child_a(args: argparse.Namespace, files: list[Path]) -> dict[str, Any]:
    """(a) the straightforward baseline."""
    import baseline_impl

    t0 = perf_counter()
    rows, times = baseline_impl.run(files, args.model, args.frames, args.tta)
    run_s = perf_counter() - t0 - times["load_s"]
    times["load_s"] += t0 - T_START
    prep = times.get("decode_s", 0.0) + times.get("detect_crop_s", 0.0)
    crops = sum(r["crops"] for r in rows) * (2 if args.tta == "flip" else 1)
    return {"rows": rows, "stages": {**times, "preprocess_s": prep}, "load_s": times["load_s"], "run_s": run_s,
            "crops_model": crops}


def child_kit(args: argparse.Namespace, files: list[Path], tta: str) -> dict[str, Any]:
    """(b)/(c) the kit's own road, ``predict.predict_files`` (the one infer.ipynb and the bundles take), on
    ``args.cache_dir``."""
    from lib import models, predict
    from lib import tta as tta_mod
    from lib.options import InferOptions

    extra = {"torch_compile": True} if args.compile else {}
    lm = models.load_model(args.model, device=args.device, precision=args.precision, **extra)
    opts = InferOptions(frames=args.frames, detect_every=args.detect_every, detect_scale=args.detect_scale, tta=tta,
                        batch_size=args.batch_size)
    t0 = perf_counter()
    pred = predict.predict_files(files, lm, opts, cache_dir=Path(args.cache_dir), workers=args.workers, progress=False)
    run_s = perf_counter() - t0
    rows = [{"filename": r.filename, "kind": r.kind, "prob_fake": float(r.prob_fake), "label": int(r.label),
             "crops": int(r.crops)} for r in pred.table.itertuples()]
    per_file = [{"kind": r.kind, "decode_s": r.decode_s, "detect_s": r.detect_s} for r in pred.records]
    stages = {k: float(v) for k, v in pred.times.items() if isinstance(v, (int, float))}
    return {"rows": rows, "stages": stages, "load_s": t0 - T_START, "run_s": run_s, "per_file": per_file,
            "crops_model": int(sum(r["crops"] for r in rows) * len(tta_mod.get(tta)))}


def child_model(args: argparse.Namespace) -> dict[str, Any]:
    """The model alone: forward passes over ``args.crops`` random uint8 crops, best batch size of a small sweep."""
    import numpy as np

    from lib import models

    extra = {"torch_compile": True} if args.compile else {}
    lm = models.load_model(args.model, device=args.device, precision=args.precision, **extra)
    rng = np.random.default_rng(0)
    sweep = {}
    for bs in args.sweep:
        batch = rng.integers(0, 256, (bs, lm.size, lm.size, 3), dtype=np.uint8)
        models.predict_crops(lm, batch)  # warm-up
        reps = max(1, -(-min(args.crops, 256) // bs))
        t0 = perf_counter()
        for _ in range(reps):
            models.predict_crops(lm, batch)
        sweep[bs] = (perf_counter() - t0) / (reps * bs)
    best = min(sweep, key=sweep.get)
    batch = rng.integers(0, 256, (best, lm.size, lm.size, 3), dtype=np.uint8)
    full, rest = divmod(args.crops, best)
    t0 = perf_counter()
    for _ in range(full):
        models.predict_crops(lm, batch)
    if rest:
        models.predict_crops(lm, batch[:rest])
    model_s = perf_counter() - t0
    return {"crops": args.crops, "best_batch_size": best, "model_s": model_s, "s_per_crop": model_s / max(1, args.crops),
            "sweep_s_per_crop": {str(k): v for k, v in sweep.items()}, "load_s": t0 - T_START}


def run_child(args: argparse.Namespace) -> None:
    """Entry point of a child process: one measurement, JSON on stdout after MARK."""
    files = corpus_files(Path(args.corpus), args.limit) if args.mode != "model" else []
    if args.mode == "a":
        out = child_a(args, files)
    elif args.mode in ("b", "c"):
        out = child_kit(args, files, args.tta if args.mode == "b" else args.tta_c)
    else:
        out = child_model(args)
    out.update(mode=args.mode, files=len(files), frames=args.frames, total_s=perf_counter() - T_START, **_rss())
    print(MARK + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------------- parent

def _child_argv(args: argparse.Namespace, mode: str, **over: Any) -> list[str]:
    opts = {"corpus": args.corpus_dir, "model": args.model, "frames": args.frames, "tta": args.tta,
            "tta-c": args.tta_c, "batch-size": args.batch_size, "workers": args.workers, "device": args.device,
            "precision": args.precision,
            "detect-every": args.detect_every, "detect-scale": args.detect_scale, "limit": args.limit,
            "cache-dir": args.cache_dir or "",
            "crops": args.crops, **over}
    argv = [sys.executable, str(Path(__file__).resolve()), "--mode", mode]
    for k, v in opts.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    argv += ["--sweep", *map(str, args.sweep)] + (["--compile"] if args.compile else [])
    return argv


def spawn(args: argparse.Namespace, mode: str, **over: Any) -> dict[str, Any]:
    """Run one child; its JSON with ``wall_s`` (the whole process, start-up included) added."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    t0 = perf_counter()
    proc = subprocess.run(_child_argv(args, mode, **over), capture_output=True, text=True, env=env, cwd=ROOT)
    wall = perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"--mode {mode} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1][len(MARK):])
    out["wall_s"] = wall
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] if key in r else r.get("stages", {}).get(key) for r in runs]
    vals = [v for v in vals if v is not None]
    return float(statistics.median(vals)) if vals else float("nan")


def agreement(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Share of files with the same label in (a) and (b), and the largest |Δ P(fake)|."""
    pa = {r["filename"]: r for r in a["rows"]}
    same = [pa[r["filename"]]["label"] == r["label"] for r in b["rows"]]
    delta = [abs(pa[r["filename"]]["prob_fake"] - r["prob_fake"]) for r in b["rows"]]
    return {"label_agreement": sum(same) / max(1, len(same)), "files": len(same),
            "max_abs_dprob": max(delta, default=0.0)}


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per run kind and the ratios the targets name."""
    keys = ["wall_s", "run_s", "load_s", "rss_self_mb", "rss_children_mb", "crops_model"]
    stage_keys = sorted({k for rs in runs.values() for r in rs for k in r.get("stages", {})})
    med = {m: {k: _median(rs, k) for k in keys + stage_keys if any(k in r or k in r.get("stages", {}) for r in rs)}
           for m, rs in runs.items()}
    a, b, c = med["a"], med["b"], med["c"]
    c_dd = c.get("decode_s", 0.0) + c.get("detect_s", 0.0)
    ratios = {
        "a_over_b_wall": a["wall_s"] / b["wall_s"],
        "a_over_b_run": a["run_s"] / b["run_s"],
        "a_prep_over_b_prep": a["preprocess_s"] / b["preprocess_s"],
        "a_prep_over_b_decode_detect_cpu": a["preprocess_s"] / (b.get("decode_s", 0.0) + b.get("detect_s", 0.0)),
        "c_decode_detect_pct_of_b_prep": 100 * c_dd / b["preprocess_s"],
        "c_prep_wall_pct_of_b_prep": 100 * c.get("preprocess_s", float("nan")) / b["preprocess_s"],
        **agreement(runs["a"][0], runs["b"][0]),
    }
    return {"median": med, "ratios": ratios}


def print_summary(res: dict[str, Any]) -> None:
    med, r, cfg = res["median"], res["ratios"], res["config"]
    print(f"\ncode {cfg['git']}, corpus {cfg['corpus']} ({cfg['files']} files), frames {cfg['frames']}, (a)/(b) tta {cfg['tta']}, "
          f"(c) tta {cfg['tta_c']}, {cfg['rounds']} round(s), model {cfg['model']}, batch {cfg['batch_size']}, "
          f"workers {cfg['workers']}, detect_every {cfg['detect_every']}, compile {cfg['compile']}")
    print(f"{'run':<22}{'wall s':>9}{'w/o load':>10}{'load s':>8}{'RSS MB':>8}{'+workers':>9}  stages (s, median)")
    names = {"a": "(a) baseline", "b": "(b) kit, cold cache", "c": "(c) kit, warm, other TTA"}
    for m, row in med.items():
        stages = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in row.items() if k.endswith("_s") and k not in
                           ("wall_s", "run_s", "load_s", "total_s"))
        print(f"{names[m]:<22}{row['wall_s']:>9.1f}{row['run_s']:>10.1f}{row['load_s']:>8.1f}"
              f"{row['rss_self_mb']:>8.0f}{row['rss_children_mb']:>9.0f}  {stages}")
    print(f"\n(a)/(b) wall: {r['a_over_b_wall']:.2f}x (without load: {r['a_over_b_run']:.2f}x)   [target ≥ 1.5x]")
    print(f"(a) preprocessing (decode+detect+crop) / (b) preprocessing wall: {r['a_prep_over_b_prep']:.2f}x   "
          "[target ≥ 4x]")
    print(f"(a) preprocessing / (b) decode+detect CPU-seconds summed over workers: "
          f"{r['a_prep_over_b_decode_detect_cpu']:.2f}x  (where (b) overlaps preprocessing with the model, its "
          "preprocess_s is the model's wait for crops, not a preprocessing wall)")
    print(f"(c) decode+detect: {r['c_decode_detect_pct_of_b_prep']:.1f}% of (b)'s preprocessing "
          f"(c's whole preprocess stage incl. cache look-ups: {r['c_prep_wall_pct_of_b_prep']:.1f}%)   [target ≤ 5%]")
    print(f"label agreement (a) vs (b): {100 * r['label_agreement']:.1f}% of {r['files']} files "
          f"(max |Δ P(fake)| {r['max_abs_dprob']:.3f})   [target ≥ 95%]")


def _git() -> str:
    """The commit of the code measured, with ``+dirty`` when lib/ or bench/ differ from it."""
    run = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    return run("rev-parse", "--short", "HEAD") + ("+dirty" if run("status", "--porcelain", "lib", "bench") else "")


def _config(args: argparse.Namespace, files: list[Path]) -> dict[str, Any]:
    return {"git": _git(), "corpus": args.corpus, "corpus_dir": args.corpus_dir, "files": len(files), "frames": args.frames,
            "tta": args.tta, "tta_c": args.tta_c, "rounds": args.rounds, "model": args.model,
            "batch_size": args.batch_size, "workers": args.workers, "detect_every": args.detect_every,
            "detect_scale": args.detect_scale, "compile": args.compile, "precision": args.precision,
            "cpu_count": os.cpu_count(), "limit": args.limit}


def bench_abc(args: argparse.Namespace, files: list[Path]) -> dict[str, Any]:
    """(a), (b), (c) alternating over ``args.rounds`` rounds; each (b) on a fresh cache that its (c) reuses."""
    runs: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache_dir:
            for mode in "abc":
                print(f"round {i + 1}/{args.rounds}: ({mode}) …", flush=True)
                runs[mode].append(spawn(args, mode, **{"cache-dir": cache_dir}))
                print(f"  wall {runs[mode][-1]['wall_s']:.1f} s", flush=True)
    res = {"config": _config(args, files), **summarize(runs), "runs": runs}
    print_summary(res)
    return res


def _matches(saved: dict[str, Any], args: argparse.Namespace) -> bool:
    cfg = saved.get("config", {})
    return all(cfg.get(k) == v for k, v in (("corpus_dir", args.corpus_dir), ("frames", args.frames),
                                              ("tta", args.tta), ("model", args.model), ("limit", args.limit),
                                              ("precision", args.precision)))


def bench_model_only(args: argparse.Namespace, files: list[Path]) -> dict[str, Any]:
    """The model's own forward time for the crops (b) pushed through, against (b)'s wall time."""
    saved_path = OUT / "infer_speed.json"
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else {}
    if _matches(saved, args):
        b = saved["median"]["b"]
        print(f"(b) from {saved_path.relative_to(ROOT)} ({saved['config']['rounds']} round(s))")
    else:
        print("no saved (b) for these settings: running (b) once …", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache_dir:
            b = spawn(args, "b", **{"cache-dir": cache_dir})
        b = {**b, **b["stages"]}
    crops = int(b["crops_model"])
    m = spawn(args, "model", crops=crops)
    sweep = ", ".join(f"{k}: {1000 * v:.1f}" for k, v in m["sweep_s_per_crop"].items())
    print(f"\nmodel only: {crops} crops in {m['model_s']:.1f} s at batch {m['best_batch_size']} "
          f"({1000 * m['s_per_crop']:.1f} ms/crop; sweep ms/crop {sweep})")
    print(f"(b) wall without load / model-only: {b['run_s'] / m['model_s']:.2f}x "
          f"(with load: {b['wall_s'] / m['model_s']:.2f}x; (b)'s own model stage {b.get('model_s', float('nan')):.1f} s)"
          "   [target ≤ 1.25x when model-bound]")
    res = {"config": _config(args, files), "b": b, "model_only": m, "b_run_over_model": b["run_s"] / m["model_s"]}
    res["projection"] = projection(args, saved if _matches(saved, args) else None, m)
    return res


def projection(args: argparse.Namespace, saved: dict[str, Any] | None, m: dict[str, Any]) -> dict[str, Any] | None:
    """Projected server time for ``--server-files`` files from measured per-file costs (a projection, not a measurement)."""
    if not saved:
        return None
    per_file = saved["runs"]["b"][0]["per_file"]
    rows = saved["runs"]["b"][0]["rows"]
    kinds = {k: [p["decode_s"] + p["detect_s"] for p in per_file if p["kind"] == k] for k in ("video", "image")}
    cpu = {k: sum(v) / len(v) for k, v in kinds.items() if v}
    crops = {k: sum(r["crops"] for r in rows if r["kind"] == k) / max(1, len(kinds[k])) for k in cpu}
    views = 2 if args.tta == "flip" else 1
    cpu_gflops = VIT_SMALL_GFLOP / m["s_per_crop"]
    out = {"cpu_s_per_file": cpu, "crops_per_file": crops, "views": views, "cpu_effective_gflops": cpu_gflops}
    for share in (0.5, 1.0):
        mix = {"video": share, "image": 1 - share}
        prep = sum(args.server_files * mix[k] * cpu.get(k, 0.0) for k in mix) / args.server_workers
        n = sum(args.server_files * mix[k] * crops.get(k, 0.0) * views for k in mix)
        gpu = {f"{u:.0%}": n * VIT_SMALL_GFLOP / (L4_FP16_TFLOPS * 1e3 * u) for u in (0.1, 0.4)}
        out[f"video_share_{share}"] = {"preprocess_s": prep, "crops": n, "l4_model_s": gpu,
                                       "cpu_model_s_here": n * m["s_per_crop"]}
        print(f"projection, {args.server_files} files, {share:.0%} video: preprocessing {prep / 60:.1f} min on "
              f"{args.server_workers} workers; {n:.0f} crops → model on an L4 {gpu['40%'] / 60:.1f}–"
              f"{gpu['10%'] / 60:.1f} min (10–40% of 121 fp16 TFLOPS; here on the CPU "
              f"{n * m['s_per_crop'] / 60:.0f} min) — a projection, not a measurement")
    return out


def bench_scale(args: argparse.Namespace, files: list[Path]) -> dict[str, Any]:
    """(b), cold cache, on 25/50/100 % of the files and at fewer frames: time and peak RSS against size."""
    rows = []
    points = [(max(1, round(len(files) * f)), args.frames) for f in (0.25, 0.5, 1.0)]
    points += [(len(files), fr) for fr in args.scale_frames if fr != args.frames]
    for n, fr in points:
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache_dir:
            r = spawn(args, "b", **{"cache-dir": cache_dir, "limit": n, "frames": fr})
        rows.append({"files": n, "frames": fr, "wall_s": r["wall_s"], "run_s": r["run_s"],
                     "preprocess_s": r["stages"].get("preprocess_s"), "model_s": r["stages"].get("model_s"),
                     "crops_model": r["crops_model"], "rss_self_mb": r["rss_self_mb"],
                     "rss_children_mb": max(r["rss_children_mb"], r["stages"].get("worker_peak_rss_mb", 0.0))})
        x = rows[-1]
        print(f"files {n:>4}  frames {fr:>3}  wall {x['wall_s']:7.1f} s  w/o load {x['run_s']:7.1f} s  "
              f"crops {x['crops_model']:>6}  RSS {x['rss_self_mb']:5.0f} MB (+workers {x['rss_children_mb']:4.0f})",
              flush=True)
    plot_scale(rows, args.frames)
    return {"config": _config(args, files), "rows": rows}


def plot_scale(rows: list[dict[str, Any]], frames: int) -> None:
    """bench/out/scale.png: time and peak RSS against files (at ``frames``) and against frames (all files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_all = max(r["files"] for r in rows)
    by_files = sorted((r for r in rows if r["frames"] == frames), key=lambda r: r["files"])
    by_frames = sorted((r for r in rows if r["files"] == n_all), key=lambda r: r["frames"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, pts, x in ((axes[0], by_files, "files"), (axes[1], by_frames, "frames")):
        ax.plot([p[x] for p in pts], [p["run_s"] for p in pts], "o-", label="time (s, w/o load)")
        ax.set_xlabel(x)
        ax.set_ylabel("seconds")
        ax2 = ax.twinx()
        ax2.plot([p[x] for p in pts], [p["rss_self_mb"] for p in pts], "s--", color="tab:red", label="peak RSS")
        ax2.set_ylabel("peak RSS of the main process (MB)")
        ax2.set_ylim(bottom=0)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(OUT / "scale.png", dpi=100)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="sample", help="sample (default), dev (../shared/data/dev/media) or a folder")
    p.add_argument("--model", default=None, help="model folder (default: random ViT-Small-sized, bench/out/vit-small)")
    p.add_argument("--frames", type=int, default=40, help="frames per video (default 40)")
    p.add_argument("--tta", default="flip", choices=("none", "flip"), help="TTA of (a) and (b) (default flip)")
    p.add_argument("--tta-c", default="none", help="TTA of (c), on (b)'s warm cache (default none)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of (a), (b), (c) (default 2)")
    p.add_argument("--batch-size", type=int, default=64, help="(b)/(c): crops per forward pass (default 64)")
    p.add_argument("--workers", type=int, default=-1, help="(b)/(c): preprocessing processes (default -1: auto)")
    p.add_argument("--detect-every", type=int, default=1, help="(b)/(c): detect on every K-th sampled frame")
    p.add_argument("--detect-scale", default="fixed", choices=("fixed", "adaptive"), help="(b)/(c): detect_scale")
    p.add_argument("--compile", action="store_true", help="(b)/(c): load_model(..., torch_compile=True)")
    p.add_argument("--device", default="cpu", help="(b)/(c) and model-only: cpu (default), cuda, auto")
    p.add_argument("--precision", default="auto", help="(b)/(c) and model-only: auto (default), fp32, fp16, bf16, int8 "
                   "((a) is always fp32)")
    p.add_argument("--limit", type=int, default=0, help="only the first N files of a fixed shuffle (0: all)")
    p.add_argument("--model-only", action="store_true", help="the model's forward time for (b)'s crops")
    p.add_argument("--sweep", type=int, nargs="+", default=[16, 32, 64, 128], help="model-only batch sizes")
    p.add_argument("--scale", action="store_true", help="(b) on 25/50/100%% of the files and --scale-frames")
    p.add_argument("--scale-frames", type=int, nargs="*", default=[10, 20], help="frames for --scale (default 10 20)")
    p.add_argument("--server-files", type=int, default=3000, help="files of the projected test set (default 3000)")
    p.add_argument("--server-workers", type=int, default=7, help="server preprocessing workers (default 7)")
    p.add_argument("--mode", choices=("a", "b", "c", "model"), help=argparse.SUPPRESS)
    p.add_argument("--cache-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--crops", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.mode:
        run_child(args)
        return
    args.model = resolve_model(args.model)
    corpus = resolve_corpus(args.corpus)
    args.corpus_dir = str(corpus)
    files = corpus_files(corpus, args.limit)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.scale:
        name, res = "scale", bench_scale(args, files)
    elif args.model_only:
        name, res = "model_only", bench_model_only(args, files)
    else:
        name, res = "infer_speed", bench_abc(args, files)
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=1))
    print(f"\nwritten: {(OUT / f'{name}.json').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
