"""A training run from start to finish, in the steps train.ipynb shows one cell each: build the model, load the
crops and split them, self-blend, prepare the strategy, train, validate, save the model folder and the record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import backbones, plots
from ..devices import resolve_device
from ..experiments import Run
from ..options import PrepSettings
from . import data, evaluate, export, loop, sbi
from .losses import make_loss

PROGRESS = "progress.jsonl"  # one line per epoch, written as training goes (a sweep prunes on it)


class TrainingJob:
    """One train.ipynb run: ``p`` its parameters, ``cfg`` what ``params.check_params`` resolved, ``run`` its record."""

    def __init__(self, p: dict[str, Any], cfg: dict[str, Any], run: Run):
        self.p, self.cfg, self.run, self.strategy = p, cfg, run, cfg["strategy"]
        loop.seed_everything(p["seed"])
        with run.stage("build_model"):
            self.model, self.data_cfg = backbones.create(p["backbone"], export.ID2LABEL, p["dropout"])
        self.prep = PrepSettings.from_params(p, self.strategy.crop_size(self.data_cfg["size"]))
        self.dropped = pd.DataFrame()
        self.samples: data.TrainSamples | None = None

    def describe(self) -> str:
        return (f"{type(self.model).__name__} from {self.p['backbone']}: {loop.counts(self.model)['parameters']:,} "
                f"parameters; crops {self.prep}; outputs → {self.run.dir}, model → {self.cfg['out']}")

    def load_data(self) -> pd.DataFrame:
        """Crops of every labelled file (through the crop cache) split by group; returns files and crops per kind on
        each side. Files that gave no crop are kept in ``dropped`` with the reason."""
        p = self.p
        with self.run.stage("crops"):
            crops, self.dropped = data.load_crops(self.cfg["folders"], self.prep, self.cfg["cache_dir"],
                                                  self.cfg["workers"])
        train_rows, val_rows = data.split_files(crops.files, p["val_fraction"], p["seed"], p["group_by"],
                                                p["train_on"])
        self.train_set, self.val_set = crops.subset(train_rows), crops.subset(val_rows)
        leak = set(self.train_set.files[p["group_by"]]) & set(self.val_set.files[p["group_by"]])
        if leak:
            raise RuntimeError(f"groups on both sides of the split: {sorted(leak)[:5]}")
        return data.describe_split(crops.files, train_rows, val_rows)

    def make_samples(self) -> Any:
        """The epoch samples (with dlib landmarks of the real train crops when self-blending); returns a figure of
        real / pseudo-fake / mask / difference examples, or None."""
        points, fig = None, None
        if self.p["self_blend"]:
            with self.run.stage("landmarks"):
                real = self.train_set.labels() == 0
                points = np.zeros((len(self.train_set.crops), 68, 2), np.float32)
                points[real] = data.crop_landmarks(self.train_set.crops[real], self.p["face_margin"])
            pick = np.flatnonzero(real)[np.linspace(0, real.sum() - 1, min(4, real.sum())).astype(int)]
            fig = sbi.blend_grid(self.train_set.crops[pick], points[pick], np.random.default_rng(self.p["seed"]),
                                 n=len(pick))
            fig.savefig(self.run.dir / "sbi_examples.png", dpi=100)
        self.samples = data.TrainSamples(self.train_set, list(self.p["augment"]), self.p["seed"], points,
                                         fixed_fakes=self.strategy.fixed_fakes)
        return fig

    def prepare(self) -> dict[str, int]:
        """The strategy's trainable module and its extra inputs; returns parameters and trainable parameters."""
        self.model = self.strategy.prepare(self.model)
        self.counts = loop.counts(self.model)
        with self.run.stage("extras"):
            self.extras = self.strategy.extras(self.samples, self.p["device"])
        return self.counts

    def train(self) -> tuple[pd.DataFrame, Any]:
        """Train with early stopping; returns the history and the curves figure (both saved in the run folder)."""
        p = self.p
        settings = loop.Loop(epochs=p["epochs"], batch_size=p["batch_size"], grad_accum=p["grad_accum"], lr=p["lr"],
                             weight_decay=p["weight_decay"], scheduler=p["scheduler"], monitor=p["monitor"],
                             patience=p["patience"], precision=p["precision"], device=p["device"])
        progress = self.run.dir / PROGRESS
        progress.unlink(missing_ok=True)

        def log(row: dict[str, Any]) -> None:
            with open(progress, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, default=float) + "\n")

        with self.run.stage("train"):
            self.model, self.history = loop.fit(self.model, self.samples, self.val_set, self.data_cfg, settings,
                                                make_loss(p["loss"], p["label_smoothing"], p["focal_gamma"]),
                                                self.strategy, self.extras, on_epoch=log)
        self.history.to_csv(self.run.dir / "history.csv", index=False)
        fig = evaluate.plot_curves(self.history)
        fig.savefig(self.run.dir / "curves.png", dpi=120)
        return self.history, fig

    def validate(self) -> tuple[pd.DataFrame, Any]:
        """The finalised model on val, by file: threshold chosen on val, per-kind report; returns it and a histogram."""
        self.model = self.strategy.finalize(self.model)
        with self.run.stage("validate"):
            logits = loop.predict(self.model, self.val_set.crops, self.data_cfg, resolve_device(self.p["device"]),
                                  precision=self.p["precision"])
        scores = evaluate.file_scores(self.val_set, logits)
        self.threshold, f1_at = evaluate.choose_threshold(scores)
        self.val_metrics = {**evaluate.file_metrics(scores, 0.5), "threshold": self.threshold,
                            "val_f1_at_threshold": f1_at}
        self.report = evaluate.kind_report(scores, self.threshold)
        scores.drop(columns=["path"]).to_csv(self.run.dir / "val_predictions.csv", index=False)
        self.report.to_csv(self.run.dir / "val_by_kind.csv", index=False)
        fig = plots.prob_histogram(scores.assign(label=(scores["prob_fake"] >= self.threshold).astype(int)),
                                   scores[["filename", "label"]], self.threshold)
        fig.savefig(self.run.dir / "val_prob_hist.png", dpi=120)
        return self.report, fig

    def summary(self) -> str:
        m = self.val_metrics
        return (f"val (files): macro F1 {m['val_f1']:.4f} at 0.5, {m['val_f1_at_threshold']:.4f} at the chosen "
                f"threshold {self.threshold:.3f}; AUC {m['val_auc']}")

    def save(self) -> dict[str, Any]:
        """Write the model folder, check that it reloads to the same P(fake), and write the run record."""
        p, cfg = self.p, self.cfg
        speed = loop.measure_speed(self.model, self.val_set.crops, self.data_cfg, p["device"])
        extra = self.strategy.report(self.model, self.val_set, speed, p["device"])
        training = {"exp": cfg["exp"], "strategy": p["strategy"], "backbone": p["backbone"], "threshold": self.threshold,
                    "val": self.val_metrics, "params": p, "git": self.run.record["git"], "crops": self.prep.__dict__}
        export.save(self.model, cfg["out"], self.data_cfg, training)
        crops = loop.fit_size(self.val_set.crops[:16], self.data_cfg["size"])
        max_diff = export.check_saved(cfg["out"], self.model, crops, self.data_cfg)
        if not max_diff < export.RELOAD_TOLERANCE:
            raise RuntimeError(f"the saved model does not reproduce the trained one (max |ΔP| {max_diff:.2e})")
        counts = loop.counts(self.model)
        record = self.run.finish(
            model_dir=str(cfg["out"]), backbone=p["backbone"], strategy=p["strategy"], parameters=counts["parameters"],
            trainable=self.counts["trainable"], samples=self.samples.counts(),
            data={"train": data.info(self.train_set), "val": data.info(self.val_set), "dropped": len(self.dropped)},
            history=self.history.to_dict("records"), by_kind=self.report.to_dict("records"), speed=speed,
            strategy_report=extra, metrics={"macro_f1": self.val_metrics["val_f1_at_threshold"], **self.val_metrics})
        t = self.run.record["timings"]
        print(f"model folder {cfg['out']} (reloads with max |ΔP| {max_diff:.1e}); {speed['crops_per_s']:.1f} crops/s; "
              f"train {t['train_s']:.0f} s of {t['total_s']:.0f} s; record {record}")
        return {"record": Path(record), "speed": speed, "report": extra}
