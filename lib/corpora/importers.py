"""Importers for public training corpora: each reads a corpus's own layout and metadata and writes the kit's
dataset layout, ``OUT/labels.csv`` + ``OUT/media/<flat name>`` symlinks into the corpus (no media is copied).

``python -m lib.corpora import <ff++|celebdf|dfdc|df40|folder> SRC OUT [--link absolute|relative] [--force]``;
each corpus has its own options (``python -m lib.corpora import ff++ --help``).

``labels.csv`` holds ``filename,label,source,kind,origin`` (+ ``split`` when the corpus has an official split):
label 1 = fake; ``kind`` one of ``KINDS``; ``origin`` the real clip a fake was made from (a real's own id), so a
split by origin never puts a fake and its real on two sides. Every file the layout names that is not imported (a
missing file, a duplicate name, an unknown label, a fake whose original is absent, ...) is a row of
``OUT/skipped.csv`` (path, reason, detail) and is counted in the printed summary; ``OUT/import.json`` records the
corpus, folders, options and counts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ParameterError
from ..media import is_hidden, media_kind
from ..progress import tqdm

KINDS = ("real-video", "real-photo", "faceswap", "talkinghead", "lipsync", "diffusion", "stylegan", "other")
LINKS = ("absolute", "relative")
LABELS_CSV, SKIPPED_CSV, RECORD_JSON, MEDIA = "labels.csv", "skipped.csv", "import.json", "media"
COLUMNS = ("filename", "label", "source", "kind", "origin")
SPLITS = ("train", "val", "test")


class CorpusError(ValueError):
    """A corpus's metadata cannot be used at all (a malformed JSON, no media where its layout puts them)."""


@dataclass(frozen=True)
class Entry:
    """One file to import: where it is, its flat name in ``OUT/media`` and its labels.csv row."""

    path: Path
    name: str
    label: int
    source: str
    kind: str
    origin: str
    split: str = ""
    needs_original: bool = False  # a fake whose origin must be among the imported reals


@dataclass(frozen=True)
class Skip:
    """A file (or folder) the layout names that is not imported: ``reason`` is the category, ``detail`` the case."""

    path: str
    reason: str
    detail: str = ""


@dataclass
class Scan:
    """What an importer found: files to import, files skipped, whether the corpus has a split, notes to print."""

    entries: list[Entry] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    has_split: bool = False
    notes: list[str] = field(default_factory=list)

    def skip(self, path: Path | str, reason: str, detail: str = "") -> None:
        self.skips.append(Skip(str(path), reason, detail))


def _real_kind(path: Path) -> str:
    return "real-video" if media_kind(path) == "video" else "real-photo"


def _list_media(folder: Path, scan: Scan, recursive: bool = False, metadata: str = "") -> list[Path]:
    """Media files in ``folder`` (sorted); hidden and non-media files there (but ``metadata``) are recorded as skips."""
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir())
                   if p.is_file() and p.name != metadata)
    out = []
    for p in files:
        if is_hidden(p):
            scan.skip(p, "hidden file")
        elif media_kind(p) is None:
            scan.skip(p, "not a media file", f"extension {p.suffix or '(none)'}")
        else:
            out.append(p)
    return out


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorpusError(f"{path} cannot be read as JSON: {e}") from e


# ---------------------------------------------------------------------------------------------- FaceForensics++

FFPP_ORIGINALS = {"youtube": re.compile(r"^\d{3}$"), "actors": re.compile(r"^\d{2}__.+$")}
# FF++ methods → kind: Face2Face re-enacts the target's whole face from a driver (talking-head style);
# NeuralTextures re-renders only the mouth region (lip-sync style); the other four replace the identity.
FFPP_METHODS = {"Deepfakes": "faceswap", "Face2Face": "talkinghead", "FaceSwap": "faceswap",
                "NeuralTextures": "lipsync", "FaceShifter": "faceswap", "DeepFakeDetection": "faceswap"}
_FFPP_FAKE = re.compile(r"^(\d{3})_(\d{3})$")  # <target>_<source>: target 000's video with source 003's face
_DFD_FAKE = re.compile(r"^(\d{2})_(\d{2})__(.+)__([A-Za-z0-9]+)$")  # <target>_<source>__<scene>__<take>
COMPRESSIONS = ("c23", "c40", "raw")


def scan_ffpp(src: Path, compression: str = "c23", methods: list[str] | None = None,
              splits: str | None = None) -> Scan:
    """FaceForensics++: originals and manipulated videos at one compression, with the official split if present."""
    if compression not in COMPRESSIONS:
        raise ParameterError("compression", compression, COMPRESSIONS)
    methods = list(FFPP_METHODS) if not methods else methods
    if unknown := [m for m in methods if m not in FFPP_METHODS]:
        raise ParameterError("methods", ",".join(unknown), FFPP_METHODS)
    if not any((src / d).is_dir() for d in ("original_sequences", "manipulated_sequences")):
        raise CorpusError(f"{src} holds neither original_sequences/ nor manipulated_sequences/ (FaceForensics++)")
    found = {c.name for d in src.glob("*_sequences/*") for c in _subdirs(d) if (c / "videos").is_dir()}
    if compression not in found:
        raise ParameterError("compression", compression, sorted(found) or COMPRESSIONS,
                             why=f"no <sequences>/<folder>/{compression}/videos/ under {src}")
    split_of = _ffpp_splits(src, Path(splits).expanduser() if splits else None)
    scan = Scan(has_split=split_of is not None)
    _ffpp_originals(src / "original_sequences", compression, split_of or {}, scan)
    _ffpp_fakes(src / "manipulated_sequences", compression, methods, split_of or {}, scan)
    return scan


def _ffpp_splits(src: Path, folder: Path | None) -> dict[str, str] | None:
    """Video id → split from the official train/val/test.json (lists of [target, source] pairs), or None."""
    names = [f"{s}.json" for s in SPLITS]
    if folder is not None and not any((folder / n).is_file() for n in names):
        raise ParameterError("splits", str(folder), "a folder holding train.json, val.json and test.json",
                             why="none of them there")
    folder = folder or next((d for d in (src / "splits", src) if any((d / n).is_file() for n in names)), None)
    if folder is None:
        return None
    if missing := [n for n in names if not (folder / n).is_file()]:
        raise CorpusError(f"{folder} holds only some of the FF++ split files: {', '.join(missing)} missing")
    split_of: dict[str, str] = {}
    for split, name in zip(SPLITS, names):
        pairs = _read_json(folder / name)
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise CorpusError(f"{folder / name} is not a list of [target, source] pairs")
        for vid in (str(v) for p in pairs for v in p):
            if split_of.setdefault(vid, split) != split:
                raise CorpusError(f"video {vid} is in both {split_of[vid]}.json and {name} ({folder})")
    return split_of


def _ffpp_originals(base: Path, compression: str, split_of: dict[str, str], scan: Scan) -> None:
    for sub in _subdirs(base):
        if sub.name not in FFPP_ORIGINALS:
            scan.skip(sub, "unknown folder", f"original_sequences/ holds {', '.join(FFPP_ORIGINALS)}")
            continue
        videos = sub / compression / "videos"
        if not videos.is_dir():
            scan.skip(videos, "no videos at this compression")
            continue
        for f in _list_media(videos, scan):
            if not FFPP_ORIGINALS[sub.name].match(f.stem):
                scan.skip(f, "name does not match the layout", f"original_sequences/{sub.name} naming")
                continue
            split = split_of.get(f.stem, "") if sub.name == "youtube" else ""
            scan.entries.append(Entry(f, f"{sub.name}_{f.name}", 0, f"ff++/{sub.name}", _real_kind(f), f.stem, split))


def _ffpp_fakes(base: Path, compression: str, methods: list[str], split_of: dict[str, str], scan: Scan) -> None:
    for sub in _subdirs(base):
        if sub.name not in FFPP_METHODS:
            scan.skip(sub, "unknown folder", f"manipulated_sequences/ holds {', '.join(FFPP_METHODS)}")
            continue
        if sub.name not in methods:
            scan.notes.append(f"not imported (--methods): manipulated_sequences/{sub.name}")
            continue
        videos = sub / compression / "videos"
        if not videos.is_dir():
            scan.skip(videos, "no videos at this compression")
            continue
        dfd = sub.name == "DeepFakeDetection"
        for f in _list_media(videos, scan):
            m = (_DFD_FAKE if dfd else _FFPP_FAKE).match(f.stem)
            if not m:
                scan.skip(f, "name does not match the layout", f"manipulated_sequences/{sub.name} naming")
                continue
            origin = f"{m[1]}__{m[3]}" if dfd else m[1]
            split = "" if dfd else split_of.get(m[1], "")
            scan.entries.append(Entry(f, f"{sub.name}_{f.name}", 1, f"ff++/{sub.name}", FFPP_METHODS[sub.name],
                                      origin, split, needs_original=True))


# ------------------------------------------------------------------------------------------------- Celeb-DF v2

# folder (case-insensitive) → (label, name pattern, canonical folder name)
_CELEBDF = {"celeb-real": (0, re.compile(r"^id\d+_\d{4}$"), "Celeb-real"),
            "youtube-real": (0, re.compile(r"^\d{5}$"), "YouTube-real"),
            "celeb-synthesis": (1, re.compile(r"^id(\d+)_id\d+_(\d{4})$"), "Celeb-synthesis")}
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"


def scan_celebdf(src: Path) -> Scan:
    """Celeb-DF v2: Celeb-real, YouTube-real, Celeb-synthesis; List_of_testing_videos.txt gives the test split."""
    folders = {p.name.lower(): p for p in _subdirs(src)}
    if not any(k in folders for k in _CELEBDF):
        raise CorpusError(f"{src} holds none of Celeb-real/, YouTube-real/, Celeb-synthesis/ (Celeb-DF v2)")
    test_list = src / CELEBDF_TEST_LIST
    scan = Scan(has_split=test_list.is_file())
    for key, (label, pattern, name) in _CELEBDF.items():
        if key not in folders:
            scan.notes.append(f"no {name}/ folder in {src}")
            continue
        folder = folders[key]
        if (folder / "videos").is_dir() and not any(media_kind(p) for p in folder.iterdir() if p.is_file()):
            folder = folder / "videos"  # the layout some repositories use: <folder>/videos/*.mp4
        for f in _list_media(folder, scan):
            m = pattern.match(f.stem)
            if not m:
                scan.skip(f, "name does not match the layout", f"{name} naming")
                continue
            origin = f"id{m[1]}_{m[2]}" if label else f.stem  # id0_id1_0000 was made from id0_0000
            scan.entries.append(Entry(f, f.name, label, f"celebdf/{name}", "faceswap" if label else _real_kind(f),
                                      origin, "train" if scan.has_split else "", needs_original=bool(label)))
    if scan.has_split:
        _celebdf_test(test_list, scan)
    return scan


def _celebdf_test(test_list: Path, scan: Scan) -> None:
    """Mark the files of List_of_testing_videos.txt as test: lines ``<label> <folder>/<file>``, where label
    1 means REAL and 0 FAKE in that file (the opposite of the kit's labels); a label that contradicts the folder
    skips the file."""
    index = {(Path(e.source).name.lower(), e.name): i for i, e in enumerate(scan.entries)}
    seen: set[tuple[str, str]] = set()
    drop: set[int] = set()
    lines = test_list.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{CELEBDF_TEST_LIST} line {n}"
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            scan.skip(test_list, "unknown label" if len(parts) == 2 else "malformed line", f"{where}: {line!r}")
            continue
        rel = Path(parts[1])
        key = (rel.parent.name.lower() if rel.parent.name.lower() in _CELEBDF else rel.parts[0].lower(), rel.name)
        if key in seen:
            scan.skip(test_list.parent / rel, "duplicate name", f"{where}: listed twice")
            continue
        seen.add(key)
        i = index.get(key)
        if i is None:
            listed = test_list.parent / rel
            scan.skip(listed, "listed file not imported" if listed.is_file() else "missing file", f"listed in {where}")
        elif scan.entries[i].label != (0 if parts[0] == "1" else 1):
            scan.skip(scan.entries[i].path, "label disagrees", f"{where} says {parts[0]} (1 = real there)")
            drop.add(i)
        else:
            scan.entries[i] = replace(scan.entries[i], split="test")
    scan.entries = [e for i, e in enumerate(scan.entries) if i not in drop]


# -------------------------------------------------------------------------------------------------------- DFDC

DFDC_LABELS = {"REAL": 0, "FAKE": 1}


def scan_dfdc(src: Path) -> Scan:
    """DFDC: every ``metadata.json`` in SRC or its sub-folders (``dfdc_train_part_*``), ``{name: {label, split,
    original}}`` naming the videos beside it."""
    metas = sorted(src.glob("*/metadata.json")) + ([src / "metadata.json"] if (src / "metadata.json").is_file() else [])
    if not metas:
        raise CorpusError(f"no metadata.json in {src} or its sub-folders (DFDC: dfdc_train_part_*/metadata.json)")
    scan = Scan(has_split=True)
    for meta in tqdm(metas, desc="metadata", unit="part", leave=False):
        data = _read_json(meta)
        if not isinstance(data, dict):
            raise CorpusError(f"{meta} is not a JSON object {{name: {{label, split, original}}}}")
        for name, info in data.items():
            _dfdc_entry(meta.parent, str(name), info, scan)
        for f in _list_media(meta.parent, scan, metadata="metadata.json"):
            if f.name not in data:
                scan.skip(f, "not in the metadata", str(meta))
    return scan


def _dfdc_entry(folder: Path, name: str, info: Any, scan: Scan) -> None:
    label_text = str(info.get("label")) if isinstance(info, dict) else repr(info)
    label = DFDC_LABELS.get(label_text.upper())
    if label is None:
        scan.skip(folder / name, "unknown label", f"{label_text!r} in {folder / 'metadata.json'} (REAL, FAKE)")
        return
    original = info.get("original")
    if label and not original:
        scan.skip(folder / name, "original absent", f"a FAKE with no 'original' in {folder / 'metadata.json'}")
        return
    kind = "faceswap" if label else _real_kind(Path(name))
    scan.entries.append(Entry(folder / name, name, label, "dfdc", kind, str(original) if label else name,
                              str(info.get("split") or ""), needs_original=bool(label)))


# -------------------------------------------------------------------------------------------------------- DF40

# DF40's 40 methods → kind. Face swapping → faceswap; face re-enactment → talkinghead (Wav2Lip → lipsync);
# entire-face synthesis and face editing → stylegan (StyleGAN family and StyleGAN-latent editors e4e, StyleCLIP,
# whichfaceisreal), diffusion (DDPM/DDIM, RDDM, SD 2.1, PixArt-α, DiT, SiT, Midjourney, Collaborative Diffusion),
# other (VQGAN, StarGAN, StarGAN v2).
DF40_METHODS = {
    **dict.fromkeys(("fsgan", "faceswap", "simswap", "inswap", "blendface", "uniface", "mobileswap", "e4s",
                     "facedancer", "deepfacelab"), "faceswap"),
    **dict.fromkeys(("fomm", "facevid2vid", "mraa", "one_shot_free", "pirender", "tpsm", "lia", "danet", "sadtalker",
                     "mcnet", "hyperreenact", "heygen"), "talkinghead"),
    "wav2lip": "lipsync",
    **dict.fromkeys(("StyleGAN2", "StyleGAN3", "StyleGANXL", "whichisreal", "e4e", "styleclip"), "stylegan"),
    **dict.fromkeys(("ddim", "RDDM", "sd2.1", "pixart", "DiT", "SiT", "MidJourney", "CollabDiff"), "diffusion"),
    **dict.fromkeys(("VQGAN", "stargan", "starganv2"), "other"),
}
# other spellings of a method folder (lower case) → the name above
_DF40_ALIASES = {"inswapper": "inswap", "fs_vid2vid": "facevid2vid", "face_vid2vid": "facevid2vid",
                 "oneshot": "one_shot_free", "dagan": "danet", "stylegan-xl": "StyleGANXL", "ddpm": "ddim",
                 "sd21": "sd2.1", "sd-2.1": "sd2.1", "pixart-alpha": "pixart", "midjourney6": "MidJourney",
                 "collaborative_diffusion": "CollabDiff"}
_DF40_NAMES = {**{m.lower(): m for m in DF40_METHODS}, **_DF40_ALIASES}
# split folders above the method folders: DF40's train release unpacks as DF40_train/, its test release as DF40/
DF40_SPLIT_DIRS = {"train": "train", "df40_train": "train", "val": "val", "df40_val": "val",
                   "test": "test", "df40_test": "test", "df40": "test"}
DF40_DOMAINS = ("ff", "cdf")  # fakes made from FaceForensics++ or Celeb-DF clips
# clip ids that name the real clip a fake was made from: FF++ <target>[_<source>], Celeb-DF id<t>[_id<s>]_<clip>
_DF40_ORIGINS = ((re.compile(r"^(\d{3})(?:_\d{3})?$"), "ff/{0}"),
                 (re.compile(r"^id(\d+)_id\d+_(\d{4})$"), "cdf/id{0}_{1}"),
                 (re.compile(r"^(id\d+_\d{4})$"), "cdf/{0}"), (re.compile(r"^(\d{5})$"), "cdf/{0}"))


def scan_df40(src: Path, frames_per_clip: int = 0) -> Scan:
    """DF40: ``[<split>/]<method>/[ff|cdf/][frames/]<clip>/<frame>.png`` (or videos, or images), fakes unless under a
    ``real/`` folder of the method; ``frames_per_clip`` > 0 keeps that many evenly spaced frames per folder."""
    if frames_per_clip < 0:
        raise ParameterError("frames_per_clip", frames_per_clip, "0 (every frame) or a positive count")
    tops = _subdirs(src)
    at_top = any(p.name.lower() in _DF40_NAMES for p in tops)  # SRC holds the method folders, no split folders
    if at_top:
        groups = [("", src)]
    else:
        groups = [(DF40_SPLIT_DIRS[p.name.lower()], p) for p in tops if p.name.lower() in DF40_SPLIT_DIRS]
    if not groups:
        raise CorpusError(f"{src} holds no DF40 method folder ({', '.join(DF40_METHODS)}) nor split folder "
                          f"({', '.join(DF40_SPLIT_DIRS)}) holding them")
    scan = Scan(has_split=not at_top)
    for p in tops:
        if p.name.lower() not in (_DF40_NAMES if at_top else DF40_SPLIT_DIRS):
            scan.skip(p, "unknown folder", "not a DF40 method" if at_top else "not a DF40 split folder")
    thinned = 0
    for split, folder in groups:
        for method_dir in _subdirs(folder):
            method = _DF40_NAMES.get(method_dir.name.lower())
            if method is None:
                if not at_top:
                    scan.skip(method_dir, "unknown folder", "not a DF40 method")
                continue
            thinned += _df40_method(src, method_dir, method, split, frames_per_clip, scan)
    if thinned:
        scan.notes.append(f"not imported (--frames-per-clip {frames_per_clip}): {thinned} frames")
    return scan


def _df40_method(src: Path, folder: Path, method: str, split: str, frames_per_clip: int, scan: Scan) -> int:
    """Entries of one method folder; returns how many frames ``frames_per_clip`` left out."""
    roots = [folder / d for d in DF40_DOMAINS if (folder / d).is_dir()] or [folder]
    for other in (sorted(folder.iterdir()) if roots[0] != folder else []):
        if other not in roots:
            scan.skip(other, "outside the layout", f"beside {', '.join(r.name for r in roots)}/ in {folder.name}")
    thinned = 0
    for root in roots:
        domain = root.name if root != folder else ""
        base = root / "frames" if (root / "frames").is_dir() else root
        for other in (_subdirs(root) if base != root else []):
            if other != base:
                scan.skip(other, "auxiliary folder", "beside frames/ (landmarks, masks ...): not imported")
        clips: dict[Path, list[Path]] = {}
        for f in _list_media(base, scan, recursive=True):
            clips.setdefault(f.parent, []).append(f)
        for clip_dir, files in clips.items():
            kept = _thin(files, frames_per_clip)
            thinned += len(files) - len(kept)
            for f in kept:
                scan.entries.append(_df40_entry(src, base, f, clip_dir, method, domain, split))
    return thinned


def _df40_entry(src: Path, base: Path, f: Path, clip_dir: Path, method: str, domain: str, split: str) -> Entry:
    rel = f.relative_to(base)
    label = 0 if rel.parts[0].lower() == "real" and len(rel.parts) > 1 else 1
    loose = clip_dir == base or (clip_dir.parent == base and clip_dir.name.lower() in ("real", "fake"))
    clip = f.stem if loose else clip_dir.name  # a file loose in the folder is its own clip
    origin = next((fmt.format(*m.groups()) for pat, fmt in _DF40_ORIGINS if (m := pat.match(clip))),
                  f"{method}/{domain or '-'}/{clip}")
    kind = DF40_METHODS[method] if label else _real_kind(f)
    return Entry(f, "__".join(f.relative_to(src).parts), label, f"df40/{method}", kind, origin, split)


def _thin(files: list[Path], n: int) -> list[Path]:
    """``n`` evenly spaced files of a sorted list (all of them when ``n`` is 0 or not smaller)."""
    if not n or len(files) <= n:
        return files
    return [files[i] for i in np.unique(np.linspace(0, len(files) - 1, n).round().astype(int))]


# ------------------------------------------------------------------------------------------------------ folder


def scan_folder(src: Path, label: str | None = None, fake_kind: str = "other", source: str | None = None) -> Scan:
    """A folder of media with no metadata: ``real/`` + ``fake/`` (any depth below them), or one flat folder whose
    files all have ``label`` (real or fake)."""
    if fake_kind not in KINDS[2:]:
        raise ParameterError("fake_kind", fake_kind, KINDS[2:])
    if label not in (None, "real", "fake"):
        raise ParameterError("label", label, ("real", "fake"))
    source = source or src.name
    kids = {p.name.lower(): p for p in _subdirs(src)}
    labelled = [(lab, kids[k]) for lab, k in ((0, "real"), (1, "fake")) if k in kids]
    scan = Scan()
    if labelled and label is not None:
        raise ParameterError("label", label, why="SRC has real/ or fake/ folders, which give the labels; "
                                                 "--label is for a folder without them")
    if not labelled:
        if label is None:
            raise ParameterError("label", label, ("real", "fake"),
                                 why="SRC has no real/ or fake/ folder: say what all its files are")
        labelled = [(0 if label == "real" else 1, src)]
    else:
        for p in sorted(src.iterdir()):
            if p not in [d for _, d in labelled]:
                scan.skip(p, "outside real/ and fake/", "label unknown")
    for lab, folder in labelled:
        for f in _list_media(folder, scan, recursive=True):
            rel = f.relative_to(src)
            scan.entries.append(Entry(f, "__".join(rel.parts), lab, source, fake_kind if lab else _real_kind(f),
                                      rel.as_posix()))
    return scan


IMPORTERS: dict[str, Callable[..., Scan]] = {"ff++": scan_ffpp, "celebdf": scan_celebdf, "dfdc": scan_dfdc,
                                             "df40": scan_df40, "folder": scan_folder}


# ------------------------------------------------------------------------------------------------- the writing


def check_entries(entries: list[Entry], keep_orphans: bool = False) -> tuple[list[Entry], list[Skip]]:
    """(entries to import, skips): missing files, then repeated flat names (case-insensitive, the first kept), then
    fakes whose original is not among the imported reals (unless ``keep_orphans``)."""
    skips, kept, first = [], [], {}
    for e in tqdm(entries, desc="checking", unit="file", leave=False):
        if e.label not in (0, 1) or e.kind not in KINDS:
            raise ValueError(f"importer bug: {e}")
        if not e.path.is_file():
            skips.append(Skip(str(e.path), "missing file", f"named by the metadata as {e.name}"))
        elif e.name.casefold() in first:
            skips.append(Skip(str(e.path), "duplicate name", f"{e.name} (kept {first[e.name.casefold()]})"))
        else:
            first[e.name.casefold()] = e.path
            kept.append(e)
    reals = {e.origin for e in kept if e.label == 0}
    out = []
    for e in kept:
        if e.needs_original and e.origin not in reals and not keep_orphans:
            skips.append(Skip(str(e.path), "original absent", f"made from {e.origin}, which is not imported"))
        else:
            out.append(e)
    return out, skips


def _check_out(out: Path, force: bool) -> None:
    """OUT must be new or empty; with ``force`` it may hold an earlier import's files (and nothing else)."""
    if out.exists() and not out.is_dir():
        raise ParameterError("out", str(out), "a folder (new or empty)", why="it is a file")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not force:
        raise ParameterError("out", str(out), "a new or empty folder",
                             why="it is not empty; --force replaces an earlier import there")
    media = out / MEDIA
    foreign = [p for p in out.iterdir() if p.name not in (LABELS_CSV, SKIPPED_CSV, RECORD_JSON, MEDIA)]
    foreign += [p for p in (media.iterdir() if media.is_dir() else [media] if media.exists() else [])
                if not p.is_symlink()]
    if foreign:
        raise ParameterError("force", True, why=f"{out} holds files an import did not write "
                                                f"({', '.join(p.name for p in foreign[:5])}); not deleting them")


def _clear_out(out: Path) -> None:
    """Remove an earlier import's files from OUT (checked by ``_check_out``) and make ``OUT/media``."""
    media = out / MEDIA
    for p in media.iterdir() if media.is_dir() else []:
        p.unlink()
    for name in (LABELS_CSV, SKIPPED_CSV, RECORD_JSON):
        (out / name).unlink(missing_ok=True)
    media.mkdir(parents=True, exist_ok=True)


def _link(entries: list[Entry], media: Path, link: str) -> None:
    """One symlink per entry in ``media``: to the file's absolute path, or relative to ``media`` (``link``)."""
    real_media = os.path.realpath(media)
    for e in tqdm(entries, desc="linking", unit="file"):
        if link == "absolute":
            target = os.path.abspath(e.path)
        else:
            target = os.path.relpath(os.path.realpath(e.path), real_media)
        os.symlink(target, media / e.name)


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def import_corpus(corpus: str, src: str | Path, out: str | Path, link: str = "absolute", force: bool = False,
                  keep_orphans: bool = False, **options: Any) -> dict[str, Any]:
    """Import corpus ``corpus`` from SRC into the kit's layout in OUT; returns the record written to import.json."""
    if corpus not in IMPORTERS:
        raise ParameterError("corpus", corpus, IMPORTERS)
    if link not in LINKS:
        raise ParameterError("link", link, LINKS)
    src, out = Path(os.path.abspath(Path(src).expanduser())), Path(os.path.abspath(Path(out).expanduser()))
    if not src.is_dir():
        raise ParameterError("src", str(src), f"a folder holding the {corpus} corpus", why="no such folder")
    if out == src or src in out.parents:
        raise ParameterError("out", str(out), "a folder outside SRC", why=f"it is inside {src}")
    start = time.perf_counter()
    _check_out(out, force)
    scan = IMPORTERS[corpus](src, **options)
    entries, skips = check_entries(scan.entries, keep_orphans)
    skips = scan.skips + skips
    _clear_out(out)
    _write_csv(out / SKIPPED_CSV, ("path", "reason", "detail"), [(s.path, s.reason, s.detail) for s in skips])
    if not entries:
        raise CorpusError(f"nothing to import from {src}: {len(skips)} skipped ({_count_text(skips)}); "
                          f"see {out / SKIPPED_CSV}")
    _link(entries, out / MEDIA, link)
    columns = COLUMNS + (("split",) if scan.has_split else ())
    _write_csv(out / LABELS_CSV, columns, [(e.name, e.label, e.source, e.kind, e.origin)
                                           + ((e.split,) if scan.has_split else ()) for e in entries])
    record = _record(corpus, src, out, link, keep_orphans, options, entries, skips, scan, time.perf_counter() - start)
    (out / RECORD_JSON).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(summary_text(record))
    return record


def _count_text(skips: list[Skip]) -> str:
    return ", ".join(f"{r} {n}" for r, n in Counter(s.reason for s in skips).most_common())


def _record(corpus: str, src: Path, out: Path, link: str, keep_orphans: bool, options: dict[str, Any],
            entries: list[Entry], skips: list[Skip], scan: Scan, seconds: float) -> dict[str, Any]:
    groups = Counter((e.kind, e.label, e.split) for e in entries)
    return {"corpus": corpus, "src": str(src), "out": str(out), "link": link, "keep_orphans": keep_orphans,
            "options": options, "files": len(entries), "skipped": len(skips), "seconds": round(seconds, 2),
            "by_kind": [{"kind": k, "label": lab, "split": s, "files": n} for (k, lab, s), n in sorted(groups.items())],
            "skipped_by_reason": dict(Counter(s.reason for s in skips).most_common()), "notes": scan.notes}


def summary_text(record: dict[str, Any]) -> str:
    """The printed summary: files by kind, label and split; skips by reason; notes."""
    lines = [f"imported {record['files']} files ({record['corpus']}) from {record['src']} into {record['out']}: "
             f"{LABELS_CSV}, {MEDIA}/ ({record['link']} links)",
             f"  {'kind':<12} {'label':<6} {'split':<6} {'files':>7}"]
    lines += [f"  {g['kind']:<12} {('fake' if g['label'] else 'real'):<6} {g['split'] or '-':<6} {g['files']:>7}"
              for g in record["by_kind"]]
    skipped = ", ".join(f"{r} {n}" for r, n in record["skipped_by_reason"].items())
    lines.append(f"skipped {record['skipped']}" + (f": {skipped} (listed in {SKIPPED_CSV})" if skipped else ""))
    lines += [f"note: {n}" for n in record["notes"]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- command line

_LAYOUTS = {
    "ff++": "SRC/original_sequences/{youtube,actors}/<comp>/videos/*.mp4 and SRC/manipulated_sequences/<method>/"
            "<comp>/videos/<target>_<source>.mp4; split from SRC/splits/{train,val,test}.json (or SRC/*.json)",
    "celebdf": f"SRC/Celeb-real/id<t>_<clip>.mp4, SRC/YouTube-real/<n>.mp4, "
               f"SRC/Celeb-synthesis/id<t>_id<s>_<clip>.mp4, SRC/{CELEBDF_TEST_LIST} (test split)",
    "dfdc": "SRC/dfdc_train_part_*/metadata.json + the videos beside it",
    "df40": "SRC/[DF40_train|DF40|train|val|test/]<method>/[ff|cdf/][frames/]<clip>/<frame>.png (or videos/images)",
    "folder": "SRC/real/** + SRC/fake/**, or a flat SRC/** with --label",
}


def _corpus_options(name: str, p: argparse.ArgumentParser) -> None:
    if name in ("ff++", "celebdf", "dfdc"):
        p.add_argument("--keep-orphans", action="store_true",
                       help="keep fakes whose original is absent (default: skip them, listed in skipped.csv)")
    if name == "ff++":
        p.add_argument("--compression", default="c23", choices=COMPRESSIONS, help="which videos (default c23)")
        p.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=None,
                       help=f"comma-separated subset of {','.join(FFPP_METHODS)} (default: all present)")
        p.add_argument("--splits", default=None, help="folder of train/val/test.json (default: SRC/splits or SRC)")
    elif name == "df40":
        p.add_argument("--frames-per-clip", type=int, default=0,
                       help="keep this many evenly spaced frames per clip folder (default 0: all)")
    elif name == "folder":
        p.add_argument("--label", choices=("real", "fake"), default=None, help="label of every file of a flat SRC")
        p.add_argument("--fake-kind", default="other", choices=KINDS[2:], help="kind of the fakes (default other)")
        p.add_argument("--source", default=None, help="source column (default: SRC's folder name)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.corpora", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="import a public corpus into the kit's layout (symlinks, no copies)")
    corpora = imp.add_subparsers(dest="corpus", required=True, metavar="{" + ",".join(IMPORTERS) + "}")
    for name in IMPORTERS:
        p = corpora.add_parser(name, help=_LAYOUTS[name], description=f"Expected layout: {_LAYOUTS[name]}")
        p.add_argument("src", help="the corpus folder")
        p.add_argument("out", help="the dataset folder to write (new or empty)")
        p.add_argument("--link", choices=LINKS, default="absolute",
                       help="symlinks to absolute paths (survive moving OUT) or relative ones (survive moving or "
                            "remounting SRC and OUT together); default absolute")
        p.add_argument("--force", action="store_true", help="replace an earlier import in OUT")
        _corpus_options(name, p)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``python -m lib.corpora import <corpus> SRC OUT [options]``."""
    args = vars(_parser().parse_args(argv))
    args.pop("command")
    try:
        return import_corpus(args.pop("corpus"), args.pop("src"), args.pop("out"), **args)
    except (ParameterError, CorpusError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
