"""Write submission.csv and check it against the data folder before a submission is spent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .media import list_media
from .shards import describe, select

COLUMNS = ["filename", "label"]
SUBMISSION = "submission.csv"


def write_submission(predictions: pd.DataFrame, path: Path) -> Path:
    """Write ``filename,label`` (label an int 0/1), one row per file, in the predictions' order."""
    out = predictions[COLUMNS].copy()
    out["label"] = out["label"].astype(int)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def submission_problems(path: Path, data_dir: Path, shard: str = "") -> list[str]:
    """Everything wrong with ``path`` as a submission for the media in ``data_dir`` (empty when it is valid); with
    ``shard="i/n"``, for that share of the media only (``lib.shards``: a shard's submission is partial)."""
    path = Path(path)
    if not path.is_file():
        return [f"{path} does not exist"]
    df = pd.read_csv(path, dtype={"filename": str}, keep_default_na=False)
    if list(df.columns) != COLUMNS:
        return [f"columns are {list(df.columns)}, expected {COLUMNS}"]
    problems = []
    expected = {p.name for p in select(list_media(data_dir), shard)}
    names = df["filename"].tolist()
    dup = sorted({n for n in names if names.count(n) > 1})
    missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
    if dup:
        problems.append(f"{len(dup)} filenames appear more than once: {dup[:5]}")
    if missing:
        problems.append(f"{len(missing)} {describe(shard)} have no row: {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} rows name no {describe(shard, plural=False)} in {data_dir}: {extra[:5]}")
    no_ext = [n for n in names if not Path(n).suffix or "/" in n or "\\" in n]
    if no_ext:
        problems.append(f"{len(no_ext)} filenames are not bare names with an extension: {no_ext[:5]}")
    bad = df[~df["label"].astype(str).isin(["0", "1"])]
    if len(bad):
        problems.append(f"{len(bad)} labels are not the integers 0/1: {bad['label'].astype(str).tolist()[:5]}")
    return problems


def check_submission(path: Path, data_dir: Path, shard: str = "") -> None:
    """Raise ValueError listing every problem of the submission (of shard ``i/n`` when given); quiet when valid."""
    problems = submission_problems(path, data_dir, shard)
    if problems:
        raise ValueError(f"invalid submission {path}:\n- " + "\n- ".join(problems))


if __name__ == "__main__":  # python -m lib.submission merge OUT RUN... (joins shard runs: lib.shards)
    from .shards import main

    main()
