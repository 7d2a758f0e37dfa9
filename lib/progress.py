"""Progress bars: one ``tqdm`` for every loop of the kit.

A widget bar in a notebook that a Jupyter server runs for a person (JupyterLab, Notebook: the server names the
session in ``JPY_SESSION_NAME``), a text bar everywhere else: under papermill (its kernel has no such session, and a
widget would be saved and logged as a frozen ``0%``), in scripts, in worker processes and in logs.
``tqdm.auto`` alone cannot tell papermill from JupyterLab once ipywidgets is installed; under papermill, importing
this module (``import lib`` does) also makes other libraries' ``tqdm.auto`` bars text.
"""

from __future__ import annotations

import os
import sys

from tqdm.std import tqdm as text_tqdm


def widgets_wanted() -> bool:
    """True in an IPython kernel started by a Jupyter server for a notebook session, with ipywidgets installed."""
    if not os.environ.get("JPY_SESSION_NAME"):
        return False
    if not _in_kernel():
        return False  # a script or a subprocess that inherited the variable from a notebook's kernel
    from tqdm.notebook import IProgress

    return IProgress is not None


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def _choose() -> type:
    if widgets_wanted():
        from tqdm.notebook import tqdm as widget_tqdm

        return widget_tqdm
    if _in_kernel():  # papermill: other libraries' tqdm.auto bars (transformers' "Loading weights") print text too
        import tqdm.auto

        tqdm.auto.tqdm = text_tqdm
    return text_tqdm


tqdm = _choose()

__all__ = ["tqdm", "widgets_wanted"]
