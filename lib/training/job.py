"""A training run from start to finish, in the steps train.ipynb shows one cell each: build the model, load the
crops (and split them, or make the leave-one-out folds), self-blend, prepare the strategy, train, validate, save the
model folder and the record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import backbones
from ..experiments import Run
from ..metrics import auc, bootstrap
from ..progress import tqdm
from ..review import analysis, plots
from . import data, evaluate, export, loop, sbi, validation
from .losses import make_loss

PROGRESS = "progress.jsonl"  # one line per epoch, written as training goes (a sweep prunes on it)


class TrainingJob:
    """One train.ipynb run: ``p`` its parameters (as recorded), ``cfg`` what ``TRAIN.check`` resolved (``options``: the
    typed ``TrainOptions`` the run reads, ``o``), ``run`` its record.

    ``validate="split"``: one model, early stopping and threshold on a held-back share of the groups.
    ``validate="leave_one_out"``: one model per held-out fake kind (or source) scores files of a generator it never
    saw (``lib.training.validation``); the threshold comes from those held-out scores, and the final model trains
    on every file (for the epochs the folds chose with ``monitor="loo_auc"``, else ``epochs``)."""

    def __init__(self, p: dict[str, Any], cfg: dict[str, Any], run: Run):
        self.p, self.o, self.cfg, self.run, self.strategy = p, cfg["options"], cfg, run, cfg["strategy"]
        self.loo = self.o.validate == "leave_one_out"
        loop.seed_everything(self.o.seed)
        with run.stage("build_model"):
            self.model, self.data_cfg = self._new_model()
        self.prep = self.o.crop.crops(self.strategy.crop_size(self.data_cfg["size"]))
        self.strategy.configure(self.prep, self.data_cfg)
        self.dropped, self.points, self.loo_table, self.loo_summary = pd.DataFrame(), None, None, None
        self.analysis_files: dict[str, str] | None = None
        self.samples: data.TrainSamples | None = None

    def _new_model(self) -> tuple[Any, dict[str, Any]]:
        return backbones.create(self.o.backbone, export.ID2LABEL, self.o.dropout)

    def describe(self) -> str:
        return (f"{type(self.model).__name__} from {self.o.backbone}: {loop.counts(self.model)['parameters']:,} "
                f"parameters; crops {self.prep}; validate {self.o.validate}; outputs → {self.run.path}, model → "
                f"{self.cfg['out']}")

    def load_data(self) -> pd.DataFrame:
        """Crops of every labelled file (through the crop cache), split by group or dealt into leave-one-out folds;
        returns the split (files and crops per kind on each side) or the folds. Files that gave no crop are kept in
        ``dropped`` with the reason."""
        o = self.o
        with self.run.stage("crops"):  # worker processes here, or a cluster (cluster): lib.engines
            self.crops, self.dropped = data.load_crops(self.cfg["folders"], self.prep, self.cfg["cache_dir"],
                                                       self.cfg["workers"], o.box_reuse, self.cfg["cluster"],
                                                       self.cfg["file_timeout"])
        if o.box_reuse:
            print(f"box reuse: {self.crops.box_reuse}")
        if self.loo:
            self.folds = validation.folds(self.crops.files, o.leave_out_by, o.loo_min_files)
            self.train_rows, self.val_set = self._train_side(np.arange(len(self.crops.files))), None
            self.train_set = self.crops.subset(self.train_rows)
            return validation.describe(self.folds, self.crops.files)
        train_rows, val_rows = data.split_files(self.crops.files, o.val_fraction, o.seed, o.group_by, o.train_on)
        self.train_rows = train_rows
        self.train_set, self.val_set = self.crops.subset(train_rows), self.crops.subset(val_rows)
        leak = set(self.train_set.files[o.group_by]) & set(self.val_set.files[o.group_by])
        if leak:
            raise RuntimeError(f"groups on both sides of the split: {sorted(leak)[:5]}")
        return data.describe_split(self.crops.files, train_rows, val_rows)

    def _train_side(self, rows: np.ndarray) -> np.ndarray:
        """The files of ``rows`` that train (``train_on="real"``: the real ones)."""
        if self.o.train_on == "real":
            rows = rows[self.crops.files["label"].to_numpy()[rows] == 0]
        return rows

    def make_samples(self) -> Any:
        """dlib landmarks of every real crop when self-blending (once, for every fold) and the epoch samples; returns
        a figure of real / pseudo-fake / mask / difference examples, or None."""
        fig = None
        if self.o.self_blend:
            with self.run.stage("landmarks"):
                real = (self.crops.labels() == 0) & np.isin(self.crops.file_index, self.train_rows)
                self.points = np.zeros((len(self.crops.crops), 68, 2), np.float32)
                self.points[real] = data.crop_landmarks(self.crops.crops[real], self.o.crop.face_margin)
            pick = np.flatnonzero(real)[np.linspace(0, real.sum() - 1, min(4, real.sum())).astype(int)]
            fig = sbi.blend_grid(self.crops.crops[pick], self.points[pick], np.random.default_rng(self.o.seed),
                                 n=len(pick))
            fig.savefig(self.run.dir / "sbi_examples.png", dpi=100)
        self.samples = self._samples(self.train_rows)
        return fig

    def _samples(self, rows: np.ndarray) -> data.TrainSamples:
        """The epoch samples of the files ``rows``, with the landmarks of their crops when self-blending."""
        keep = np.isin(self.crops.file_index, rows)  # the subset's crops, in the subset's order
        points = self.points[keep] if self.points is not None else None
        return data.TrainSamples(self.crops.subset(rows), list(self.o.augment), self.o.seed, points,
                                 fixed_fakes=self.strategy.fixed_fakes)

    def prepare(self) -> dict[str, int]:
        """The strategy's trainable module and its extra inputs; returns parameters and trainable parameters."""
        self.model = self.strategy.prepare(self.model)
        self.counts = loop.counts(self.model)
        with self.run.stage("extras"):
            self.extras = self.strategy.extras(self.samples, self.o.device)
        return self.counts

    def _settings(self, epochs: int, keep: str) -> loop.Loop:
        o = self.o
        return loop.Loop(epochs=epochs, batch_size=o.batch_size, grad_accum=o.grad_accum, lr=o.lr,
                         weight_decay=o.weight_decay, scheduler=o.scheduler, monitor=o.monitor, patience=o.patience,
                         precision=o.precision, device=o.device, keep=keep)

    def _loss(self) -> Callable:
        return make_loss(self.o.loss, self.o.label_smoothing, self.o.focal_gamma)

    def train(self) -> tuple[pd.DataFrame, Any]:
        """Train (after the leave-one-out folds, when asked); returns the history and the curves figure (both saved)."""
        progress = self.run.dir / PROGRESS
        progress.unlink(missing_ok=True)

        def log(row: dict[str, Any]) -> None:
            with open(progress, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, default=float) + "\n")

        epochs = self.o.epochs
        if self.loo:
            with self.run.stage("leave_one_out"):
                epochs = self._run_folds()
        with self.run.stage("train"):
            self.model, self.history = self.strategy.fit(
                self.model, self.samples, self.val_set, self.data_cfg,
                self._settings(epochs, "last" if self.loo else "best"), self._loss(), self.extras, on_epoch=log)
        self.history.to_csv(self.run.dir / "history.csv", index=False)
        fig = evaluate.plot_curves(self.history if not self.loo else self.fold_history)
        fig.savefig(self.run.dir / "curves.png", dpi=120)
        return self.history, fig

    def _run_folds(self) -> int:
        """Train and score every leave-one-out fold; keeps each fold's held-out scores; returns the final epochs."""
        o = self.o
        epochs = o.loo_epochs or o.epochs
        self.fold_scores, histories, self.parts = [], [], []
        with tqdm(total=len(self.folds) * epochs, desc="leave-one-out (folds × epochs)", unit="epoch") as bar:
            for fold in self.folds:
                bar.set_postfix(held_out=fold.name)
                scores, history = self._run_fold(fold, epochs, lambda row: bar.update())
                self.fold_scores.append(scores)
                histories.append(history.assign(held_out=fold.name))
        self.fold_history = pd.concat(histories, ignore_index=True)
        self.fold_history.to_csv(self.run.dir / "loo_history.csv", index=False)
        if o.monitor != "loo_auc":
            return o.epochs
        counted = self.fold_history[~self.fold_history["held_out"].isin([f.name for f in self.folds if f.too_few])]
        by_epoch = counted.groupby("epoch")["val_auc"].mean()
        print(f"leave-one-out mean AUC by epoch: {by_epoch.round(4).to_dict()} → final model: {by_epoch.idxmax()} epochs")
        return int(by_epoch.idxmax())

    def _run_fold(self, fold: validation.Fold, epochs: int, tick: Callable) -> tuple[np.ndarray, pd.DataFrame]:
        """A fresh model trained on the fold's training files; returns its scores of the held-out files by file."""
        model, data_cfg = self._new_model()
        model = self.strategy.prepare(model)
        samples = self._samples(self._train_side(fold.train))
        held_out = self.crops.subset(fold.test)
        extras = self.strategy.extras(samples, self.o.device)
        model, history = self.strategy.fit(model, samples, held_out, data_cfg, self._settings(epochs, "last"),
                                           self._loss(), extras, on_epoch=tick)
        model = self.strategy.finalize(model)
        crop_probs, scores = self.strategy.score(model, held_out, data_cfg, self.o.device, self.o.precision)
        self.parts.append((held_out, crop_probs))
        return scores["prob_fake"].to_numpy(), history

    def validate(self) -> tuple[pd.DataFrame, Any]:
        """Scores by file: the finalised model on val (split), or every fold's held-out files (leave-one-out); the
        threshold is chosen on those scores; returns the per-kind (per held-out group) report and a histogram."""
        self.model = self.strategy.finalize(self.model)
        scores = self._loo_scores() if self.loo else self._val_scores()
        self.threshold, f1_at = evaluate.choose_threshold(scores, self.o.threshold_rule, self.o.threshold_reals)
        self.val_metrics = {**evaluate.file_metrics(scores, 0.5), "threshold": self.threshold,
                            "val_f1_at_threshold": f1_at}
        if not self.loo:  # the val AUC's interval, origins resampled
            ci = bootstrap(scores["label"].to_numpy(), scores["prob_fake"].to_numpy(),
                           scores["origin"].astype(str).to_numpy(), auc, validation.BOOTSTRAP, validation.LEVEL)
            self.val_metrics.update(val_auc_low=ci.low, val_auc_high=ci.high)
        self.report = evaluate.kind_report(scores, self.threshold)
        self.scores = scores
        scores.drop(columns=["path"]).to_csv(self.run.dir / "val_predictions.csv", index=False)
        self.report.to_csv(self.run.dir / "val_by_kind.csv", index=False)
        fig = plots.prob_histogram(scores.assign(label=(scores["prob_fake"] >= self.threshold).astype(int)),
                                   scores[["filename", "label"]], self.threshold)
        fig.savefig(self.run.dir / "val_prob_hist.png", dpi=120)
        return (self.loo_table if self.loo else self.report), fig

    def _val_scores(self) -> pd.DataFrame:
        with self.run.stage("validate"):
            crop_probs, scores = self.strategy.score(self.model, self.val_set, self.data_cfg, self.o.device,
                                                     self.o.precision)
        self.parts = [(self.val_set, crop_probs)]
        return scores

    def _loo_scores(self) -> pd.DataFrame:
        """Every fold's held-out files with their scores (a real held out by two folds appears twice)."""
        files = self.crops.files
        self.loo_table, self.loo_summary = validation.evaluate(self.folds, self.fold_scores, files,
                                                               self.o.threshold_rule, self.o.threshold_reals)
        self.loo_table.to_csv(self.run.dir / "loo_by_group.csv", index=False)
        self.loo_rules = validation.rule_table(self.folds, self.fold_scores, files, self.o.threshold_reals)
        self.loo_rules.to_csv(self.run.dir / "loo_threshold_rules.csv", index=False)
        return pd.concat([files.iloc[f.test].assign(prob_fake=s, held_out=f.name)
                          for f, s in zip(self.folds, self.fold_scores)], ignore_index=True)

    def error_analysis(self, n: int = 6) -> analysis.Analysis:
        """The most confident mistakes among the validation (or held-out) files with their crops and per-crop
        P(fake), figures by source and kind, a reliability diagram; saved in the run folder."""
        offsets = np.cumsum([0] + [len(part.files) for part, _ in self.parts])

        def crops_of(row: int) -> tuple[np.ndarray, np.ndarray]:
            i = int(np.searchsorted(offsets, row, side="right") - 1)
            part, probs = self.parts[i]
            keep = part.file_index == row - offsets[i]
            return part.crops[keep], probs[keep]

        scores = self.scores.rename(columns={"label": "truth"})
        result = analysis.analyse(scores, self.threshold, crops_of, n)
        self.analysis_files = result.save(self.run.dir)
        return result

    def summary(self) -> str:
        m = self.val_metrics
        if not self.loo:
            return (f"val (files): macro F1 {m['val_f1']:.4f} at 0.5, {m['val_f1_at_threshold']:.4f} at the chosen "
                    f"threshold {self.threshold:.3f}; AUC {validation.interval_text(m, 'val_auc', 4)} (90 % interval, "
                    f"origins resampled)")
        s, text = self.loo_summary, validation.interval_text
        merged = "; ".join(f"{k} = {len(v)} generators" for k, v in s["merged"].items())
        rules = ", ".join(f"{r.rule} {r.macro_f1:.3f} (reals called real {r.reals_called_real:.2f})"
                          for r in self.loo_rules.itertuples())
        return (f"leave-one-{self.o.leave_out_by}-out over {s['counted']} groups (too few fakes: "
                f"{s['too_few'] or 'none'}{'; merged small sources: ' + merged if merged else ''}): mean AUC "
                f"{text(s, 'mean_auc', 4)}, worst {text(s, 'worst_auc', 4)} ({s['worst']}), within media "
                f"{s['mean_auc_within_media']:.4f}; macro F1 {text(s, 'mean_f1', 4)} and reals called real "
                f"{text(s, 'reals_called_real')} at thresholds chosen on the other folds ({self.o.threshold_rule}); "
                f"90 % intervals, origins resampled. Macro F1 by threshold rule: {rules}. Final threshold "
                f"{self.threshold:.3f}")

    def _metrics(self) -> dict[str, Any]:
        m = {"macro_f1": self.val_metrics["val_f1_at_threshold"], **self.val_metrics}
        if self.loo:
            s = self.loo_summary
            m.update(macro_f1=s["mean_f1"], loo_mean_auc=s["mean_auc"], loo_worst_auc=s["worst_auc"],
                     loo_worst=s["worst"], loo_mean_f1=s["mean_f1"], loo_reals_called_real=s["reals_called_real"],
                     loo_mean_auc_within_media=s["mean_auc_within_media"], loo_by=self.o.leave_out_by,
                     **{f"loo_{k}": s.get(k) for k in ("mean_auc_low", "mean_auc_high", "worst_auc_low",
                                                       "worst_auc_high", "mean_f1_low", "mean_f1_high",
                                                       "reals_called_real_low", "reals_called_real_high")},
                     loo_merged=s["merged"], loo_rules=self.loo_rules.to_dict("records"))
        return m

    def save(self) -> dict[str, Any]:
        """Write the model folder, check that it reloads to the same P(fake), and write the run record."""
        o, cfg = self.o, self.cfg
        check_crops = self.val_set.crops if self.val_set is not None else self.crops.crops[:64]
        speed = loop.measure_speed(self.model, check_crops, self.data_cfg, o.device)
        extra = self.strategy.report(self.model, self.val_set, speed, o.device)
        training = {"exp": cfg["exp"], "strategy": o.strategy, "backbone": o.backbone, "threshold": self.threshold,
                    "aggregate": self.strategy.aggregate,
                    "val": self._metrics(), "params": self.p, "git": self.run.record["git"], "crops": self.prep.__dict__}
        export.save(self.model, cfg["out"], self.data_cfg, training)
        max_diff = export.check_saved(cfg["out"], self.model, loop.fit_size(check_crops[:16], self.data_cfg["size"]),
                                      self.data_cfg)
        if not max_diff < export.RELOAD_TOLERANCE:
            raise RuntimeError(f"the saved model does not reproduce the trained one (max |ΔP| {max_diff:.2e})")
        record = self.run.finish(
            model_dir=str(cfg["out"]), backbone=o.backbone, strategy=o.strategy,
            parameters=loop.counts(self.model)["parameters"], trainable=self.counts["trainable"],
            samples=self.samples.counts(), data=self._data_info(), history=self.history.to_dict("records"),
            by_kind=self.report.to_dict("records"), speed=speed, strategy_report=extra, metrics=self._metrics(),
            analysis=self.analysis_files,
            leave_one_out=({"summary": self.loo_summary, "by_group": self.loo_table.to_dict("records")}
                           if self.loo else None))
        t = self.run.record["timings"]
        print(f"model folder {cfg['out']} (reloads with max |ΔP| {max_diff:.1e}); {speed['crops_per_s']:.1f} crops/s; "
              f"train {t['train_s']:.0f} s of {t['total_s']:.0f} s; record {record}")
        return {"record": Path(record), "speed": speed, "report": extra}

    def _data_info(self) -> dict[str, Any]:
        out = {"train": data.info(self.train_set), "dropped": len(self.dropped), "box_reuse": self.crops.box_reuse}
        if self.val_set is not None:
            out["val"] = data.info(self.val_set)
        return out
