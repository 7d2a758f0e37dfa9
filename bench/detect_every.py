"""What keyframe detection (``detect_every=K``) costs in crop quality and local F1, and what it saves in time.

    python bench/detect_every.py --corpus ../shared/data/dev/media --labels ../shared/data/dev/labels.csv \
        --model models/demo-detector --frames 40 --every 1 2 4 8 [--scales fixed adaptive]

For each K: detector calls, decode and detect CPU-seconds, the IoU of every frame's box against the box found by
detecting on every frame (K = 1), and, with --model and --labels, local macro F1 and AUC of the kit's infer path.
Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from lib import media, metrics, models, pipeline  # noqa: E402
from lib.options import PrepSettings  # noqa: E402


def _iou(a: list[int] | None, b: list[int] | None) -> float | None:
    if a is None or b is None:
        return None if a is None and b is None else 0.0
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix
    return ix / union if union else 0.0


def _boxes(records: list) -> dict[str, list]:
    return {r.filename: r.boxes for r in records if r.key}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="data/sample/test")
    ap.add_argument("--labels", default="")
    ap.add_argument("--model", default="")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--workers", type=int, default=-1)
    ap.add_argument("--scales", nargs="+", default=["fixed"], choices=["fixed", "adaptive"],
                    help="detect_scale values to measure at each K (the reference is K = 1, fixed)")
    args = ap.parse_args()
    files = media.list_media(Path(args.corpus))
    lm = models.load_model(args.model, device="cpu") if args.model else None
    size = lm.size if lm else 224
    truth = metrics.read_labels(Path(args.labels)) if args.labels else None
    ref_boxes, rows = None, []
    with tempfile.TemporaryDirectory(prefix="kit-detect-every-") as tmp:
        runs = [(1, "fixed")] + [(k, sc) for sc in args.scales for k in sorted(set(args.every))
                                 if (k, sc) != (1, "fixed")]
        for k, scale in runs:
            prep = PrepSettings(frames=args.frames, size=size, detect_every=k, detect_scale=scale)
            cdir = Path(tmp) / f"k{k}-{scale}"
            metas = pipeline.preprocess(files, prep, cdir, args.workers, progress=False)
            boxes = _boxes(metas)
            ref_boxes = ref_boxes or boxes
            ious = [i for f, bs in boxes.items() for a, b in zip(bs, ref_boxes.get(f, [])) if (i := _iou(a, b)) is not None]
            row = {"detect_every": k, "detect_scale": scale,
                   "detector_calls": sum(r.detections for r in metas),
                   "crops": sum(r.n_crops for r in metas), **pipeline.stage_times(metas),
                   "mean_iou_vs_every_frame": float(np.mean(ious)) if ious else None,
                   "frames_iou_below_0.5": int(sum(i < 0.5 for i in ious))}
            if lm is not None and truth is not None:
                probs, _ = pipeline.predict_frames(lm, metas, "none", 64, cdir, progress=False)
                m = metrics.evaluate(pipeline.file_predictions(metas, probs), truth)
                row.update(macro_f1=m["macro_f1"], auc=m["auc"])
            rows.append(row)
            print(json.dumps(row))
    print(f"\n{'K':>3} {'scale':>8} {'calls':>6} {'detect s':>9} {'decode s':>9} {'mean IoU':>9} {'IoU<0.5':>8} {'F1':>6} {'AUC':>6}")
    for r in rows:
        f1, auc = r.get("macro_f1"), r.get("auc")
        print(f"{r['detect_every']:>3} {r['detect_scale']:>8} {r['detector_calls']:>6} {r['detect_s']:>9.1f} "
              f"{r['decode_s']:>9.1f} "
              f"{r['mean_iou_vs_every_frame'] or 0:>9.3f} {r['frames_iou_below_0.5']:>8} "
              f"{'' if f1 is None else f'{f1:.3f}':>6} {'' if auc is None else f'{auc:.3f}':>6}")


if __name__ == "__main__":
    main()
