"""The embedded sample set: labelled photos and videos generated from public-domain face photos that installed
packages ship (scikit-image's ``astronaut``, NASA; matplotlib's ``grace_hopper.jpg``, US Navy).

``python -m lib.corpora.sample [--out data/sample] [--seed 42] [--force]`` writes ``<out>/fit/`` (to fit the demo detector)
and ``<out>/test/`` (the demo's test set), each a flat folder of .jpg/.png/.mp4 files with ``labels.csv``
(``filename,label,source,origin``; label 1 = fake). Each real item is a "scene" of one photo (random crop, scale,
small rotation, flip, lighting, compression; videos add smooth camera motion, a lighting ramp and flicker, and
per-frame JPEG re-encoding). Each fake is the same scene with the face region blended back from a transformed
copy of itself through a soft elliptical mask (in the spirit of Self-Blended Images), so only the face differs.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import paths
from ..progress import tqdm

LABELS_CSV = "labels.csv"
COLUMNS = ("filename", "label", "source", "origin")
FPS = 15
VIDEO_FRAMES = 45
# Real items per base photo and split, by kind; every real item gets one fake counterpart.
_KINDS = {"fit": ("jpg", "jpg", "jpg", "png", "mp4", "mp4"), "test": ("jpg", "jpg", "png", "mp4", "mp4")}
_PHOTO_SIZES = ((448, 336), (336, 448), (400, 400), (480, 320), (384, 480))
_VIDEO_SIZES = ((384, 288), (352, 256), (416, 240), (320, 240), (288, 384))
_FACE_FRACTION = (0.26, 0.42)  # face-box width / frame width
_SOURCE = {"jpg": "sample-photo", "png": "sample-photo", "mp4": "sample-video"}


@dataclass(frozen=True)
class _Base:
    """A source photo (RGB uint8) and its face box (x0, y0, x1, y1) in its own pixels."""

    name: str
    image: np.ndarray
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class _View:
    """Camera view of a base photo: region centre and width in base pixels, rotation in degrees."""

    cx: float
    cy: float
    rw: float
    angle: float


@dataclass(frozen=True)
class _Item:
    """One file of the sample: which base photo, which scene, and (for a fake) which manipulation."""

    split: str
    filename: str
    label: int
    kind: str
    base: str
    scene_seed: int
    fake_seed: int | None
    origin: str


@dataclass(frozen=True)
class _Fake:
    """A manipulation in base-photo coordinates: fake = image + alpha * delta (delta already masked)."""

    delta: np.ndarray
    alpha: float


def make_sample(out: Path = paths.SAMPLE, seed: int = 42, force: bool = False) -> dict[str, Path]:
    """Generate the sample set under ``out`` (skipped when ``<out>/test/labels.csv`` exists, unless ``force``)."""
    out = paths.resolve(out)
    folders = {split: out / split for split in _KINDS}
    if (folders["test"] / LABELS_CSV).is_file() and not force:
        print(f"sample: {out} already exists, not regenerated (use --force)")
        return folders
    start = time.perf_counter()
    for folder in folders.values():
        _clear(folder)
    bases = {b.name: b for b in _load_bases()}
    items = _plan(seed, list(bases))
    for item in tqdm(items, desc="sample files", unit="file"):
        _render_item(item, bases, folders[item.split])
    for split, folder in folders.items():
        _write_labels(folder / LABELS_CSV, [i for i in items if i.split == split])
    print(_summary(items, out, time.perf_counter() - start))
    return folders


def _clear(folder: Path) -> None:
    """Remove the files a previous generation listed in ``folder/labels.csv``, then that file."""
    labels = folder / LABELS_CSV
    if labels.is_file():
        with labels.open(newline="") as f:
            for row in csv.DictReader(f):
                (folder / row["filename"]).unlink(missing_ok=True)
        labels.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def _load_bases() -> list[_Base]:
    """The two public-domain photos, other face-like detections inpainted away, with their dlib HOG face boxes."""
    import dlib
    import matplotlib.cbook
    import skimage.data

    detector = dlib.get_frontal_face_detector()  # slow to build (~1 s): once
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    photos = {"astronaut": skimage.data.astronaut()[..., :3], "grace_hopper": hopper[..., ::-1]}
    bases = []
    for name, img in photos.items():
        boxes = _face_boxes(detector, np.ascontiguousarray(img), name)
        bases.append(_Base(name, _erase_boxes(img, boxes[1:]), boxes[0]))
    return bases


def _face_boxes(detector: object, image: np.ndarray, name: str) -> list[tuple[float, float, float, float]]:
    """dlib HOG detections (x0, y0, x1, y1) of ``image``, best first, down to a slightly negative score."""
    rects, scores, _ = detector.run(image, 1, -0.2)
    if not rects:
        raise RuntimeError(f"dlib found no face in the base photo {name!r}")
    order = np.argsort(scores)[::-1]
    boxes = [rects[i] for i in order]
    return [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in boxes]


def _erase_boxes(image: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Inpaint face-like false detections (the astronaut's mission patch, name badge) so each file has one face."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for x0, y0, x1, y1 in boxes:
        centre, axes = (int((x0 + x1) / 2), int((y0 + y1) / 2)), (int((x1 - x0) / 2 + 8), int((y1 - y0) / 2 + 8))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
    return cv2.inpaint(np.ascontiguousarray(image), mask, 5, cv2.INPAINT_TELEA)


def _plan(seed: int, base_names: list[str]) -> list[_Item]:
    """Every file to write, with opaque names and per-item seeds, all drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    items: list[_Item] = []
    used: set[str] = set()
    for split, kinds in _KINDS.items():
        for base in base_names:
            for kind in kinds:
                real, fake = _unique_name(rng, used, kind), _unique_name(rng, used, kind)
                scene_seed, fake_seed = (int(s) for s in rng.integers(0, 2**31, size=2))
                items.append(_Item(split, real, 0, kind, base, scene_seed, None, real))
                items.append(_Item(split, fake, 1, kind, base, scene_seed, fake_seed, real))
    return items


def _unique_name(rng: np.random.Generator, used: set[str], kind: str) -> str:
    """A new opaque file name (8 hex digits) with the kind's extension."""
    while True:
        name = f"{int(rng.integers(0, 2**32)):08x}.{kind}"
        if name not in used:
            used.add(name)
            return name


def _render_item(item: _Item, bases: dict[str, _Base], folder: Path) -> Path:
    """Render one planned item into ``folder``; returns the file's path."""
    base = bases[item.base]
    fake = _manipulation(np.random.default_rng(item.fake_seed), base) if item.fake_seed is not None else None
    scene_rng = np.random.default_rng(item.scene_seed)
    path = folder / item.filename
    if item.kind == "mp4":
        _write_video(path, _video_frames(scene_rng, base, fake))
    else:
        _write_photo(path, scene_rng, _photo_frame(scene_rng, base, fake))
    return path


def _sample_view(rng: np.random.Generator, base: _Base, size: tuple[int, int], max_angle: float) -> _View:
    """A random view that keeps the face inside the frame and the frame (nearly) inside the photo."""
    rw_lo, rw_hi = _width_range(base, size)
    fw = base.box[2] - base.box[0]
    lo = max(rw_lo, min(rw_hi, fw / _FACE_FRACTION[1]))
    hi = max(lo, min(rw_hi, fw / _FACE_FRACTION[0]))
    rw = float(rng.uniform(lo, hi))
    cx, cy = (float(rng.uniform(*r)) for r in _centre_ranges(base, size, rw))
    return _View(cx, cy, rw, float(rng.uniform(-max_angle, max_angle)))


def _width_range(base: _Base, size: tuple[int, int]) -> tuple[float, float]:
    """Region widths (base pixels) that contain the face with a margin and fit inside the photo (may be empty)."""
    h, w = base.image.shape[:2]
    x0, y0, x1, y1 = base.box
    aspect = size[1] / size[0]
    return max((x1 - x0) * 1.5, (y1 - y0) * 1.5 / aspect), 0.92 * min(w, h / aspect)


def _pick_size(rng: np.random.Generator, base: _Base, sizes: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """A random frame size among ``sizes`` whose aspect ratio can frame the base photo's face."""
    fits = [size for size in sizes if np.subtract(*_width_range(base, size)) <= 0]
    if not fits:
        raise RuntimeError(f"base photo {base.name!r}: the face is too large for every frame size {sizes}")
    return fits[int(rng.integers(len(fits)))]


def _centre_ranges(base: _Base, size: tuple[int, int], rw: float) -> list[tuple[float, float]]:
    """Allowed (min, max) region centre along x and y for region width ``rw``."""
    h, w = base.image.shape[:2]
    x0, y0, x1, y1 = base.box
    rh = rw * size[1] / size[0]
    ranges = []
    for half, extent, a, b in ((rw / 2, w, x0, x1), (rh / 2, h, y0, y1)):
        margin = 0.15 * (b - a)
        lo, hi = max(half, b + margin - half), min(extent - half, a - margin + half)
        ranges.append((lo, max(lo, hi)))
    return ranges


def _affine(view: _View, size: tuple[int, int]) -> np.ndarray:
    """2x3 matrix mapping base-photo pixels to frame pixels for ``view``."""
    m = cv2.getRotationMatrix2D((view.cx, view.cy), view.angle, size[0] / view.rw)
    m[:, 2] += (size[0] / 2 - view.cx, size[1] / 2 - view.cy)
    return m


def _manipulation(rng: np.random.Generator, base: _Base) -> _Fake:
    """A self-blend of the face: a colour/sharpness/geometry-jittered copy through a soft elliptical mask."""
    img = base.image.astype(np.float32)
    src = img * rng.uniform(0.9, 1.1, size=3).astype(np.float32) + np.float32(rng.uniform(-8, 8))
    src = (src - src.mean()) * np.float32(rng.uniform(0.9, 1.1)) + src.mean()
    if rng.random() < 0.5:
        src = cv2.GaussianBlur(src, (0, 0), float(rng.uniform(0.6, 1.4)))
    else:
        src = src + np.float32(rng.uniform(0.5, 1.5)) * (src - cv2.GaussianBlur(src, (0, 0), 1.0))
    x0, y0, x1, y1 = base.box
    centre, fw, fh = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), x1 - x0, y1 - y0
    warp = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(rng.uniform(-2, 2)), 1.0)
    warp[:, :2] *= rng.uniform(0.95, 1.05, size=(2, 1))
    warp[:, 2] = centre - warp[:, :2] @ centre + rng.uniform(-0.03, 0.03, size=2) * fw
    src = cv2.warpAffine(src, warp, img.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    mask = np.zeros(img.shape[:2], np.float32)
    axes = (int(fw * rng.uniform(0.36, 0.46)), int(fh * rng.uniform(0.46, 0.58)))
    cv2.ellipse(mask, (int(centre[0]), int(centre[1] + 0.06 * fh)), axes, float(rng.uniform(-8, 8)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), float(fw * rng.uniform(0.05, 0.1)))
    return _Fake((src - img) * mask[..., None], float(rng.uniform(0.6, 1.0)))


def _blend(base: _Base, fake: _Fake | None, alpha_scale: float = 1.0) -> np.ndarray:
    """The base photo, or its manipulated version with the blend ratio scaled by ``alpha_scale``."""
    if fake is None:
        return base.image
    alpha = np.float32(min(1.0, fake.alpha * alpha_scale))
    return np.clip(base.image + alpha * fake.delta, 0, 255).round().astype(np.uint8)


@dataclass(frozen=True)
class _Light:
    """Lighting of a scene: white balance, gain, gamma and a linear shading across the frame."""

    white: np.ndarray
    gain: float
    gamma: float
    shade: np.ndarray


def _sample_light(rng: np.random.Generator, size: tuple[int, int]) -> _Light:
    """Random white balance, exposure, gamma and directional shading for a ``size`` frame."""
    w, h = size
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = ((xx / w - 0.5) * np.cos(theta) + (yy / h - 0.5) * np.sin(theta)).astype(np.float32)
    shade = 1 + np.float32(rng.uniform(0, 0.3)) * proj
    white = rng.uniform(0.92, 1.08, size=3).astype(np.float32)
    return _Light(white, float(rng.uniform(0.85, 1.12)), float(rng.uniform(0.85, 1.2)), shade[..., None])


def _shoot(
    image: np.ndarray, view: _View, size: tuple[int, int], flip: bool, light: _Light, gain: float, quality: int
) -> np.ndarray:
    """Render one frame: camera warp, flip, lighting (times ``gain``), then a JPEG round trip at ``quality``."""
    frame = cv2.warpAffine(image, _affine(view, size), size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    if flip:
        frame = frame[:, ::-1]
    lut = (np.arange(256, dtype=np.float32) / 255) ** light.gamma * 255
    frame = lut[frame] * (light.white * np.float32(light.gain * gain)) * light.shade
    return _jpeg(np.clip(frame, 0, 255).round().astype(np.uint8), quality)


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-encode and decode an RGB frame (compression artefacts at ``quality``)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode a JPEG")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def _photo_frame(rng: np.random.Generator, base: _Base, fake: _Fake | None) -> np.ndarray:
    """One photo scene (RGB uint8); the real and fake of a pair share ``rng``'s draws."""
    size = _pick_size(rng, base, _PHOTO_SIZES)
    view = _sample_view(rng, base, size, max_angle=6.0)
    flip, light = bool(rng.random() < 0.5), _sample_light(rng, size)
    return _shoot(_blend(base, fake), view, size, flip, light, 1.0, int(rng.integers(88, 98)))


def _write_photo(path: Path, rng: np.random.Generator, frame: np.ndarray) -> None:
    """Save a photo: .jpg at a random quality, .png lossless (sometimes of an already JPEG-compressed frame)."""
    bgr = np.ascontiguousarray(frame[..., ::-1])
    if path.suffix == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(72, 95))]
    else:
        if rng.random() < 0.5:
            bgr = np.ascontiguousarray(_jpeg(frame, int(rng.integers(80, 95)))[..., ::-1])
        params = [cv2.IMWRITE_PNG_COMPRESSION, 6]
    if not cv2.imwrite(str(path), bgr, params):
        raise RuntimeError(f"cv2.imwrite could not write {path}")


def _camera_path(rng: np.random.Generator, base: _Base, size: tuple[int, int]) -> list[_View]:
    """Smooth camera motion (pan, zoom, rotation, slight hand shake) over the video's frames."""
    start = _sample_view(rng, base, size, max_angle=4.0)
    lo, hi = _width_range(base, size)
    rw_end = float(np.clip(start.rw * rng.uniform(0.85, 1.15), lo, hi))
    (xl, xh), (yl, yh) = _centre_ranges(base, size, rw_end)
    cx_end = float(np.clip(start.cx + rng.uniform(-0.1, 0.1) * start.rw, xl, xh))
    cy_end = float(np.clip(start.cy + rng.uniform(-0.06, 0.06) * start.rw, yl, yh))
    angle_end = start.angle + float(rng.uniform(-4, 4))
    shake_f, shake_p = rng.uniform(0.5, 1.5, size=2), rng.uniform(0, 2 * np.pi, size=2)
    views = []
    for t in np.linspace(0.0, 1.0, VIDEO_FRAMES):
        e = 3 * t**2 - 2 * t**3
        shake = 0.004 * start.rw * np.sin(2 * np.pi * shake_f * t * VIDEO_FRAMES / FPS + shake_p)
        views.append(
            _View(
                start.cx + e * (cx_end - start.cx) + shake[0],
                start.cy + e * (cy_end - start.cy) + shake[1],
                start.rw + e * (rw_end - start.rw),
                start.angle + e * (angle_end - start.angle),
            )
        )
    return views


def _video_frames(rng: np.random.Generator, base: _Base, fake: _Fake | None) -> list[np.ndarray]:
    """The frames (RGB uint8) of one video scene: camera path, lighting ramp and flicker, varying compression."""
    size = _pick_size(rng, base, _VIDEO_SIZES)
    views = _camera_path(rng, base, size)
    flip, light = bool(rng.random() < 0.5), _sample_light(rng, size)
    t = np.arange(VIDEO_FRAMES) / FPS
    ramp = np.linspace(1.0, rng.uniform(0.85, 1.15), VIDEO_FRAMES)
    flicker = 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 2 * np.pi))
    gains = ramp * flicker * (1 + rng.normal(0, 0.008, VIDEO_FRAMES))
    qualities = np.repeat(rng.integers(45, 92, size=-(-VIDEO_FRAMES // 15)), 15)[:VIDEO_FRAMES]
    alpha_scale = 1 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) + rng.normal(0, 0.03, VIDEO_FRAMES)
    frames = []
    for view, alpha, gain, quality in zip(views, alpha_scale, gains, qualities):
        frames.append(_shoot(_blend(base, fake, float(alpha)), view, size, flip, light, float(gain), int(quality)))
    return frames


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    """Write RGB frames as an MPEG-4 (mp4v) video at ``FPS``, no audio."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter could not open {path} (mp4v)")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()


def _write_labels(path: Path, items: list[_Item]) -> None:
    """Write ``labels.csv`` (sorted by file name)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for item in sorted(items, key=lambda i: i.filename):
            writer.writerow((item.filename, item.label, _SOURCE[item.kind], item.origin))


def _summary(items: list[_Item], out: Path, seconds: float) -> str:
    """One line: files per split, label and kind, total size, time."""
    parts = []
    for split in _KINDS:
        sel = [i for i in items if i.split == split]
        labels = f"real {sum(i.label == 0 for i in sel)}, fake {sum(i.label == 1 for i in sel)}"
        kinds = ", ".join(f"{k} {sum(i.kind == k for i in sel)}" for k in ("jpg", "png", "mp4"))
        parts.append(f"{split} {len(sel)} files ({labels}; {kinds})")
    size = sum(p.stat().st_size for split in _KINDS for p in (out / split).iterdir() if p.is_file())
    return f"sample: {'; '.join(parts)} -> {out} ({size / 1e6:.1f} MB, {seconds:.1f} s)"


def main(argv: list[str] | None = None) -> dict[str, Path]:
    """Command line: ``python -m lib.corpora.sample [--out data/sample] [--seed 42] [--force]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=paths.SAMPLE, help="output folder (default: data/sample)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument("--force", action="store_true", help="regenerate even if the sample exists")
    args = parser.parse_args(argv)
    return make_sample(args.out, seed=args.seed, force=args.force)


if __name__ == "__main__":
    main()
