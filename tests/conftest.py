"""Shared fixtures: offline environment, tiny randomly initialised Hugging Face models, the real dev set if present."""

from __future__ import annotations

import os
from pathlib import Path

import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests never write runs, EXPERIMENTS.md or crop caches into the project: lib.paths reads this at import.
os.environ["KIT_WORKDIR"] = tempfile.mkdtemp(prefix="kit-tests-")

import pytest  # noqa: E402

SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"


def make_tiny_vit(folder: Path, id2label: dict[int, str], size: int = 32, seed: int = 0) -> Path:
    """Save a tiny random ViT image classifier (with its preprocessor config) to ``folder``."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=size,
                    patch_size=8, num_labels=len(id2label), id2label=id2label,
                    label2id={v: k for k, v in id2label.items()})
    ViTForImageClassification(cfg).save_pretrained(folder)
    from lib.backbones import write_preprocessor_config

    write_preprocessor_config(folder, size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return folder


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ViT with the baseline's label order {0: Realism, 1: Deepfake}."""
    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit"), {0: "Realism", 1: "Deepfake"})


@pytest.fixture(scope="session")
def tiny_vit_reversed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model with the other label order {0: Fake, 1: Real}."""
    return make_tiny_vit(tmp_path_factory.mktemp("tiny-vit-rev"), {0: "Fake", 1: "Real"})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory):
    """A module's outputs (submissions/, EXPERIMENTS.md) go to a temporary KIT_WORKDIR, never to the project's own
    folders. (A test module may define its own, e.g. function-scoped.)"""
    root = tmp_path_factory.mktemp("kit")
    old = os.environ.get("KIT_WORKDIR")
    os.environ["KIT_WORKDIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("KIT_WORKDIR")
    else:
        os.environ["KIT_WORKDIR"] = old


@pytest.fixture()
def shared_dev() -> Path:
    """The real dev set in ../shared/data/dev; the test is skipped when it is absent."""
    if not (SHARED_DEV / "labels.csv").is_file():
        pytest.skip("../shared/data/dev is not present")
    return SHARED_DEV


# tests import the media factory next to them as a plain module
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
