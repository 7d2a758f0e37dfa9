"""``python -m lib.sweep``: run or resume a sweep from the terminal (the same functions as notebooks/sweep.ipynb)."""

from __future__ import annotations

import argparse
import sys

from ..errors import ParameterError
from . import DEFAULTS, check, run
from .report import format_value


def parse_args(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m lib.sweep", description=__doc__)
    ap.add_argument("--notebook", default=DEFAULTS["notebook"], help="infer | train | ensemble | a path to an .ipynb")
    ap.add_argument("--space", default=DEFAULTS["space"],
                    help="YAML mapping parameter → [choices] or {low, high, log, int, step}, or a YAML file")
    ap.add_argument("--fixed", default=DEFAULTS["fixed"], help="params file the trials start from ('' → defaults)")
    ap.add_argument("--objective", default=DEFAULTS["objective"], help="dotted path into each trial's run.json")
    ap.add_argument("--direction", default=DEFAULTS["direction"], help="maximize | minimize")
    ap.add_argument("--trials", type=int, default=DEFAULTS["trials"], help="trials in the study, all sessions together")
    ap.add_argument("--timeout", type=float, default=DEFAULTS["timeout"], help="seconds after which no trial starts (0: none)")
    ap.add_argument("--sampler", default=DEFAULTS["sampler"], help="grid | random | tpe")
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="sampler seed")
    ap.add_argument("--parallel", type=int, default=DEFAULTS["parallel"], help="trials at once (≤ cores)")
    ap.add_argument("--pruner", default=DEFAULTS["pruner"], help="median | none (training trials, per epoch)")
    ap.add_argument("--study", default=DEFAULTS["study"], help="study name (resumes when it exists)")
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
