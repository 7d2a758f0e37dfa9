"""What box reuse saves in training preprocessing: faces detected once per original, its boxes reused for its fakes.

    python bench/box_reuse.py [--originals 3] [--methods 4] [--frames 10] [--dev]

A miniature FaceForensics++ (generated: ``--originals`` face clips, each faked by ``--methods`` methods that keep
its geometry: the frames recoloured, a stand-in for a swap that keeps pose and place) is imported with
``lib.corpora.importers`` and preprocessed for training twice from an empty crop cache, in this process: detection on every
file, then ``box_reuse``. ``--dev`` also runs
the dev set (../shared/data/dev: real Celeb-DF fakes beside their originals) to show how often the check passes on
real swaps. Prints a table and writes bench/out/box-reuse.json. Numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

from lib import pipeline  # noqa: E402

from lib.scale import boxreuse
from lib.corpora.importers import import_corpus  # noqa: E402
from lib.options import PrepSettings  # noqa: E402
from lib.training.data import file_table  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "dev"
OUT = ROOT / "bench" / "out" / "box-reuse.json"
METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]


def miniature_ffpp(root: Path, originals: int, methods: int, n_frames: int = 60) -> Path:
    """original_sequences/youtube/c23/videos/00k.mp4 and manipulated_sequences/<method>/c23/videos/00k_00j.mp4."""
    from media_factory import face_frames, write_video

    for k in range(originals):
        frames = [np.clip(f.astype(int) + 9 * k, 0, 255).astype(np.uint8) for f in face_frames(n_frames, (320, 240))]
        real = root / "original_sequences/youtube/c23/videos" / f"{k:03d}.mp4"
        real.parent.mkdir(parents=True, exist_ok=True)
        write_video(real, frames)
        for m, method in enumerate(METHODS[:methods]):
            fake = root / f"manipulated_sequences/{method}/c23/videos" / f"{k:03d}_{(k + 1) % originals:03d}.mp4"
            fake.parent.mkdir(parents=True, exist_ok=True)
            tint = np.array([12 * (m + 1), -8 * m, 5], int)  # recoloured: the same pose and place
            write_video(fake, [np.clip(f.astype(int) + tint, 0, 255).astype(np.uint8) for f in frames])
    return root


def run(folder: Path, prep: PrepSettings, reuse: bool) -> dict[str, Any]:
    """Preprocess a dataset folder for training from an empty cache, in this process."""
    table = file_table(str(folder))
    with tempfile.TemporaryDirectory(prefix="kit-reuse-") as tmp:
        t0 = perf_counter()
        records = boxreuse.preprocess(table, prep, Path(tmp), 0, progress=False) if reuse else \
            pipeline.preprocess([Path(p) for p in table["path"]], prep, Path(tmp), 0, progress=False)
        wall = perf_counter() - t0
    times = pipeline.stage_times(records)
    out = {"files": len(records), "wall_s": wall, "decode_s": times["decode_s"], "detect_s": times["detect_s"],
           "detector_calls": int(sum(r.detections for r in records)), "crops": int(sum(r.n_crops for r in records))}
    if reuse:
        out["box_reuse"] = boxreuse.summary(records)
    return out


def compare(name: str, folder: Path, prep: PrepSettings) -> dict[str, Any]:
    plain, reused = run(folder, prep, False), run(folder, prep, True)
    return {"corpus": name, "detect": plain, "reuse": reused, "wall_saving": 1 - reused["wall_s"] / plain["wall_s"],
            "detect_speedup": plain["detect_s"] / max(reused["detect_s"], 1e-9)}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| corpus | files | mode | wall s | detect s | decode s | detector calls | reused / fakes |",
             "|" + "---|" * 8]
    for r in rows:
        for mode in ("detect", "reuse"):
            m = r[mode]
            share = f"{m['box_reuse']['reused']} / {m['box_reuse']['fakes']}" if mode == "reuse" else ""
            lines.append(f"| {r['corpus']} | {m['files']} | {mode} | {m['wall_s']:.1f} | {m['detect_s']:.1f} | "
                         f"{m['decode_s']:.1f} | {m['detector_calls']} | {share} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=3)
    ap.add_argument("--methods", type=int, default=4, choices=range(1, 5))
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--dev", action="store_true", help="also the dev set's Celeb-DF pairs (when present)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    prep = PrepSettings(frames=args.frames, size=224)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kit-mini-ffpp-") as tmp:
        src = miniature_ffpp(Path(tmp) / "ffpp", args.originals, args.methods)
        import_corpus("ff++", src, Path(tmp) / "imported")
        rows.append(compare(f"miniature FF++ ({args.originals}x{args.methods})", Path(tmp) / "imported", prep))
    if args.dev and (DEV / "labels.csv").is_file():
        rows.append(compare("dev set (Celeb-DF pairs)", DEV, prep))
    print(table(rows))
    for r in rows:
        print(f"{r['corpus']}: wall {100 * r['wall_saving']:.0f} % less, detection {r['detect_speedup']:.1f}x less; "
              f"{r['reuse']['box_reuse']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"prep": prep.__dict__, "rows": rows}, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")
    return {"rows": rows}


if __name__ == "__main__":
    main()
