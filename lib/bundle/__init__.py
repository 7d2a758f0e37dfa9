"""Scoring-server bundles: ``kernels/<exp>/`` with task.ipynb, the lib code it imports and the model, checked locally.

Command line (``python -m lib.kernel`` is the same command, kept for old notes):
    python -m lib.bundle build exp003 [--model models/my-detector] [--params params/exp003.yaml]
    python -m lib.bundle check exp003 [--data data/val] [--files 3000] [--video-share 0.5] [--max-size-mb 2048]

"Bundle" is the server package; "kernel" stays Jupyter's word (the top-level ``kernels/`` folder keeps its name).
The submission key is read from the environment (``AIF_KEY``) or from a key file outside the bundle
(``~/.aif_key``, or ``.aif_key`` at the project root, which git ignores); it is never written anywhere.

Modules:
    server      what the server is: Python, budget, cores, pip cell, uploader's skipped words, the key's places
    builder     task.ipynb, the shipped lib modules (the top-level ``lib/*.py``), the model folder
    checker     static checks, a server-like run, its projection and its equivalence with the kit's own infer
    projection  the server time of a test set, projected from the measured run
"""

from .builder import TASK_MODULES, build, lib_closure, task_notebook
from .checker import check, format_report, run_bundle, static_problems, task_parameters
from .projection import project
from .server import KEY_ENV, KEY_FILES, key_leaks

__all__ = ["KEY_ENV", "KEY_FILES", "TASK_MODULES", "build", "check", "format_report", "key_leaks", "lib_closure",
           "project", "run_bundle", "static_problems", "task_notebook", "task_parameters"]
