"""Recipes × protocols, with 90 % intervals and paired differences: the table of docs/generalisation.md, printed from
train.ipynb runs.

Each recipe is trained through papermill on every ``../shared/data/*`` folder with a labels.csv, once per protocol:

* ``split``: the kit's grouped random split (a quarter of the origins held back): the in-distribution figure;
* ``source``: leave-one-source-out: every generator held out in turn with reals none of its models saw (generators
  with fewer than 10 fakes merged per kind, named in the run's output): the decision protocol;
* ``folder``: leave-one-folder-out: every data folder held out whole (its own reals and processing): the check of
  dataset shift, the way a hidden test set shifts;
* ``kind``: the old leave-one-kind-out, kept to show how the protocols rank the recipes.

For every figure the 90 % bootstrap interval resamples whole origins (``lib.metrics.bootstrap``). Each recipe is
compared with the baseline and with the recipe it builds on by the interval of the *paired* difference of the mean
held-out AUC (the same folds, the same files, the same resamples); one is recommended over a simpler one only when
that interval excludes zero under ``source`` and ``folder`` does not contradict it. Last, how each protocol ranks the
recipes and whether the rankings agree (Spearman correlation of their mean AUCs).

    python bench/generalisation.py --cache-dir /work/cache/crops        # every recipe × protocol (about 2 h on 2 cores)
    python bench/generalisation.py --recipes traces probe-v1 --protocols source folder
    python bench/generalisation.py --reuse                                # reprint from the runs already in --out

Runs, models, logs and executed notebooks go under --out (its own KIT_WORKDIR: feature caches, submissions,
EXPERIMENTS.md), never into the project's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from train_table import run_one  # noqa: E402

from lib.metrics import spearman  # noqa: E402
from lib.training import validation  # noqa: E402

RECOMMENDED = yaml.safe_load((ROOT / "params" / "detector-train.yaml").read_text())
COMMON = {"data": RECOMMENDED["data"], "frames": RECOMMENDED["frames"], "backbone": "efficientnet_lite0"}
V1 = {"strategy": "linear_probe", "probe_features": "multi", "probe_stages": [4, 5, 6], "probe_k": [4, 8, 16, 32],
      "probe_c": 0.1, "threshold_rule": "reals", "threshold_reals": 0.9}
TRACES = {k: v for k, v in RECOMMENDED.items() if k not in ("exp", "out", "validate", "leave_out_by", "data", "frames")}
# name -> (what it is, the recipe it builds on (paired difference), train.ipynb parameters over COMMON)
RECIPES: dict[str, tuple[str, str | None, dict]] = {
    "lr-pooled": ("logistic regression on the frozen ImageNet pooled features (the plain baseline)", None,
                  {"strategy": "linear_probe", "probe_features": "head", "probe_k": [], "probe_tau": 0.0,
                   "probe_c": 1.0}),
    "probe-v1": ("detector v1: linear probe, stages 4-6 + pooled, k consistent features by inner LOKO, 90 % of "
                 "reals called real", "lr-pooled", V1),
    "probe-s1-6": ("the same probe on stages 1-6", "probe-v1", {**V1, "probe_stages": [1, 2, 3, 4, 5, 6]}),
    "traces": ("detector v2 (params/detector-train.yaml): 21 trace signals per crop of the face and a narrow "
               "surround, mean and spread per file, one regression", "probe-v1", TRACES),
    "traces-wide": ("the same on a crop with more surround (face_margin 1.8)", "traces",
                    {**TRACES, "face_margin": 1.8}),
}
PROTOCOLS = {"split": {"validate": "split"},
             "source": {"validate": "leave_one_out", "leave_out_by": "source"},
             "folder": {"validate": "leave_one_out", "leave_out_by": "folder"},
             "kind": {"validate": "leave_one_out", "leave_out_by": "kind"}}
NAMES = {"split": "split", "source": "leave-one-source-out", "folder": "leave-one-folder-out",
         "kind": "leave-one-kind-out"}


def _iv(m: dict, key: str) -> str:
    return validation.interval_text(m, key)


def cells(proto: str, rec: dict) -> dict:
    """The table's cells of one run: mean with interval, worst, macro F1 and reals called real, minutes."""
    m, minutes = rec["metrics"], rec["timings"]["total_s"] / 60
    if proto == "split":
        return {"split AUC": _iv(m, "val_auc"), "split min": f"{minutes:.1f}"}
    name = NAMES[proto]
    loo = {k[4:]: v for k, v in m.items() if k.startswith("loo_")}
    worst = f"{loo['worst_auc']:.3f} [{loo['worst_auc_low']:.3f}, {loo['worst_auc_high']:.3f}] ({loo['worst']})"
    return {f"{name} mean AUC": _iv(loo, "mean_auc"), f"{name} worst": worst,
            f"{name} macro F1": _iv(loo, "mean_f1"), f"{name} reals called real": f"{loo['reals_called_real']:.2f}",
            f"{name} min": f"{minutes:.1f}"}


def predictions(out: Path, exp: str) -> pd.DataFrame:
    return pd.read_csv(out / "submissions" / exp / "val_predictions.csv", dtype={"origin": str, "filename": str})


def counted(rec: dict) -> list[str]:
    """The held-out groups a leave-one-out run counts (enough fakes), in its order."""
    return [g["held_out"] for g in rec["leave_one_out"]["by_group"] if not g["too_few"]]


def paired_rows(out: Path, recs: dict, protocols: list[str]) -> list[dict]:
    """Each recipe against the baseline and against the one it builds on: the paired differences of the mean
    held-out AUC, per leave-one-out protocol."""
    rows = []
    for name, (_, base, _) in RECIPES.items():
        for other in dict.fromkeys(b for b in (base, "lr-pooled") if b and b != name):
            if name not in recs or other not in recs:
                continue
            row = {"recipe": name, "against": other}
            for proto in (p for p in protocols if p != "split"):
                a, b = recs[name].get(proto), recs[other].get(proto)
                if a and b:
                    diff = validation.paired_from_predictions(predictions(out, _exp(name, proto)),
                                                              predictions(out, _exp(other, proto)), counted(a))
                    row[NAMES[proto]] = diff.text() + (" *" if diff.excludes(0.0) else "")
            rows.append(row)
    return rows


def protocol_check(recs: dict, protocols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each protocol's ranking of the recipes (by split AUC or mean held-out AUC) and the Spearman correlation of the
    protocols' figures."""
    score = {p: {n: (r[p]["metrics"]["val_auc"] if p == "split" else r[p]["metrics"]["loo_mean_auc"])
                 for n, r in recs.items() if p in r} for p in protocols}
    ranks = pd.DataFrame({NAMES[p]: pd.Series(s).rank(ascending=False).astype(int) for p, s in score.items()})
    agree = pd.DataFrame({NAMES[p]: {NAMES[q]: spearman(*zip(*[(score[p][n], score[q][n]) for n in score[p]
                                                             if n in score[q]])) for q in score} for p in score})
    return ranks, agree


def _exp(name: str, proto: str) -> str:
    return f"gen-{name}-{proto}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    ap.add_argument("--reuse", action="store_true", help="take runs already in --out instead of training them again")
    ap.add_argument("--cache-dir", help="crop cache to share (default: --out/cache/crops)")
    ap.add_argument("--out", default=str(ROOT / "bench/out/generalisation"))
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    common = {k: v for k, v in COMMON.items() if k != "data"} | ({"cache_dir": a.cache_dir} if a.cache_dir else {})
    recs: dict[str, dict] = {}
    for name in a.recipes:
        what, _, params = RECIPES[name]
        print(f"{name}: {what}", flush=True)
        recs[name] = {p: run_one(_exp(name, p), out, COMMON["data"], {**params, **PROTOCOLS[p]}, common, a.reuse)
                      for p in a.protocols}
    table = pd.DataFrame([{"recipe": n, **{k: v for p, rec in r.items() for k, v in cells(p, rec).items()}}
                          for n, r in recs.items()])
    table.to_csv(out / "generalisation.csv", index=False)
    pd.set_option("display.width", 250)
    print("\n" + table.set_index("recipe").T.to_markdown())
    for proto in (p for p in a.protocols if p != "split"):
        rules = pd.DataFrame([{"recipe": n, **{r["rule"]: f"{r['macro_f1']:.3f} (reals {r['reals_called_real']:.2f})"
                                               for r in recs[n][proto]["metrics"]["loo_rules"]}} for n in recs])
        print(f"\n{NAMES[proto]}: mean macro F1 (and reals called real) by threshold rule\n"
              + rules.to_markdown(index=False))
    pairs = pd.DataFrame(paired_rows(out, recs, a.protocols))
    if len(pairs):
        print("\npaired difference of the mean held-out AUC (* = the 90 % interval excludes zero)\n"
              + pairs.to_markdown(index=False))
    if len(recs) > 2:
        ranks, agree = protocol_check(recs, a.protocols)
        print("\nrank of each recipe under each protocol (1 = best)\n" + ranks.to_markdown())
        print("\nSpearman correlation between the protocols' figures\n" + agree.to_markdown(floatfmt=".2f"))
    merged = next((r[p]["metrics"].get("loo_merged") for r in recs.values() for p in ("source",) if p in r), None)
    if merged:
        print("\nleave-one-source-out: generators with fewer than 10 fakes merged per kind: "
              + json.dumps({k: len(v) for k, v in merged.items()}))


if __name__ == "__main__":
    main()
