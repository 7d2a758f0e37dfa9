"""What the scoring server is: its Python, budget, cores, what its pip cell installs, what its uploader skips, and
where the submission key lives (never inside a bundle)."""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import ROOT

KEY_ENV = "AIF_KEY"
KEY_FILES = (Path.home() / ".aif_key", ROOT / ".aif_key")
SKIPPED_WORDS = ("train", "drive", "sample_data")  # aif.submit leaves out every directory whose path contains one
SERVER_PYTHON = (3, 10)
SERVER_BUDGET_S = 3 * 3600
SERVER_WORKERS = 7  # the server's 8 CPU cores → min(cpu - 1, 8) preprocessing workers
# What task.ipynb's pip cell installs: the newest releases that install on the server's Python 3.10 next to its
# torch 2.7.1 (checked with `pip download --python-version 3.10`); torch and Jupyter are the server's own.
SERVER_PIP = ("aifactory", "transformers==5.20.2", "huggingface_hub>=1.0,<3", "safetensors>=0.4",
              "opencv-python-headless==5.0.0.93", "dlib-bin==20.0.1.post1", "numpy>=1.24,<2.3", "pandas>=2.0,<2.4",
              "scikit-learn>=1.3,<1.8", "pillow>=10", "tqdm>=4.60", "filelock>=3.12", "pyyaml>=6", "matplotlib>=3.7",
              "torchvision==0.22.1")  # the release built for torch 2.7.1 (a no-op where the server already has it)
# Installed without their dependencies, so that pip never replaces the server's torch: timm (pure Python; the kit's
# EfficientNet backbones are timm models) needs only torch, torchvision, pyyaml, huggingface_hub and safetensors.
SERVER_PIP_NO_DEPS = ("timm==1.0.31",)
SERVER_HAS = {"torch", "IPython", "ipykernel"}
_PIP_MODULES = {"transformers": "transformers", "huggingface_hub": "huggingface_hub", "safetensors": "safetensors",
                "cv2": "opencv-python-headless", "dlib": "dlib-bin", "numpy": "numpy", "pandas": "pandas",
                "sklearn": "scikit-learn", "PIL": "pillow", "tqdm": "tqdm", "filelock": "filelock", "yaml": "pyyaml",
                "matplotlib": "matplotlib", "torchvision": "torchvision", "timm": "timm",
                "aifactory": "aifactory"}
# APIs newer than the server's Python 3.10 / torch 2.7 that the bundle must not use (a short list, by name).
_NEWER_APIS = ("tomllib", "typing.Self", "datetime.UTC", "enum.StrEnum", "itertools.batched", "typing.override",
               "torch.compiler.set_stance", "torch.accelerator")


def _known_keys() -> list[str]:
    keys = [os.environ.get(KEY_ENV, "")] + [p.read_text(encoding="utf-8").strip() for p in KEY_FILES if p.is_file()]
    return [k for k in keys if len(k) >= 6]


def key_leaks(folder: Path, keys: list[str] | None = None) -> list[str]:
    """Files under ``folder`` that contain a known submission key."""
    keys = _known_keys() if keys is None else keys
    hits = []
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file() and f.stat().st_size < 50 * 2**20:
            data = f.read_bytes()
            if any(k.encode() in data for k in keys):
                hits.append(str(f.relative_to(folder)))
    return hits



def server_like_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KIT_WORKDIR", "PYTHONPATH", KEY_ENV)}
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}

