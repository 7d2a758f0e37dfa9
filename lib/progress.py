"""Progress bars: one ``tqdm`` for every loop of the kit.

A widget bar in a notebook that a Jupyter server runs for a person (JupyterLab, Notebook: the server names the
session in ``JPY_SESSION_NAME``), a text bar everywhere else: under papermill (its kernel has no such session, and a
widget would be saved and logged as a frozen ``0%``), in scripts, in worker processes and in logs.
``tqdm.auto`` alone cannot tell papermill from JupyterLab once ipywidgets is installed.
"""

from __future__ import annotations

import os
import sys

from tqdm.std import tqdm as text_tqdm


def widgets_wanted() -> bool:
    """True in an IPython kernel started by a Jupyter server for a notebook session, with ipywidgets installed."""
    if not os.environ.get("JPY_SESSION_NAME"):
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or "IPKernelApp" not in shell.config:
        return False  # a script or a subprocess that inherited the variable from a notebook's kernel
    from tqdm.notebook import IProgress

    return IProgress is not None


def _choose() -> type:
    if widgets_wanted():
        from tqdm.notebook import tqdm as widget_tqdm

        return widget_tqdm
    return text_tqdm


tqdm = _choose()

__all__ = ["tqdm", "widgets_wanted"]
