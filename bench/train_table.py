"""Train every strategy on labelled folders and print the table of docs/results-training.md: val macro F1 / AUC per
strategy, per kind.

Two settings, same split seed:
  real  train on real media only, with self-blended pseudo-fakes; every fake (and the real its group holds) in val
  all   train on real + labelled fakes (pseudo-fakes still added); val holds back whole groups of both
then ``distill``: the best ``all`` model as teacher → a small ``resnet_tiny`` student, with size, speed and F1.

    python bench/train_table.py                                   # ../shared/data/dev + ../shared/data/faces
    python bench/train_table.py --data data/sample/fit --epochs 2 --settings all   # the generated sample set

Each run is train.ipynb through papermill; runs, models and notebooks go under --out (bench/out/train), not into the
project's submissions/ or EXPERIMENTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.paths import SHARED_DATA  # noqa: E402

STRATEGY_LR = {"feature_extractor": 1e-3, "fine_tune": 3e-4, "lora": 1e-3}
SETTINGS = {"real": {"train_on": "real", "self_blend": True}, "all": {"train_on": "all", "self_blend": True}}


def run_one(exp: str, out: Path, data: list[str], extra: dict, common: dict, reuse: bool = False) -> dict:
    """One train.ipynb run (or, with ``reuse``, the record of an earlier one); returns its run.json."""
    import yaml

    record = out / "submissions" / exp / "run.json"
    if reuse and record.is_file():
        print(f"{exp}: reusing {record}", flush=True)
        return json.loads(record.read_text())

    params = {"data": data, **common, **extra, "exp": exp, "out": str(out / "models" / exp)}
    pfile = out / "params" / f"{exp}.yaml"
    pfile.parent.mkdir(parents=True, exist_ok=True)
    pfile.write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "KIT_WORKDIR": str(out), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    nb = out / "notebooks" / f"{exp}.ipynb"
    nb.parent.mkdir(parents=True, exist_ok=True)
    t = time.time()
    cmd = [sys.executable, "-m", "papermill", "--log-level", "WARNING", str(ROOT / "notebooks/train.ipynb"), str(nb),
           "-f", str(pfile)]
    log = out / "logs" / f"{exp}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        rc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc:
        raise SystemExit(f"{exp} failed (rc {rc}); see {log}")
    rec = json.loads(record.read_text())
    print(f"{exp}: val F1 {rec['metrics']['macro_f1']:.3f} AUC {rec['metrics']['val_auc']} "
          f"({time.time() - t:.0f} s wall)", flush=True)
    return rec


def summary_row(setting: str, rec: dict) -> dict:
    m, t = rec["metrics"], rec["timings"]
    return {"setting": setting, "strategy": rec["strategy"], "backbone": rec["backbone"],
            "parameters": rec["parameters"], "trainable": rec.get("trainable"), "epochs_run": len(rec["history"]),
            "val_f1@0.5": m["val_f1"], "val_f1@thr": m["val_f1_at_threshold"], "threshold": m["threshold"],
            "val_auc": m["val_auc"], "train_s": t.get("train_s"), "crops_per_s": rec["speed"]["crops_per_s"]}


def kind_rows(setting: str, rec: dict) -> list[dict]:
    return [{"setting": setting, "strategy": rec["strategy"], **k} for k in rec["by_kind"]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=[str(SHARED_DATA / "dev"), str(SHARED_DATA / "faces")])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGY_LR), choices=list(STRATEGY_LR))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--no-distill", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="take runs already in --out instead of training them again")
    ap.add_argument("--out", default=str(ROOT / "bench/out/train"))
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    common = {"epochs": a.epochs, "frames": a.frames, "monitor": "val_auc", "patience": 3, "batch_size": 16,
              "val_fraction": 0.25, "cache_dir": str(out / "crops")}
    summary, kinds, best_all = [], [], None
    for setting in a.settings:
        for strategy in a.strategies:
            rec = run_one(f"{setting}-{strategy}", out, a.data,
                          {**SETTINGS[setting], "strategy": strategy, "lr": STRATEGY_LR[strategy]}, common, a.reuse)
            summary.append(summary_row(setting, rec))
            kinds += kind_rows(setting, rec)
            if setting == "all" and (best_all is None or (rec["metrics"]["val_auc"] or 0) > (best_all["metrics"]["val_auc"] or 0)):
                best_all = rec
    if best_all is not None and not a.no_distill:
        rec = run_one("all-distill", out, a.data, {**SETTINGS["all"], "strategy": "distill", "backbone": "resnet_tiny",
                                                   "teacher": best_all["model_dir"], "lr": 3e-3}, common, a.reuse)
        summary.append(summary_row("all", rec))
        kinds += kind_rows("all", rec)
        d = rec["strategy_report"]
        print(f"\ndistill: student {d['student_parameters']:,} vs teacher {d['teacher_parameters']:,} parameters "
              f"({d['parameters_saved']:.1%} fewer); {d['student_crops_per_s']:.0f} vs {d['teacher_crops_per_s']:.0f} "
              f"crops/s ({d['time_saved']:.1%} less time); teacher val {d['teacher_val']}")
    pd.set_option("display.width", 200)
    table, by_kind = pd.DataFrame(summary), pd.DataFrame(kinds)
    table.to_csv(out / "summary.csv", index=False)
    by_kind.to_csv(out / "by_kind.csv", index=False)
    print("\n" + table.to_markdown(index=False, floatfmt=".3f"))
    for setting, g in by_kind.groupby("setting", sort=False):
        files = g.groupby("kind")["files"].first()
        auc = g.pivot_table(index="kind", columns="strategy", values="auc_vs_real") if "auc_vs_real" in g else None
        acc = g.pivot_table(index="kind", columns="strategy", values="accuracy")
        print(f"\nsetting {setting}: val files per kind; AUC of each fake kind against all val reals; accuracy at "
              "each run's chosen threshold")
        table = pd.concat({**({"AUC": auc} if auc is not None else {}), "accuracy": acc}, axis=1)
        table.columns = [f"{what} {strategy}" for what, strategy in table.columns]
        print(table.assign(files=files).iloc[:, [-1, *range(len(table.columns))]].to_markdown(floatfmt=".2f"))


if __name__ == "__main__":
    main()
