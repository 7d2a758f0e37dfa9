"""``python -m lib.kernel`` is ``python -m lib.bundle`` (the server package is a "bundle"; "kernel" is Jupyter's)."""
