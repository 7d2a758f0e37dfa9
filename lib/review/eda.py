"""Exploratory look at a data folder: what the files are, whether they read, where the faces are, and how the folder
compares with the competition's test set (one face per file, ~5 s videos, .jpg/.png/.mp4); ``EDA`` is eda.ipynb's
parameter schema."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import checks, faces, frames, names
from ..checks import rule
from ..errors import MediaError, ParameterError
from ..media import media_kind
from ..parameters import CROP, DATA_DIR, EXP, SEED, Param, Schema
from ..progress import tqdm

ONE_FACE_SHARE = 0.9  # share of sampled frames with exactly one face for a folder to look like "one face per file"
DURATION_TOLERANCE = 0.5  # a video is "about" the expected length within ± this fraction of it


_CROP = {p.name: p for p in CROP}


def _extensions(name: str, value: Any) -> tuple[str, ...]:
    exts = tuple(e.strip().lower() for e in str(value).split(",") if e.strip())
    if not exts or not all(e.startswith(".") for e in exts):
        raise ParameterError(name, value, "comma-separated extensions such as '.jpg,.png,.mp4'")
    return exts


def _size(name: str, value: Any) -> int:
    return value if value == 0 and not isinstance(value, bool) else checks.int_at_least(name, value, 8,
                                                                                         "an integer ≥ 8 (pixels)")


def _exp(name: str, value: Any) -> str:
    return checks.exp_name(value or datetime.now().strftime("eda-%Y%m%d-%H%M%S"), name)


def _resolve(p: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    return {"data_dir": v["data_dir"], "labels": v["labels"], "size": p["size"] or 224,
            "extensions": v["expected_exts"], "exp": v["exp"]}


EDA = Schema("eda.ipynb", (
    DATA_DIR.but(help="flat folder of media to explore; relative paths are from the project root"),
    Param("labels", str, "", 'labels.csv (filename,label[,source]); "" → none', checks.optional_file),
    Param("sample", int, 40, "files whose faces are surveyed, chosen at random among the readable ones",
          rule(checks.positive_int, "files whose faces are surveyed")),
    _CROP["frames"].but(default=8, help="frames per sampled video for the face survey, evenly spaced"),
    _CROP["detector"], _CROP["detect_width"],
    _CROP["face_margin"].but(help="crop side / face box side (the crop shown in the grid)"),
    Param("size", int, 224, "side of the crop the model sees, in pixels", _size),
    SEED.but(help="random seed of the face-survey sample"),
    Param("expected_exts", str, ".jpg,.png,.mp4", "file types of the competition's test folder, comma-separated",
          _extensions),
    Param("expected_seconds", float, 5.0, "typical video length of the competition's test set, in seconds",
          rule(checks.positive_number, "a positive number of seconds")),
    EXP.but(help='run name: outputs go to submissions/<exp>/; "" → eda-<timestamp>', check=_exp)), _resolve)


def inspect_file(path: Path) -> dict[str, Any]:
    """What one file is: kind, extension, size, upright resolution and orientation, fps, frames, duration, or why it
    cannot be read (the reason ``lib.frames.read_frames`` gives)."""
    path = Path(path)
    row: dict[str, Any] = {"filename": names.escape(path.name), "kind": media_kind(path), "ext": path.suffix.lower(),
                           "bytes": path.stat().st_size, "readable": False, "reason": "", "width": None,
                           "height": None, "orientation": "", "fps": None, "frames": None, "duration_s": None,
                           "rotation": 0, "note": ""}
    try:
        fr = frames.read_frames(path, 1)
    except MediaError as e:
        return {**row, "reason": str(e)}
    h, w = fr.frames[0].shape[:2]
    row.update(readable=True, width=w, height=h, note=fr.note,
               orientation="landscape" if w > h else "portrait" if h > w else "square")
    if row["kind"] == "video":
        row.update(_video_props(path, fr.count_read or fr.count_reported))
    return row


def _video_props(path: Path, count: int) -> dict[str, Any]:
    """fps, frame count, duration and rotation metadata of a video (OpenCV's CAP_PROP_* values)."""
    with frames.opencv_path(path) as name:
        cap = cv2.VideoCapture(name)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        rot = cap.get(cv2.CAP_PROP_ORIENTATION_META)
    finally:
        cap.release()
    fps = float(fps) if math.isfinite(fps) and fps > 0 else None
    return {"fps": fps, "frames": int(count), "duration_s": count / fps if fps else None,
            "rotation": int(round(rot / 90.0)) % 4 * 90 if math.isfinite(rot) else 0}


def inventory(files: list[Path], labels: pd.DataFrame | None = None, progress: bool = True) -> pd.DataFrame:
    """One row per media file (``inspect_file``), with its label (and source) when labels are given."""
    table = pd.DataFrame([inspect_file(f) for f in tqdm(files, desc="inspect", unit="file", disable=not progress)])
    if labels is not None and len(table):
        keep = [c for c in ("filename", "label", "source") if c in labels.columns]
        table = table.merge(labels[keep], on="filename", how="left")
    return table


def counts(table: pd.DataFrame) -> pd.DataFrame:
    """Files by kind, extension and label (``unlabelled`` when a file has none), with readable/unreadable."""
    df = table.assign(label=table["label"].map(_label_name) if "label" in table else "unlabelled",
                      status=np.where(table["readable"], "readable", "unreadable"))
    out = df.groupby(["kind", "ext", "label", "status"]).size().unstack("status", fill_value=0)
    return out.assign(total=out.sum(axis=1)).reset_index()


def _label_name(value: Any) -> str:
    return {0: "real", 1: "fake"}.get(int(value), str(value)) if pd.notna(value) else "unlabelled"


def label_problems(table: pd.DataFrame, labels: pd.DataFrame | None) -> list[str]:
    """Media files with no label and labels that name no media file."""
    if labels is None:
        return []
    files, named = set(table["filename"]), set(labels["filename"])
    out = []
    if files - named:
        out.append(f"{len(files - named)} media files have no label: {sorted(files - named)[:5]}")
    if named - files:
        out.append(f"{len(named - files)} labels name no media file: {sorted(named - files)[:5]}")
    return out


def sample_files(table: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` readable files chosen at random (reproducibly), in name order."""
    names = table.loc[table["readable"], "filename"].tolist()
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(names, size=min(n, len(names)), replace=False).tolist()) if names else []


def face_survey(paths: list[Path], n_frames: int = 8, detector: str = "dlib_hog", detect_width: int = 640,
                progress: bool = True) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Faces in ``n_frames`` evenly spaced frames of each file: one row per frame (faces found, the largest face's
    size in pixels and as a share of the frame's shorter side), and one example frame + box per file."""
    rows, examples = [], {}
    for path in tqdm(paths, desc="faces", unit="file", disable=not progress):
        try:
            fr = frames.read_frames(path, n_frames)
        except MediaError:
            continue
        for k, (frame, index) in enumerate(zip(fr.frames, fr.indices)):
            boxes = faces.detect(frame, detector, detect_width)
            big = faces.largest(boxes)
            side = max(big[2] - big[0], big[3] - big[1]) if big else None
            rows.append({"filename": names.escape(Path(path).name), "kind": media_kind(path), "frame": index, "faces": len(boxes),
                         "face_px": side, "face_share": side / min(frame.shape[:2]) if side else None})
            if k == len(fr.frames) // 2:
                examples[Path(path).name] = {"frame": frame, "box": big}
    return pd.DataFrame(rows, columns=["filename", "kind", "frame", "faces", "face_px", "face_share"]), examples


def face_summary(survey: pd.DataFrame) -> dict[str, Any]:
    """Detection rate (frames with a face), faces per frame, files with a face in every / no frame, face sizes."""
    if survey.empty:
        return {"files": 0, "frames": 0, "detection_rate": None}
    per_file = survey.groupby("filename")["faces"].agg(lambda f: (f > 0).mean())
    return {"files": int(survey["filename"].nunique()), "frames": int(len(survey)),
            "detection_rate": float((survey["faces"] > 0).mean()),
            "one_face_share": float((survey["faces"] == 1).mean()),
            "several_faces_share": float((survey["faces"] > 1).mean()),
            "files_face_every_frame": int((per_file == 1).sum()), "files_no_face": int((per_file == 0).sum()),
            "face_px_median": _median(survey["face_px"]), "face_share_median": _median(survey["face_share"])}


def _median(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.median()) if len(s) else None


def plot_media(table: pd.DataFrame) -> plt.Figure:
    """Video duration and fps, resolution of every readable file, and orientation by kind."""
    ok = table[table["readable"]]
    vids = ok[ok["kind"] == "video"]
    fig, ax = plt.subplots(1, 4, figsize=(15, 3.2))
    ax[0].hist(vids["duration_s"].dropna(), bins=20, color="tab:purple")
    ax[0].set(xlabel="seconds", ylabel="videos", title="Video duration")
    fps = vids["fps"].dropna().round(2).value_counts().sort_index()
    ax[1].bar([f"{v:g}" for v in fps.index], fps.to_numpy(), color="tab:purple")
    ax[1].set(xlabel="fps", ylabel="videos", title="Frame rate")
    for kind, color in (("image", "tab:orange"), ("video", "tab:purple")):
        part = ok[ok["kind"] == kind]
        ax[2].scatter(part["width"], part["height"], s=14, alpha=0.7, label=kind, color=color)
    ax[2].set(xlabel="width (px, upright)", ylabel="height (px)", title="Resolution")
    ax[2].legend(fontsize=8)
    orient = ok.groupby(["orientation", "kind"]).size().unstack("kind", fill_value=0)
    orient.plot.bar(ax=ax[3], rot=0, color={"image": "tab:orange", "video": "tab:purple"})
    ax[3].set(xlabel="", ylabel="files", title="Orientation")
    fig.tight_layout()
    return fig


def plot_faces(survey: pd.DataFrame) -> plt.Figure:
    """Faces per sampled frame and the size of the largest face (pixels, share of the frame's shorter side)."""
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    per = survey["faces"].clip(upper=5).value_counts().sort_index()
    ax[0].bar([str(i) if i < 5 else "5+" for i in per.index], per.to_numpy(), color="tab:green")
    ax[0].set(xlabel="faces found", ylabel="frames", title="Faces per frame")
    ax[1].hist(survey["face_px"].dropna(), bins=20, color="tab:green")
    ax[1].set(xlabel="largest face side (px)", ylabel="frames", title="Face size")
    ax[2].hist(survey["face_share"].dropna(), bins=np.linspace(0, 1, 21), color="tab:green")
    ax[2].set(xlabel="face side / frame's shorter side", ylabel="frames", title="Face size relative to the frame")
    fig.tight_layout()
    return fig


def face_grid(examples: dict[str, dict[str, Any]], margin: float = 1.3, size: int = 224, n: int = 12,
              labels: dict[str, Any] | None = None) -> plt.Figure:
    """Pairs of (frame with the detected box in green and the crop square in yellow, the crop the model sees) for up
    to ``n`` files spread over ``examples``."""
    every = list(examples)
    names = [every[i] for i in np.unique(np.linspace(0, len(every) - 1, min(n, len(every))).round().astype(int))]
    cols = 4  # two pairs per row
    rows = max(1, math.ceil(len(names) / 2))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.6 * rows), squeeze=False)
    for k, name in enumerate(names):
        frame, box = examples[name]["frame"], examples[name]["box"]
        left, right = axes[k // 2][2 * (k % 2)], axes[k // 2][2 * (k % 2) + 1]
        left.imshow(frame)
        if box is not None:
            _draw_box(left, box, "lime")
            _draw_box(left, faces.crop_box(box, margin, frame.shape), "yellow")
            right.imshow(faces.crop(frame, box, margin, size))
        else:
            right.text(0.5, 0.5, "no face", ha="center", va="center", transform=right.transAxes)
        tag = f" [{_label_name(labels[name])}]" if labels and name in labels else ""
        left.set_title(f"{name[:28]}{tag}", fontsize=7, loc="left")
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return fig


def _draw_box(ax: plt.Axes, box: tuple[int, int, int, int], color: str) -> None:
    x0, y0, x1, y1 = box
    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color, lw=1.5))


def compare_with_test(table: pd.DataFrame, summary: dict[str, Any], other_files: int = 0,
                      extensions: tuple[str, ...] = (".jpg", ".png", ".mp4"), seconds: float = 5.0) -> pd.DataFrame:
    """A table of checks: what the competition's test folder is like against what this folder is like."""
    ok, vids = table[table["readable"]], table[(table["kind"] == "video") & table["readable"]]
    exts = sorted(set(table["ext"]))
    near = (vids["duration_s"] - seconds).abs() <= DURATION_TOLERANCE * seconds
    rate, one = summary.get("detection_rate"), summary.get("one_face_share")
    rows = [("flat folder, media only", "no subfolders or other files", f"{other_files} other entries", other_files == 0),
            ("file types", ", ".join(extensions), ", ".join(exts), set(exts) <= set(extensions)),
            ("unreadable files", "0", f"{len(table) - len(ok)} of {len(table)}", len(ok) == len(table)),
            ("video length", f"about {seconds:g} s (± {DURATION_TOLERANCE:.0%})",
             f"median {_median(vids['duration_s']) or 0:.1f} s; {int(near.sum())} of {len(vids)} near",
             bool(len(vids)) and near.mean() >= 0.5),
            ("face found (sampled frames)", "every frame", _share(rate), rate is not None and rate >= ONE_FACE_SHARE),
            ("exactly one face (sampled frames)", "every frame", _share(one), one is not None and one >= ONE_FACE_SHARE)]
    if "label" in table:
        fake = table["label"].mean()
        rows.append(("both classes labelled", "real and fake", _share(fake) + " fake", 0 < fake < 1))
    return pd.DataFrame(rows, columns=["check", "competition test set", "this folder", "ok"])


def _share(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


def faces_per_file(survey: pd.DataFrame) -> pd.DataFrame:
    """Per surveyed file: frames looked at, frames with a face, most faces in one frame."""
    g = survey.groupby(["filename", "kind"])["faces"]
    return pd.DataFrame({"frames": g.size(), "with_face": g.agg(lambda f: int((f > 0).sum())),
                         "max_faces": g.max()}).reset_index()
