"""Training data: labelled folders → crops through the crop cache, a split by origin, per-epoch samples with
self-blended pseudo-fakes and augmentations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import cache
from ..engines import FILE_TIMEOUT, Engine
from ..errors import MediaError, ParameterError
from ..media import media_kind
from ..metrics import read_labels
from ..options import PrepSettings
from ..paths import CROP_CACHE, resolve
from ..pipeline import preprocess
from ..progress import tqdm
from ..scale import boxreuse
from . import augment, sbi

TRAIN_ON = ("all", "real")  # train on every labelled train-side file, or on the real ones only (fakes go to val)
GROUP_BY = ("origin", "filename")
# The kind of fake a well-known corpus holds, for labels.csv files without a kind column (leave-one-kind-out then
# holds Celeb-DF's face swaps out with the other face swaps). Kinds: real-photo, real-video, faceswap, talkinghead,
# lipsync, diffusion, stylegan, other.
SOURCE_KINDS = {"celeb-df-v2": "faceswap", "celeb-df": "faceswap", "celebdf": "faceswap"}


@dataclass
class CropSet:
    """Crops in memory with one row per file: ``files`` (dataset, filename, label, kind, group, first, n_crops)."""

    crops: np.ndarray  # (N, S, S, 3) uint8
    file_index: np.ndarray  # (N,) row of ``files`` each crop came from
    files: pd.DataFrame
    box_reuse: dict[str, Any] = field(default_factory=dict)  # lib.scale.boxreuse.summary of the run that loaded them

    def labels(self) -> np.ndarray:
        return self.files["label"].to_numpy()[self.file_index]

    def subset(self, rows: np.ndarray) -> "CropSet":
        """The crops of the given file rows (re-indexed)."""
        rows = np.asarray(rows, dtype=int)
        keep = np.isin(self.file_index, rows)
        remap = np.full(len(self.files), -1)
        remap[rows] = np.arange(len(rows))
        return CropSet(self.crops[keep], remap[self.file_index[keep]], self.files.iloc[rows].reset_index(drop=True))


def dataset_paths(folder: str) -> tuple[Path, Path]:
    """(media folder, labels.csv) of a dataset folder: ``<folder>/labels.csv`` with media in ``media/`` or beside it."""
    root = Path(folder).expanduser()
    root = root if root.is_dir() else resolve(folder)
    labels = root / "labels.csv"
    if not labels.is_file():
        raise ParameterError("data", folder, "dataset folders holding labels.csv (filename,label[,source,kind,origin])",
                             why=f"no {labels}")
    media = root / "media" if (root / "media").is_dir() else root
    return media.resolve(), labels.resolve()


def expand_folders(entries: list[str]) -> list[str]:
    """Dataset folders from ``data`` entries: a folder, or a pattern such as ``../shared/data/*`` that stands for
    every matching folder holding a labels.csv (sorted), so a folder added later is picked up; a pattern that
    matches none is an error."""
    import glob

    folders: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ParameterError("data", entry, "dataset folders (or patterns such as ../shared/data/*)")
        if not glob.has_magic(entry):
            folders.append(entry)
            continue
        pattern = entry if Path(entry).expanduser().is_absolute() else str(resolve(entry))
        found = sorted(str(Path(d).resolve()) for d in glob.glob(str(Path(pattern).expanduser()))
                       if (Path(d) / "labels.csv").is_file())
        if not found:
            raise ParameterError("data", entry, "a pattern matching folders that hold labels.csv", why="none matches")
        folders += found
    return list(dict.fromkeys(folders))


def file_table(folder: str) -> pd.DataFrame:
    """One row per labelled file: path, dataset, filename, label, source, kind, group."""
    media, labels_csv = dataset_paths(folder)
    df = read_labels(labels_csv)
    name = media.parent.name if media.name == "media" else media.name
    source = df["source"] if "source" in df.columns else pd.Series(name, index=df.index)
    media_kinds = [media_kind(Path(f)) for f in df["filename"]]
    if "kind" in df.columns:
        kind = df["kind"].astype(str)
    else:  # no kind column (the dev set): reals by media type, fakes by their source's known kind or the source
        real = pd.Series(["real-video" if m == "video" else "real-photo" for m in media_kinds], index=df.index)
        fake = source.astype(str).map(lambda s: SOURCE_KINDS.get(s, f"{s}-fake"))
        kind = real.where(df["label"] == 0, fake)
    origin = df["origin"].where(df["origin"] != "", df["filename"]) if "origin" in df.columns else df["filename"]
    return pd.DataFrame({"path": [str(media / f) for f in df["filename"]], "dataset": name,
                         "filename": df["filename"], "label": df["label"].astype(int), "source": source.astype(str),
                         "kind": kind, "origin": name + "/" + origin.astype(str),
                         "media": media_kinds})


def load_crops(folders: list[str], prep: PrepSettings, cache_dir: Path | None = None, workers: int | Engine = -1,
               box_reuse: bool = False, cluster: str = "", file_timeout: float = FILE_TIMEOUT
               ) -> tuple[CropSet, pd.DataFrame]:
    """Crops of every labelled file of ``folders`` (same crop code and cache as inference), and the files dropped.

    Preprocessing runs where ``cluster`` and ``workers`` say (``lib.engines.opened``), each file within its time
    limit (``file_timeout``). ``box_reuse``: fakes cropped with their original's face boxes where
    ``lib.scale.boxreuse`` allows it (``CropSet.box_reuse`` counts what happened)."""
    table = pd.concat([file_table(f) for f in folders], ignore_index=True)
    paths = [Path(p) for p in table["path"]]
    records = boxreuse.preprocess(table, prep, cache_dir, workers, cluster=cluster, file_timeout=file_timeout) \
        if box_reuse else preprocess(paths, prep, cache_dir, workers, cluster=cluster, file_timeout=file_timeout)
    cache_dir = Path(cache_dir or CROP_CACHE)
    crops, index, kept, dropped = [], [], [], []
    for i, r in enumerate(records):
        if not r.has_crops:
            dropped.append({**table.iloc[i].to_dict(), "reason": r.error or "no face in any sampled frame"})
            continue
        c = cache.load_crops(cache_dir, r)
        crops.append(c)
        index.append(np.full(len(c), len(kept)))
        kept.append(i)
    if not crops:
        raise MediaError(f"no crops could be made from {folders}")
    files = table.iloc[kept].reset_index(drop=True).assign(n_crops=[len(c) for c in crops])
    reuse = boxreuse.summary(records) if box_reuse else {}
    return CropSet(np.concatenate(crops), np.concatenate(index), files, reuse), pd.DataFrame(dropped)


def split_files(files: pd.DataFrame, val_fraction: float, seed: int, group_by: str = "origin",
                train_on: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(train rows, val rows): whole groups on one side, stratified by label.

    ``train_on="real"`` trains on real-only groups: a group that holds a fake (a face swap and the real video it was
    made from) goes to val whole, so val holds every fake.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if group_by not in GROUP_BY:
        raise ParameterError("group_by", group_by, GROUP_BY)
    if train_on not in TRAIN_ON:
        raise ParameterError("train_on", train_on, TRAIN_ON)
    if not 0.0 < val_fraction < 1.0:
        raise ParameterError("val_fraction", val_fraction, "a number strictly between 0 and 1")
    groups = files[group_by].to_numpy()
    n_splits = max(2, round(1 / val_fraction))
    if len(set(groups)) < n_splits:
        raise ParameterError("val_fraction", val_fraction, why=f"only {len(set(groups))} groups ({group_by}) to split")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train, val = next(folds.split(np.zeros(len(files)), files["label"].to_numpy(), groups))
    if train_on == "real":  # every group holding a fake goes to val whole: the fake's own real never trains
        faked = np.isin(groups, groups[files["label"].to_numpy() == 1])
        moved = train[faked[train]]
        train, val = np.setdiff1d(train, moved), np.concatenate([val, moved])
    if not len(train) or not len(val):
        raise ParameterError("train_on" if train_on == "real" and not len(train) else "val_fraction",
                             train_on if not len(train) else val_fraction,
                             why=f"the split leaves {len(train)} train and {len(val)} val files"
                             + (" (every real file shares its group with a fake)" if train_on == "real" else ""))
    return np.sort(train), np.sort(val)


def crop_landmarks(crops: np.ndarray, margin: float) -> np.ndarray:
    """dlib's 68 landmarks of every crop, (N, 68, 2), for self-blending."""
    out = np.zeros((len(crops), 68, 2), np.float32)
    for i, c in enumerate(tqdm(crops, desc="landmarks", unit="crop", leave=False)):
        out[i] = sbi.landmarks(c, margin)
    return out


class TrainSamples:
    """One epoch's samples: each train crop with its label, plus one self-blended pseudo-fake per real crop."""

    def __init__(self, data: CropSet, augments: list[str], seed: int, points: np.ndarray | None = None,
                 fixed_fakes: bool = False):
        self.data, self.augments, self.seed, self.points = data, augment.check(augments), seed, points
        self.labels = data.labels()
        real = np.flatnonzero(self.labels == 0) if points is not None else np.zeros(0, int)
        # (crop index, is a pseudo-fake)
        self.items = [(i, False) for i in range(len(data.crops))] + [(int(i), True) for i in real]
        self.fixed_fakes = fixed_fakes  # the same pseudo-fake every epoch (distillation caches teacher outputs)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, k: int) -> tuple[np.ndarray, int]:
        """Sample ``k`` before augmentation: the crop (or its pseudo-fake) and its label."""
        i, fake = self.items[k]
        if not fake:
            return self.data.crops[i], int(self.labels[i])
        rng = np.random.default_rng([self.seed, 0 if self.fixed_fakes else self.epoch + 1, k])
        return sbi.self_blend(self.data.crops[i], self.points[i], rng)[0], 1

    def batch(self, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augmented uint8 crops and labels of samples ``ks`` (deterministic for seed, epoch and sample)."""
        imgs, ys = [], []
        for k in ks:
            img, y = self.raw(int(k))
            rng = np.random.default_rng([self.seed, self.epoch + 1, int(k), 1])
            imgs.append(augment.augment(img, self.augments, rng))
            ys.append(y)
        return np.stack(imgs), np.asarray(ys)

    def order(self) -> np.ndarray:
        """This epoch's shuffled sample order."""
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.items))

    def counts(self) -> dict[str, int]:
        n_fake_sbi = sum(f for _, f in self.items)
        return {"samples": len(self.items), "real": int((self.labels == 0).sum()),
                "labelled_fake": int((self.labels == 1).sum()), "pseudo_fake": int(n_fake_sbi)}


def describe_split(files: pd.DataFrame, train: np.ndarray, val: np.ndarray) -> pd.DataFrame:
    """Files and crops per kind on each side of the split."""
    side = np.full(len(files), "", object)
    side[train], side[val] = "train", "val"
    df = files.assign(side=side)
    df = df[df["side"] != ""]
    return (df.groupby(["kind", "side"]).agg(files=("filename", "size"), crops=("n_crops", "sum"))
            .unstack("side", fill_value=0))


def info(data: CropSet) -> dict[str, Any]:
    return {"files": int(len(data.files)), "crops": int(len(data.crops)),
            "by_kind": data.files["kind"].value_counts().to_dict()}
