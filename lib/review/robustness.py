"""Will the detector survive the server's media? The same labelled files re-encoded, downscaled and blurred, scored
again through the kit's one road (``lib.predict.predict_files``), with AUC and macro F1 per perturbation.

Each perturbed file is written once into a cache folder keyed by the source file's content and the perturbation's
recipe (``<perturb_dir>/<name>-<recipe hash>/<digest[:2]>/<digest>.<ext>``), so a rerun re-encodes nothing, and the
crop cache (keyed by file content) holds the crops of each perturbed version apart. Videos go through a static ffmpeg
with libx264 (``imageio-ffmpeg``); images through Pillow and OpenCV.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import cache, checks, frames, metrics, names, predict
from ..atomic import write_atomic
from ..errors import MediaError, ParameterError
from ..media import media_kind
from ..progress import tqdm
from .curves import LEVEL, resample_units

RECIPE = 1  # bump when a recipe changes what a perturbed file holds (its cache folder changes with it)
X264_PRESET = "veryfast"  # encoder speed: at a given CRF, slower presets give smaller files of about the same quality
GEOMETRY_CRF = 18  # videos downscaled or blurred are re-encoded at this (near visually lossless) CRF


@dataclass(frozen=True)
class Perturbation:
    """One way to degrade a file: images get ``jpeg`` (0: lossless PNG), videos H.264 at ``crf`` (0: GEOMETRY_CRF);
    both are first scaled by ``scale`` (area averaging) and blurred with a Gaussian of ``sigma`` pixels."""

    name: str
    family: str  # compression | downscale | blur: one panel of the figure each
    level: str  # its tick label in that panel
    jpeg: int = 0
    crf: int = 0
    scale: float = 1.0
    sigma: float = 0.0

    def text(self) -> str:
        """What it does, in words."""
        parts = [f"images JPEG quality {self.jpeg}" if self.jpeg else "",
                 f"videos H.264 CRF {self.crf}" if self.crf else "",
                 f"scaled to {self.scale:g} of each side" if self.scale != 1 else "",
                 f"Gaussian blur σ {self.sigma:g} px" if self.sigma else ""]
        geometry = not (self.jpeg or self.crf)
        tail = f" (images saved as PNG, videos H.264 CRF {GEOMETRY_CRF})" if geometry else ""
        return ", ".join(p for p in parts if p) + tail

    def recipe(self) -> str:
        """Everything that decides the perturbed bytes: the key of its cache folder."""
        return json.dumps({"recipe": RECIPE, "preset": X264_PRESET, "geometry_crf": GEOMETRY_CRF, **asdict(self)},
                          sort_keys=True)


PERTURBATIONS = {p.name: p for p in (
    Perturbation("jpeg90_crf23", "compression", "JPEG 90\nCRF 23", jpeg=90, crf=23),
    Perturbation("jpeg70_crf30", "compression", "JPEG 70\nCRF 30", jpeg=70, crf=30),
    Perturbation("jpeg50_crf36", "compression", "JPEG 50\nCRF 36", jpeg=50, crf=36),
    Perturbation("half", "downscale", "½", scale=0.5),
    Perturbation("quarter", "downscale", "¼", scale=0.25),
    Perturbation("blur", "blur", "σ 1 px", sigma=1.0),
)}
FAMILIES = {"compression": "none", "downscale": "1", "blur": "none"}  # each panel's unperturbed tick


def check(value: Any) -> list[Perturbation]:
    """The perturbations named in ``value`` (a list of PERTURBATIONS' names; [] for none)."""
    chosen = checks.names("robustness", value, "a list of perturbation names")
    for name in chosen:
        if name not in PERTURBATIONS:
            raise ParameterError("robustness", value, list(PERTURBATIONS), why=f"no perturbation {name!r}")
    return [PERTURBATIONS[n] for n in dict.fromkeys(chosen)]


def ffmpeg() -> str:
    """The path of the ffmpeg executable that imageio-ffmpeg ships (with libx264)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise ParameterError("robustness", "video perturbations", "[] (no robustness grid)",
                             why="they need imageio-ffmpeg: pip install imageio-ffmpeg==0.8.1") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def perturbed_path(root: Path, src: Path, p: Perturbation, digest: str | None = None) -> Path:
    """Where the perturbed version of ``src`` lives: keyed by its content and ``p``'s recipe."""
    digest = digest or cache.file_digest(src)
    recipe = hashlib.sha256(p.recipe().encode()).hexdigest()[:10]
    ext = ".mp4" if media_kind(src) == "video" else ".jpg" if p.jpeg else ".png"
    return Path(root) / f"{p.name}-{recipe}" / digest[:2] / f"{digest}{ext}"


def perturb_image(src: Path, dest: Path, p: Perturbation) -> Path:
    """Write ``src`` (read upright, as the kit reads it) scaled, blurred and saved as JPEG ``p.jpeg`` or PNG."""
    from PIL import Image

    rgb = frames.read_image(src)
    if p.scale != 1:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (max(1, round(w * p.scale)), max(1, round(h * p.scale))), interpolation=cv2.INTER_AREA)
    if p.sigma:
        rgb = cv2.GaussianBlur(rgb, (0, 0), p.sigma)
    buf = io.BytesIO()
    options = {"format": "JPEG", "quality": p.jpeg} if p.jpeg else {"format": "PNG", "compress_level": 1}
    Image.fromarray(rgb).save(buf, **options)
    return write_atomic(dest, lambda f: f.write(buf.getvalue()), buf.tell())


def perturb_video(src: Path, dest: Path, p: Perturbation) -> Path:
    """Write ``src``'s first video stream scaled, blurred and encoded as H.264 (libx264, CRF ``p.crf``), no audio."""
    filters = [f"scale=trunc(iw*{p.scale:g}/2)*2:trunc(ih*{p.scale:g}/2)*2:flags=area"]  # even sides for yuv420p
    if p.sigma:
        filters.append(f"gblur=sigma={p.sigma:g}")
    tmp = dest.parent / f".{dest.stem}.{os.getpid()}.tmp.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(src), "-map", "0:v:0", "-an",
           "-vf", ",".join(filters), "-c:v", "libx264", "-preset", X264_PRESET, "-crf", str(p.crf or GEOMETRY_CRF),
           "-pix_fmt", "yuv420p", str(tmp)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            raise MediaError(f"ffmpeg could not re-encode it ({done.stderr.strip()[-300:] or done.returncode})")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def ensure(files: list[Path], p: Perturbation, root: Path, progress: bool = True
           ) -> tuple[dict[Path, Path], dict[Path, str], float]:
    """The perturbed version of each file (made once, then read from ``root``); the files that could not be
    perturbed with the reason; and the seconds spent making the new ones."""
    made, failed, seconds = {}, {}, 0.0
    for src in tqdm(files, desc=f"perturb {p.name}", unit="file", disable=not progress):
        try:
            dest = perturbed_path(root, src, p)
            if not dest.is_file():
                t0 = time.perf_counter()
                (perturb_video if media_kind(src) == "video" else perturb_image)(src, dest, p)
                seconds += time.perf_counter() - t0
            made[src] = dest
        except (MediaError, OSError, subprocess.SubprocessError, ValueError) as e:
            failed[src] = f"{type(e).__name__}: {e}"
    return made, failed, seconds


@dataclass
class Robustness:
    """AUC and macro F1 per perturbation, the per-file scores behind them and the figure."""

    table: pd.DataFrame
    predictions: pd.DataFrame  # perturbation, filename, truth, prob_fake, label, fallback, reason
    figure: Any = None
    failed: dict[str, dict[str, str]] = field(default_factory=dict)  # perturbation -> file -> why it was left out

    def record(self) -> dict[str, Any]:
        """The table as plain values, for run.json."""
        return {"rows": json.loads(self.table.to_json(orient="records")), "failed": self.failed}


def _row(name: str, text: str, scored: pd.DataFrame, threshold: float, by: str, n: int, level: float,
         seed: int) -> dict[str, Any]:
    """One line of the table: AUC and macro F1 with intervals, reals called real, fallbacks."""
    units, _ = resample_units(scored, by)
    y, s = scored["truth"].to_numpy(), scored["prob_fake"].to_numpy(float)
    a = metrics.bootstrap(y, s, units, metrics.auc, n, level, seed)
    f = metrics.bootstrap(y, s, units, metrics.f1_at(threshold), n, level, seed)
    fallbacks = int((scored["fallback"].fillna("") != "").sum()) if "fallback" in scored.columns else 0
    return {"perturbation": name, "what": text, "files": len(scored), "AUC": a.value, "AUC low": a.low,
            "AUC high": a.high, "macro F1": f.value, "F1 low": f.low, "F1 high": f.high,
            "reals called real": metrics.reals_called_real(threshold)(y, s), "fallbacks": fallbacks}


def _scored(scores: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows of ``scores`` with the perturbed predictions of ``table`` in place of their own."""
    keep = [c for c in ("filename", "truth", "origin", "source", "kind") if c in scores.columns]
    return scores[keep].merge(table[["filename", "prob_fake", "label", "fallback", "reason"]], on="filename")


def run_grid(scores: pd.DataFrame, files: list[Path], lm: Any, opts: Any, perturbations: list[Perturbation],
             root: Path, threshold: float, cache_dir: Path | None = None, workers: Any = -1, by: str = "origin",
             n: int = 1000, level: float = LEVEL, seed: int = 0, progress: bool = True,
             **where: Any) -> tuple[Robustness, dict]:
    """Score ``files`` (the labelled files behind ``scores``) under each perturbation; returns the result and the
    seconds spent per perturbation (``perturb_s``: making new perturbed files, ``predict_s``: crops and model).
    ``where`` (``cluster``, ``file_timeout``) goes to ``predict.predict_files`` as it is."""
    rows = [_row("none", "the files as they are", scores, threshold, by, n, level, seed)]
    preds, failed, times = [], {}, {}
    for p in perturbations:
        made, bad, perturb_s = ensure(files, p, root, progress)
        t0 = time.perf_counter()
        pred = predict.predict_files(list(made.values()), lm, opts, cache_dir, workers, progress=progress, **where)
        table = pred.table.assign(filename=[names.escape(src.name) for src in made])  # back to the original names
        scored = _scored(scores, table)
        rows.append(_row(p.name, p.text(), scored, threshold, by, n, level, seed))
        preds.append(scored.assign(perturbation=p.name))
        failed[p.name] = {names.escape(k.name): v for k, v in bad.items()}
        times[p.name] = {"perturb_s": round(perturb_s, 2), "predict_s": round(time.perf_counter() - t0, 2),
                         "files": len(made), "failed": len(bad)}
    table = pd.DataFrame(rows)
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    return Robustness(table, predictions, figure(table, perturbations), failed), times


def figure(table: pd.DataFrame, perturbations: list[Perturbation]) -> plt.Figure:
    """One panel per family of perturbation: AUC and macro F1 (with their intervals) from the untouched files to
    the strongest level."""
    families = list(dict.fromkeys(p.family for p in perturbations)) or ["compression"]
    fig, axes = plt.subplots(1, len(families), figsize=(3.6 * len(families) + 0.8, 3.6), squeeze=False, sharey=True)
    by_name = table.set_index("perturbation")
    for ax, family in zip(axes[0], families):
        steps = [("none", FAMILIES[family])] + [(p.name, p.level) for p in perturbations if p.family == family]
        x = np.arange(len(steps))
        for col, low, high, style in (("AUC", "AUC low", "AUC high", "o-"), ("macro F1", "F1 low", "F1 high", "s--")):
            v = by_name.loc[[s for s, _ in steps], [col, low, high]].to_numpy(float)
            err = np.abs(np.vstack([v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]]))
            ax.errorbar(x, v[:, 0], yerr=np.nan_to_num(err), fmt=style, capsize=3, label=col)
        ax.axhline(0.5, color="0.75", ls=":", lw=1)
        ax.set_xticks(x, [t for _, t in steps], fontsize=8)
        ax.set(title=family, ylim=(0, 1.02))
    axes[0][0].set_ylabel("figure (bars: interval)")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig
