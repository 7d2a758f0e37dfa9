"""``python -m lib.sweep``: run or resume a sweep from the terminal (the same functions as notebooks/sweep.ipynb)."""

from __future__ import annotations

import argparse
import sys

from ..errors import ParameterError
from . import SWEEP, check, run
from .report import format_value


def parse_args(argv: list[str] | None = None) -> dict:
    """The sweep's parameters from the command line: one ``--name`` per parameter of ``SWEEP``, with its default."""
    ap = argparse.ArgumentParser(prog="python -m lib.sweep", description=__doc__)
    for p in SWEEP.params:
        kind = float if p.name == "timeout" else p.type  # 2.5 seconds is a timeout too
        ap.add_argument(f"--{p.name}", type=kind, default=p.default, help=p.help.replace("%", "%%"))
    return vars(ap.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    params = parse_args(argv)
    if isinstance(params["timeout"], float) and params["timeout"].is_integer():
        params["timeout"] = int(params["timeout"])
    try:
        plan = check(params)
        study, rep = run(plan)
    except ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = rep.update()
    shown = table.drop(columns=["retry_of"] if table["retry_of"].isna().all() else []).assign(
        value=table["value"].map(format_value))
    print("\n" + shown.to_markdown(index=False))
    print(f"\nstudy folder {rep.run.dir} (trials.csv, {', '.join(f'{n}.png' for n in rep.figures)}, study.db)")
    for s in rep.skipped:
        print(f"plot not drawn: {s}")
    best = rep.run.record.get("best_params")
    print(f"best params: {best}" if best else "no completed trial, so no best params")
    for r in plan.rules:
        print(f"RULE: {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
