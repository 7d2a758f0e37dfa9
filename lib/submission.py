"""Write submission.csv and check it against the data folder before a submission is spent.

The server reads ``filename,label`` in UTF-8, one row per test file. Names are written byte for byte, quoted the
CSV way when they hold a comma, a quote, CR or LF. A name that is not valid UTF-8 cannot be written in a UTF-8 file:
its row is left out (the rest of the file stays valid) and the check names the file (escaped, ``lib.names``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from . import checks, names, shards
from .media import list_media
from .errors import ParameterError
from .shards import describe, select

COLUMNS = ["filename", "label"]
SUBMISSION = "submission.csv"


MERGE_HELP = ("Join the runs of shards (infer.ipynb with shard: i/n, every share once) into one submission checked "
              "against the whole data folder.")


class SubmissionError(ValueError):
    """A submission.csv that the server would not score as intended; the message lists every problem."""


def write_submission(predictions: pd.DataFrame, path: Path) -> Path:
    """Write ``filename,label`` (label an int 0/1), one row per file, in the predictions' order; rows whose name is
    escaped (``name_escaped``: not valid UTF-8) are left out."""
    escaped = predictions["name_escaped"].astype(bool) if "name_escaped" in predictions else \
        pd.Series(False, index=predictions.index)
    rows = [f"{names.csv_field(str(n))},{int(y)}\n" for n, y, e in
            zip(predictions["filename"], predictions["label"], escaped) if not e and names.is_utf8(str(n))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(COLUMNS) + "\n" + "".join(rows))
    return path


def unnamed_files(data_dir: Path, shard: str = "") -> list[str]:
    """The media files of ``data_dir`` (of shard ``i/n``) whose names a UTF-8 submission cannot hold (escaped)."""
    return [names.escape(p.name) for p in select(list_media(data_dir), shard) if not names.is_utf8(p.name)]


def unnamed_message(unnamed: list[str]) -> str:
    """What to tell about files that submission.csv cannot name."""
    shown = ", ".join(repr(n) for n in unnamed[:5]) + (f" and {len(unnamed) - 5} more" if len(unnamed) > 5 else "")
    return (f"{len(unnamed)} media files have names that are not valid UTF-8, which a UTF-8 submission.csv cannot "
            f"hold, so they have no row there (predictions.csv has them, escaped: bytes that are not UTF-8 as \\xNN, "
            f"backslashes doubled): {shown}; rename them to UTF-8 names to have them scored")


def submission_problems(path: Path, data_dir: Path, unnamed_ok: bool = False, shard: str = "") -> list[str]:
    """Everything wrong with ``path`` as a submission for the media in ``data_dir`` (empty when it is valid); with
    ``shard="i/n"``, for that share of the media only (``lib.shards``: a shard's submission is partial).

    ``unnamed_ok``: files whose names UTF-8 cannot carry are not expected to have a row (and not reported)."""
    path = Path(path)
    if not path.is_file():
        return [f"{path} does not exist"]
    try:
        df = pd.read_csv(path, dtype={"filename": str}, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        return [f"{path} cannot be read as a UTF-8 CSV: {e}"]
    if list(df.columns) != COLUMNS:
        return [f"columns are {list(df.columns)}, expected {COLUMNS}"]
    unnamed = unnamed_files(data_dir, shard)
    problems = [] if unnamed_ok or not unnamed else [unnamed_message(unnamed)]
    expected = {p.name for p in select(list_media(data_dir), shard) if names.is_utf8(p.name)}
    listed = df["filename"].tolist()
    dup = sorted({n for n in listed if listed.count(n) > 1})
    missing, extra = sorted(expected - set(listed)), sorted(set(listed) - expected)
    if dup:
        problems.append(f"{len(dup)} filenames appear more than once: {dup[:5]}")
    if missing:
        problems.append(f"{len(missing)} {describe(shard)} have no row: {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} rows name no {describe(shard, plural=False)} in {data_dir}: {extra[:5]}")
    not_bare = [n for n in listed if not Path(n).suffix or "/" in n]  # a backslash is a valid character of a name
    if not_bare:
        problems.append(f"{len(not_bare)} filenames are not bare names with an extension: {not_bare[:5]}")
    bad = df[~df["label"].astype(str).isin(["0", "1"])]
    if len(bad):
        problems.append(f"{len(bad)} labels are not the integers 0/1: {bad['label'].astype(str).tolist()[:5]}")
    return problems


def check_submission(path: Path, data_dir: Path, unnamed_ok: bool = False, shard: str = "") -> None:
    """Raise SubmissionError listing every problem of the submission (of shard ``i/n`` when given); quiet when
    valid."""
    problems = submission_problems(path, data_dir, unnamed_ok, shard)
    if problems:
        raise SubmissionError(f"invalid submission {path}:\n- " + "\n- ".join(problems))


def merge(out: Path, runs: list[Path], data_dir: Path | None = None) -> Path:
    """Join the shards' predictions into ``out/submission.csv`` (+ predictions.csv, merge.json), in the order an
    unsharded run writes them, each shard checked against its share and the whole against ``data_dir``."""
    runs = [Path(r) for r in runs]
    found = [shards.run_shard(r) for r in runs]
    n = shards.check_cover([s for s, _ in found], runs)
    if data_dir is None:
        dirs = {p.get("data_dir") for _, p in found}
        if len(dirs) != 1:
            raise ParameterError("data", None, "the folder the shards share (--data DIR)",
                                 why=f"the runs name different data folders: {sorted(map(str, dirs))}")
        data_dir = checks.existing_dir("data", str(dirs.pop()), "the data folder the shards were made from")
    tables = []
    for run, (shard, _) in zip(runs, found):
        check_submission(run / SUBMISSION, data_dir, shard=shard)
        table = run / "predictions.csv"
        tables.append(pd.read_csv(table, dtype={"filename": str}, keep_default_na=False) if table.is_file()
                      else pd.read_csv(run / SUBMISSION, dtype={"filename": str}, keep_default_na=False))
    order = {p.name: k for k, p in enumerate(list_media(data_dir))}
    merged = pd.concat(tables, ignore_index=True)
    merged = merged.iloc[merged["filename"].map(order).argsort(kind="stable")].reset_index(drop=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged.to_csv(out / "predictions.csv", index=False)
    path = write_submission(merged, out / SUBMISSION)
    check_submission(path, data_dir)
    (out / shards.MERGE_RECORD).write_text(json.dumps({"data_dir": str(data_dir), "shards": n, "runs": [str(r) for r in runs],
                                                "files": int(len(merged))}, indent=2), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> Path:
    """``python -m lib.submission merge OUT RUN... [--data DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m lib.submission", description=MERGE_HELP)
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


if __name__ == "__main__":  # python -m lib.submission merge OUT RUN...
    main(sys.argv[1:])
