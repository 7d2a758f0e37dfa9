"""Shards, for machines without a Dask scheduler: each takes a deterministic share of a data folder's files
(``shard: "i/n"``), writes a partial submission checked against its share, and the shards' runs are merged into one
submission checked against the whole folder.

    python -m lib.submission merge OUT RUN... [--data DIR]

RUN is a run folder of infer.ipynb (``submissions/<exp>/``: run.json, predictions.csv, submission.csv) made with
``shard: "i/n"``; together the runs must hold every share 1..n of one ``n`` exactly once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from . import checks
from .errors import ParameterError
from .media import list_media

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


def _run_shard(run: Path) -> tuple[str, dict[str, Any]]:
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


def _check_cover(shards: list[str], runs: list[Path]) -> int:
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


def merge(out: Path, runs: list[Path], data_dir: Path | None = None) -> Path:
    """Join the shards' predictions into ``out/submission.csv`` (+ predictions.csv, merge.json), in the order an
    unsharded run writes them, each shard checked against its share and the whole against ``data_dir``."""
    from . import submission

    runs = [Path(r) for r in runs]
    found = [_run_shard(r) for r in runs]
    n = _check_cover([s for s, _ in found], runs)
    if data_dir is None:
        dirs = {p.get("data_dir") for _, p in found}
        if len(dirs) != 1:
            raise ParameterError("data", None, "the folder the shards share (--data DIR)",
                                 why=f"the runs name different data folders: {sorted(map(str, dirs))}")
        data_dir = checks.existing_dir("data", str(dirs.pop()), "the data folder the shards were made from")
    tables = []
    for run, (shard, _) in zip(runs, found):
        submission.check_submission(run / submission.SUBMISSION, data_dir, shard=shard)
        table = run / "predictions.csv"
        tables.append(pd.read_csv(table, dtype={"filename": str}, keep_default_na=False) if table.is_file()
                      else pd.read_csv(run / submission.SUBMISSION, dtype={"filename": str}, keep_default_na=False))
    order = {p.name: k for k, p in enumerate(list_media(data_dir))}
    merged = pd.concat(tables, ignore_index=True)
    merged = merged.iloc[merged["filename"].map(order).argsort(kind="stable")].reset_index(drop=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged.to_csv(out / "predictions.csv", index=False)
    path = submission.write_submission(merged, out / submission.SUBMISSION)
    submission.check_submission(path, data_dir)
    (out / MERGE_RECORD).write_text(json.dumps({"data_dir": str(data_dir), "shards": n, "runs": [str(r) for r in runs],
                                                "files": int(len(merged))}, indent=2), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> Path:
    """``python -m lib.submission merge OUT RUN... [--data DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m lib.submission", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="join the predictions of shard runs into one checked submission")
    m.add_argument("out", help="folder for the merged submission.csv, predictions.csv and merge.json")
    m.add_argument("runs", nargs="+", help="run folders made with shard: i/n (every share once)")
    m.add_argument("--data", default=None, help="the data folder (default: the one the runs recorded)")
    args = parser.parse_args(argv)
    try:
        data = checks.existing_dir("data", args.data, "the data folder the shards were made from") if args.data \
            else None
        path = merge(Path(args.out), [Path(r) for r in args.runs], data)
    except (ParameterError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"merged {len(args.runs)} shards → {path}")
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
