"""How long a bundle would take on the server, projected from a measured local run."""

from __future__ import annotations

from typing import Any

from .server import SERVER_WORKERS


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

