"""Recipes × (random split, leave-one-kind-out): the table of docs/generalisation.md, printed from train.ipynb runs.

Each recipe is trained twice through papermill on every ``../shared/data/*`` folder with a labels.csv: once with
``validate split`` (the in-distribution figure a competitor sees by default) and once with ``validate
leave_one_out`` (each kind of fake held out in turn with reals it never saw: the figure that predicts unseen
generators). The table gives the split's val AUC beside the held-out mean and worst AUC, the share of held-out reals
called real at the recipe's threshold, the held-out macro F1 and the minutes each run took.

    python bench/generalisation.py                              # every recipe (the feature_extractor one is slow)
    python bench/generalisation.py --recipes lr-pooled recommended
    python bench/generalisation.py --reuse                      # reprint from the runs already in --out

Runs, models, logs and executed notebooks go under --out (its own KIT_WORKDIR: crop and feature caches, submissions,
EXPERIMENTS.md), never into the project's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from train_table import run_one  # noqa: E402

RECOMMENDED = yaml.safe_load((ROOT / "params" / "detector-train.yaml").read_text())
COMMON = {"data": RECOMMENDED["data"], "frames": RECOMMENDED["frames"], "backbone": "efficientnet_lite0",
          "leave_out_by": "kind"}
# name -> (what it is, train.ipynb parameters over COMMON)
RECIPES: dict[str, tuple[str, dict]] = {
    "lr-pooled": ("logistic regression on the frozen pooled features (the plain baseline)",
                  {"strategy": "linear_probe", "probe_features": "head", "probe_k": [], "probe_tau": 0.0,
                   "probe_c": 1.0}),
    "fe-sbi": ("feature_extractor head, self-blended pseudo-fakes, the default augmentations, 3 epochs (the kit's "
               "recipe before the linear probe)",
               {"strategy": "feature_extractor", "lr": 1e-3, "epochs": 3, "self_blend": True}),
    "probe-s1-6": ("linear probe, stages 1-6 + pooled, k by inner leave-one-kind-out",
                   {**{k: v for k, v in RECOMMENDED.items() if k.startswith(("probe_", "strategy", "threshold_"))},
                    "probe_stages": [1, 2, 3, 4, 5, 6]}),
    "recommended": ("params/detector-train.yaml: stages 4-6 + pooled, k by inner LOKO, 90 % of reals called real",
                    {k: v for k, v in RECOMMENDED.items() if k not in ("exp", "out", "validate")}),
}


def row(name: str, split: dict | None, loo: dict | None) -> dict:
    """One table row from the two runs' records (either may be missing)."""
    out = {"recipe": name, "split AUC": split and split["metrics"].get("val_auc")}
    if loo:
        m = loo["metrics"]
        out.update({"LOKO mean AUC": m["loo_mean_auc"], "LOKO worst AUC": m["loo_worst_auc"],
                    "worst kind": m["loo_worst"], "LOKO within-media AUC": m["loo_mean_auc_within_media"],
                    "reals called real": m["loo_reals_called_real"], "LOKO macro F1": m["loo_mean_f1"]})
    for label, rec in (("split min", split), ("LOKO min", loo)):
        out[label] = rec and rec["timings"]["total_s"] / 60
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--validate", nargs="+", default=["split", "leave_one_out"], choices=["split", "leave_one_out"])
    ap.add_argument("--reuse", action="store_true", help="take runs already in --out instead of training them again")
    ap.add_argument("--cache-dir", help="crop cache to share (default: --out/cache/crops)")
    ap.add_argument("--out", default=str(ROOT / "bench/out/generalisation"))
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    common = {**COMMON, **({"cache_dir": a.cache_dir} if a.cache_dir else {})}
    rows, per_kind = [], []
    for name in a.recipes:
        what, params = RECIPES[name]
        recs = {}
        for validate in a.validate:
            exp = f"gen-{name}-{'loo' if validate == 'leave_one_out' else 'split'}"
            recs[validate] = run_one(exp, out, common["data"], {**params, "validate": validate},
                                     {k: v for k, v in common.items() if k != "data"}, a.reuse)
        rows.append(row(name, recs.get("split"), recs.get("leave_one_out")))
        loo_csv = out / "submissions" / f"gen-{name}-loo" / "loo_by_group.csv"
        if loo_csv.is_file():
            g = pd.read_csv(loo_csv)
            per_kind.append(g.assign(recipe=name).pivot_table(index="recipe", columns="held_out", values="auc"))
        print(f"{name}: {what}", flush=True)
    pd.set_option("display.width", 200)
    table = pd.DataFrame(rows)
    table.to_csv(out / "generalisation.csv", index=False)
    print("\n" + table.to_markdown(index=False, floatfmt=".3f"))
    if per_kind:
        print("\nheld-out AUC per kind (too-few kinds, e.g. `other`, are outside the mean and worst):")
        print(pd.concat(per_kind).to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
