"""JupyterLab for the kit: the project's venv as a named kernel, and a server bound to 127.0.0.1 with a token.

``python -m lib.review.lab [--port N] [--token T] [--no-browser]`` (``make lab`` runs it after preparing the sample set and
the demo model that the notebooks' defaults use) registers the kernel ``deepfake-kit`` in this Python's own prefix
(``<venv>/share/jupyter/kernels/``, never the user's kernels) and the offline defaults of JupyterLab's settings
beside it (no news prompt, no update check), then replaces itself with JupyterLab: bound to
127.0.0.1, on the given port or a free one, with the given token or a random one, opening on ``notebooks/``, with the
kit's kernel as the only (and so the default) kernel, and no news, update checks or extension installs (offline).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
from pathlib import Path

from ..paths import NOTEBOOKS, ROOT

KERNEL_NAME = "deepfake-kit"
KERNEL_DISPLAY_NAME = "deepfake-kit (.venv)"
# The kernel never reaches the Hugging Face hub and prints as it goes, whoever starts it (as the Makefile's exports).
KERNEL_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
_NOTIFICATIONS = "@jupyterlab/apputils-extension:notification"
LAB_SETTINGS = {_NOTIFICATIONS: {"fetchNews": "false", "checkForUpdates": False}}


def register_kernel(prefix: Path | None = None) -> Path:
    """Install the kernelspec ``deepfake-kit`` (this Python, the kit's environment variables) under ``prefix``."""
    from ipykernel.kernelspec import install

    where = install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=str(prefix or sys.prefix),
                    env=dict(KERNEL_ENV))
    return Path(where)


def write_settings(prefix: Path | None = None) -> Path:
    """JupyterLab defaults for an offline kit, in ``<prefix>/share/jupyter/lab/settings/overrides.json``: no news
    prompt, no update check (other keys of an existing file are kept; a person's own settings still win)."""
    path = Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    settings.setdefault(_NOTIFICATIONS, {}).update(LAB_SETTINGS[_NOTIFICATIONS])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lab_command(port: int, token: str, open_browser: bool = True) -> list[str]:
    """The JupyterLab command line: localhost only, a token, the project as root, opening on notebooks/."""
    if not token:
        raise ValueError("a token is required: the server must not be open to anyone on the machine")
    start = NOTEBOOKS.relative_to(ROOT).as_posix()
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
           f"--LabApp.default_url=/lab/tree/{start}", f"--ServerApp.open_browser={open_browser}",
           f"--KernelSpecManager.allowed_kernelspecs={KERNEL_NAME}",
           f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root; Jupyter refuses it unless told
    return cmd


def main(argv: list[str] | None = None) -> None:
    """Command line: register the kernel, print the address, exec JupyterLab."""
    ap = argparse.ArgumentParser(prog="python -m lib.review.lab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--token", default=os.environ.get("KIT_LAB_TOKEN", ""),
                    help="access token (default: $KIT_LAB_TOKEN, else a random one)")
    ap.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    args = ap.parse_args(argv)
    spec = register_kernel()
    write_settings()
    port, token = args.port or free_port(), args.token or secrets.token_hex(24)
    print(f"kernel {KERNEL_NAME!r}: {spec}\nJupyterLab: http://127.0.0.1:{port}/lab/tree/notebooks?token={token}",
          flush=True)
    cmd = lab_command(port, token, open_browser=not args.no_browser)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
