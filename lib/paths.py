"""Every folder the kit reads or writes, resolved from the project root (never from the working directory)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where run outputs live (submissions/, EXPERIMENTS.md, cache/): the project root, or KIT_WORKDIR (tests, sandboxes).
WORKDIR = Path(os.environ.get("KIT_WORKDIR") or ROOT).resolve()
DATA = ROOT / "data"
SAMPLE = DATA / "sample"
MODELS = ROOT / "models"
DEMO_MODEL = MODELS / "demo-detector"
NOTEBOOKS = ROOT / "notebooks"
DOCS = ROOT / "docs"
PARAMS = ROOT / "params"
KERNELS = ROOT / "kernels"
SUBMISSIONS = WORKDIR / "submissions"
EXPERIMENTS_MD = WORKDIR / "EXPERIMENTS.md"
CACHE = WORKDIR / "cache"
CROP_CACHE = CACHE / "crops"
SHARED_DATA = ROOT.parent / "shared" / "data"


def resolve(path: str | Path) -> Path:
    """Return ``path`` as an absolute path; a relative one is taken from the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (ROOT / p)
