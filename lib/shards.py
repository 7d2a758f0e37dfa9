"""Shards, for machines without a Dask scheduler: each takes a deterministic share of a data folder's files
(``shard: "i/n"``), writes a partial submission checked against its share, and the shards' runs are merged into one
submission checked against the whole folder (``lib.submission.merge``, ``python -m lib.submission merge``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import checks
from .errors import ParameterError

MERGE_RECORD = "merge.json"


def select(files: list[Path], shard: str) -> list[Path]:
    """Share ``i`` of ``n`` of ``files`` (``shard="i/n"``): the files at positions i-1, i-1+n, ... in name order, so
    the shares are disjoint, cover every file, and hold about as many videos as each other; ``""``: every file."""
    spec = checks.shard(shard)
    if spec is None:
        return list(files)
    i, n = spec
    return sorted(files, key=lambda p: Path(p).name)[i - 1::n]


def describe(shard: str, plural: bool = True) -> str:
    """How a problem message names the files a submission must hold."""
    return ("media files" if plural else "media file") + (f" of shard {shard}" if shard else "")


def run_shard(run: Path) -> tuple[str, dict[str, Any]]:
    """The shard a run folder was made with, and its parameters (from run.json)."""
    record = run / "run.json"
    if not record.is_file():
        raise ParameterError("RUN", str(run), "run folders of infer.ipynb made with shard: i/n",
                             why=f"no {record}")
    params = json.loads(record.read_text(encoding="utf-8")).get("params", {})
    if not params.get("shard"):
        raise ParameterError("RUN", str(run), "run folders of infer.ipynb made with shard: i/n",
                             why="it was not made with a shard (its submission is already whole)")
    return str(params["shard"]), params


def check_cover(shards: list[str], runs: list[Path]) -> int:
    """Every share 1..n of one n, each once; returns n."""
    specs = [checks.shard(s) for s in shards]
    counts = {n for _, n in specs}
    if len(counts) != 1:
        raise ParameterError("RUN", [str(r) for r in runs], why=f"the runs split the folder differently: {shards}")
    n = counts.pop()
    have = sorted(i for i, _ in specs)
    if have != list(range(1, n + 1)):
        dup = sorted({i for i in have if have.count(i) > 1})
        missing = sorted(set(range(1, n + 1)) - set(have))
        raise ParameterError("RUN", [str(r) for r in runs],
                             why=f"shares of {n}: missing {missing or 'none'}, given twice {dup or 'none'}")
    return n
