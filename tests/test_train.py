"""Training: split hygiene, strategies, the loop, the model folder it writes, and train.ipynb end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import papermill as pm
import pytest
import torch
from PIL import Image

import media_factory as mf
from conftest import make_tiny_vit
from lib import backbones, models
from lib.errors import ParameterError
from lib.paths import NOTEBOOKS
from lib.training import data as traindata
from lib.training import TRAIN, TrainOptions, evaluate, export, loop, strategies
from lib.parameters import fields_of
from lib.training.export import ID2LABEL


def _files(groups: list[str], labels: list[int], kinds: list[str] | None = None) -> pd.DataFrame:
    n = len(groups)
    return pd.DataFrame({"filename": [f"f{i}.jpg" for i in range(n)], "label": labels, "origin": groups,
                         "kind": kinds or ["k"] * n, "dataset": "d", "n_crops": 1})


def test_split_keeps_groups_whole_and_is_stratified():
    groups = [f"g{i // 2}" for i in range(40)]  # a real and its fake share a group
    files = _files(groups, [i % 2 for i in range(40)])
    tr, va = traindata.split_files(files, 0.25, seed=42)
    assert not set(files["origin"][tr]) & set(files["origin"][va])
    assert set(files["label"][va]) == {0, 1} and 0.15 < len(va) / 40 < 0.35
    tr2, va2 = traindata.split_files(files, 0.25, seed=42)
    assert (tr == tr2).all() and (va == va2).all(), "the split must be reproducible for a seed"


def test_real_only_split_sends_every_faked_group_to_val():
    groups = [f"g{i // 2}" for i in range(20)] + [f"r{i}" for i in range(20)]
    labels = [i % 2 for i in range(20)] + [0] * 20
    files = _files(groups, labels)
    tr, va = traindata.split_files(files, 0.25, seed=1, train_on="real")
    assert (files["label"][tr] == 0).all() and files["origin"][tr].str.startswith("r").all()
    assert set(np.flatnonzero(files["label"] == 1)) <= set(va), "every fake is validated"
    assert not set(files["origin"][tr]) & set(files["origin"][va])
    with pytest.raises(ParameterError, match="train_on"):
        traindata.split_files(_files([f"g{i // 2}" for i in range(20)], [i % 2 for i in range(20)]), 0.25, 1,
                              train_on="real")


def test_file_table_derives_kind_and_group(tmp_path):
    (tmp_path / "media").mkdir()
    (tmp_path / "labels.csv").write_text("filename,label,source,origin\na.mp4,0,src,a.mp4\nb.mp4,1,src,a.mp4\n"
                                         "c.jpg,0,other,\n")
    t = traindata.file_table(str(tmp_path))
    assert list(t["kind"]) == ["real-video", "src-fake", "real-photo"]
    assert t["origin"][0] == t["origin"][1] != t["origin"][2]
    assert t["path"][0].endswith("media/a.mp4")
    with pytest.raises(ParameterError, match="data"):
        traindata.dataset_paths(str(tmp_path / "missing"))


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return make_tiny_vit(tmp_path_factory.mktemp("vit"), {0: "real", 1: "fake"}, size=32)


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _model(source):
    return backbones.create(str(source), ID2LABEL)


def test_strategy_registry_names_and_a_new_strategy_in_one_class(vit):
    assert strategies.STRATEGIES.names() == ["feature_extractor", "fine_tune", "lora", "distill", "linear_probe",
                                             "trace_signals"]
    with pytest.raises(ParameterError, match="strategy=.svm.*feature_extractor, fine_tune, lora, distill, linear_probe"):
        strategies.make("svm", {})

    class HeadAndLastBlock(strategies.Strategy):  # what a user adds: one class, registered by name
        name = "head_and_last_block"

        def prepare(self, model):
            last = backbones.blocks(model)[-1]
            return strategies._set_trainable(model, lambda n: n.startswith((last + ".", "classifier.")))

    try:
        strategies.register(HeadAndLastBlock)
        model = strategies.make("head_and_last_block", {}).prepare(_model(vit)[0])
        last = backbones.blocks(model)[-1]
        assert _trainable(model) and all(n.startswith((last + ".", "classifier.")) for n in _trainable(model))
    finally:
        strategies.STRATEGIES._items.pop("head_and_last_block", None)


def test_feature_extractor_trains_only_the_head(vit):
    model, data = _model(vit)
    assert data["size"] == 32 and model.config.id2label == ID2LABEL
    model = strategies.make("feature_extractor", {}).prepare(model)
    assert _trainable(model) == {"classifier.weight", "classifier.bias"}


def test_fine_tune_freezes_the_named_blocks(vit):
    model, _ = _model(vit)
    names = backbones.blocks(model)
    assert len(names) == 2 and names[0].endswith("0") and names[1].endswith("1")  # the ViT's transformer layers
    model = strategies.make("fine_tune", {"frozen_blocks": ["stem", 0]}).prepare(model)
    trainable = _trainable(model)
    assert not any(n.startswith(("vit.embeddings", names[0] + ".")) for n in trainable)
    assert any(n.startswith(names[1] + ".") for n in trainable) and "classifier.weight" in trainable
    with pytest.raises(ParameterError, match="frozen_blocks"):
        strategies.frozen_names(model, [5])


def test_feature_extractor_keeps_batchnorm_statistics():
    model, _ = backbones.create("efficientnet_lite0", ID2LABEL)
    model = strategies.make("feature_extractor", {}).prepare(model)
    before = model.timm_model.bn1.running_mean.clone()
    model.train()
    loop.freeze_batchnorm(model)
    model(pixel_values=torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.timm_model.bn1.running_mean)


def test_fine_tune_of_efficientnet_freezes_its_stem_and_first_blocks():
    model, _ = backbones.create("efficientnet_lite0", ID2LABEL)
    model = strategies.make("fine_tune", {"frozen_blocks": ["stem", 0, 1]}).prepare(model)
    trainable = _trainable(model)
    assert not any(n.startswith(("timm_model.conv_stem", "timm_model.bn1", "timm_model.blocks.0.0.",
                                 "timm_model.blocks.1.0.")) for n in trainable)
    assert "timm_model.blocks.1.1.conv_pw.weight" in trainable and "timm_model.classifier.weight" in trainable


def _crop_set(n: int = 24, size: int = 32, seed: int = 0) -> traindata.CropSet:
    """Separable synthetic crops: fakes are brighter."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    crops = (rng.integers(0, 100, (n, size, size, 3)) + labels[:, None, None, None] * 120).astype(np.uint8)
    files = _files([f"g{i}" for i in range(n)], labels.tolist())
    return traindata.CropSet(crops, np.arange(n), files)


FINE_TUNE = strategies.make("fine_tune", {})


def _fit(model, data, epochs=3, monitor="val_auc", patience=3, lr=3e-3, on_epoch=None):
    loop.seed_everything(42)
    samples = traindata.TrainSamples(_crop_set(), [], seed=42)
    settings = loop.Loop(epochs=epochs, batch_size=8, lr=lr, monitor=monitor, patience=patience, device="cpu")
    return loop.fit(model, samples, _crop_set(12, seed=1), data, settings, torch.nn.functional.cross_entropy,
                    FINE_TUNE, on_epoch=on_epoch)


def test_fit_learns_a_separable_task_and_keeps_the_best_epoch(vit):
    model, data = _model(vit)
    model = FINE_TUNE.prepare(model)
    seen = []
    model, history = _fit(model, data, epochs=4, on_epoch=seen.append)
    assert history["val_auc"].max() > 0.9 and [r["epoch"] for r in seen] == [1, 2, 3, 4]
    best = history.loc[history["best"]].iloc[-1]
    val = _crop_set(12, seed=1)
    auc = evaluate.file_metrics(evaluate.file_scores(val, loop.predict(model, val.crops, data, torch.device("cpu"))))
    assert auc["val_auc"] == pytest.approx(best["val_auc"]), "the returned model holds the best epoch's weights"


def test_early_stopping_stops_after_patience(vit):
    model, data = _model(vit)
    model = FINE_TUNE.prepare(model)
    _, history = _fit(model, data, epochs=6, monitor="val_loss", patience=1, lr=0.5)  # diverges
    assert len(history) < 6


def test_gradient_accumulation_matches_the_bigger_batch(vit):
    def weights(batch_size, grad_accum):
        model, data = _model(vit)
        loop.seed_everything(0)
        model.classifier.reset_parameters()  # the same new head in both runs
        samples = traindata.TrainSamples(_crop_set(32), [], seed=5)
        settings = loop.Loop(epochs=1, batch_size=batch_size, grad_accum=grad_accum, lr=1e-2, device="cpu")
        model, _ = loop.fit(model, samples, _crop_set(8, seed=1), data, settings, torch.nn.functional.cross_entropy,
                            FINE_TUNE)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    # Adam moves each weight by about lr (1e-2) per update: one update more or less would differ by far more
    torch.testing.assert_close(weights(8, 2), weights(16, 1), atol=5e-4, rtol=0)


def test_lora_merges_into_a_plain_model_that_loads_like_a_hub_model(vit, tmp_path):
    model, data = _model(vit)
    lora = strategies.make("lora", {"lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0.0, "lora_targets": []})
    model = lora.prepare(model)
    trainable = _trainable(model)
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # adapters that change the output
    crops = _crop_set(8).crops
    ref = loop.predict(model, crops, data, torch.device("cpu"))
    plain = lora.finalize(model)
    assert not any("lora" in k for k in plain.state_dict())
    np.testing.assert_allclose(loop.predict(plain, crops, data, torch.device("cpu")), ref, atol=1e-4)
    out = export.save(plain, tmp_path / "m", data, {"exp": "t", "threshold": 0.4})
    assert export.check_saved(out, plain, crops, data) < 1e-5
    lm = models.load_model(str(out))
    assert lm.info["training_run"] == "t" and models.resolve_threshold("model", lm) == 0.4


def test_threshold_and_kind_report():
    scores = pd.DataFrame({"label": [0, 0, 0, 1, 1, 1], "prob_fake": [0.1, 0.2, 0.3, 0.25, 0.35, 0.4],
                           "kind": ["r", "r", "r", "a", "a", "b"]})
    thr, f1 = evaluate.choose_threshold(scores)
    assert f1 > evaluate.file_metrics(scores, 0.5)["val_f1"] and 0.3 < thr <= 0.35 or f1 == 1.0
    rep = evaluate.kind_report(scores, thr).set_index("kind")
    assert rep.loc["b", "auc_vs_real"] == 1.0 and rep.loc["r", "files"] == 3 and np.isnan(rep.loc["r", "auc_vs_real"])


def test_teacher_soft_labels_are_computed_once(vit, tmp_path, monkeypatch):
    samples = traindata.TrainSamples(_crop_set(10), ["flip"], seed=3)
    first = strategies.teacher_logits(str(vit), samples, tmp_path)
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the teacher ran again"))
    np.testing.assert_array_equal(strategies.teacher_logits(str(vit), samples, tmp_path), first)
    assert first.shape == (10, 2)


def test_distill_owns_its_parameters_inputs_and_loss(vit):
    base = {"teacher": str(vit), "distill_alpha": 0.5, "distill_temperature": 2.0}
    for over, name in (({"distill_alpha": 1.5}, "distill_alpha"), ({"distill_temperature": 0}, "distill_temperature"),
                       ({"teacher": ""}, "teacher")):
        with pytest.raises(ParameterError) as e:
            strategies.make("distill", {**base, **over})
        assert e.value.name == name
    distill = strategies.make("distill", base)
    assert distill.fixed_fakes and distill.crop_size(16) == 32  # the teacher's bigger size
    logits, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    hard = torch.nn.functional.cross_entropy
    assert torch.isclose(distill.loss(logits, y, logits, hard), 0.5 * hard(logits, y))  # KL of itself is 0
    assert FINE_TUNE.loss(logits, y, None, hard) == hard(logits, y)


TRAIN_DEFAULTS = {k: v["default"] for k, v in pm.inspect_notebook(str(NOTEBOOKS / "train.ipynb")).items()}


def _params(**over):
    import ast

    p = {k: ast.literal_eval(v) for k, v in TRAIN_DEFAULTS.items()}
    return {**p, **over}


@pytest.mark.parametrize("over, name", [({"strategy": "svm"}, "strategy"), ({"train_on": "real"}, "self_blend"),
                                        ({"strategy": "distill"}, "teacher"), ({"teacher": "x"}, "teacher"),
                                        ({"augment": ["flip", "sepia"]}, "augment"), ({"loss": "hinge"}, "loss"),
                                        ({"scheduler": "linear"}, "scheduler"), ({"epochs": 0}, "epochs"),
                                        ({"data": []}, "data"), ({"monitor": "f1"}, "monitor"),
                                        ({"file_timeout": -5}, "file_timeout")])
def test_wrong_train_parameter_is_named(over, name, tmp_path):
    (tmp_path / "labels.csv").write_text("filename,label\na.jpg,0\n")  # a fresh clone has no sample set yet
    with pytest.raises(ParameterError) as e:
        TRAIN.check(_params(**{"data": [str(tmp_path)], **over}))
    assert e.value.name == name


def test_train_options_are_typed_and_each_strategy_gets_only_its_own(tmp_path):
    (tmp_path / "labels.csv").write_text("filename,label\na.jpg,0\n")
    cfg = TRAIN.check(_params(data=[str(tmp_path)], strategy="lora", lora_rank=4, frames=6, lr=0.01))
    o = cfg["options"]
    assert isinstance(o, TrainOptions) and o.strategy == "lora" and o.lr == 0.01 and o.crop.frames == 6
    assert o.crop.crops(32).size == 32 and o.crop.crops(32).frames == 6
    assert o.strategy_options == strategies.LoraOptions(lora_rank=4) and cfg["strategy"].options is o.strategy_options
    assert strategies.own_options("feature_extractor", _params()) is None
    assert strategies.own_options("distill", _params(frozen_blocks=[0])).frozen_blocks == [0]  # distill fine-tunes
    assert {p.name for p in TRAIN.params} >= {"lora_rank", "probe_k", "teacher", "frozen_blocks"}  # flat keys
    owned = [k for n in strategies.STRATEGIES for k in strategies.option_defaults(strategies.STRATEGIES.get(n))]
    declared = [p.name for p in fields_of(TrainOptions)] + owned
    assert set(declared) <= set(TRAIN.keys)  # every option TrainOptions or a strategy declares is in the notebook


@pytest.mark.parametrize("strategy, over, users", [
    ("fine_tune", {"lora_rank": 4}, "'lora'"), ("lora", {"teacher": "x"}, "'distill'"),
    ("linear_probe", {"frozen_blocks": [0]}, "'fine_tune' and 'distill'"),
    ("feature_extractor", {"probe_k": [4]}, "'linear_probe'")])
def test_another_strategys_parameter_away_from_its_default_is_an_error(strategy, over, users, tmp_path):
    (tmp_path / "labels.csv").write_text("filename,label\na.jpg,0\n")
    name = next(iter(over))
    with pytest.raises(ParameterError, match=f"{name}=.*used only by strategy {users}, and strategy is '{strategy}'"):
        TRAIN.check(_params(data=[str(tmp_path)], strategy=strategy, **over))
    default = TRAIN[name].default
    TRAIN.check(_params(data=[str(tmp_path)], strategy=strategy, **{name: default}))  # at its default: fine


def _train_data(folder):
    """Eight face photos and two clips; each fake is its real with a tinted, blurred face, in the same group."""
    import cv2

    rows = []
    for i in range(5):
        img = mf.face_image((240 + 20 * i, 240 + 20 * i))
        img = np.clip(img.astype(int) + 8 * i, 0, 255).astype(np.uint8)
        fake = img.copy()
        h, w = fake.shape[:2]
        face = fake[h // 4:3 * h // 4, w // 4:3 * w // 4]
        fake[h // 4:3 * h // 4, w // 4:3 * w // 4] = cv2.GaussianBlur(np.clip(face * [1.1, 0.9, 0.9], 0, 255)
                                                                      .astype(np.uint8), (5, 5), 0)
        Image.fromarray(img).save(folder / f"real{i}.jpg")
        Image.fromarray(fake).save(folder / f"fake{i}.png")
        source = "photos" if i < 3 else "portraits"  # two fake sources, for leave-one-source-out
        rows += [f"real{i}.jpg,0,{source},real{i}.jpg", f"fake{i}.png,1,{source},real{i}.jpg"]
    mf.face_video(folder / "clip.mp4", n_frames=8)
    rows.append("clip.mp4,0,clips,clip.mp4")
    (folder / "labels.csv").write_text("filename,label,source,origin\n" + "\n".join(rows) + "\n")
    return folder


@pytest.mark.slow
def test_train_notebook_writes_a_model_that_infer_loads(vit, tmp_path):
    (tmp_path / "data").mkdir()
    data = _train_data(tmp_path / "data")
    work, old = tmp_path / "work", os.environ["KIT_WORKDIR"]
    os.environ["KIT_WORKDIR"] = str(work)  # the notebook kernels inherit it
    try:
        common = {"data": [str(data)], "frames": 3, "workers": 0, "cache_dir": str(work / "crops"),
                  "backbone": str(vit), "epochs": 2, "batch_size": 4, "val_fraction": 0.34, "self_blend": True}
        pm.execute_notebook(str(NOTEBOOKS / "train.ipynb"), str(tmp_path / "lora.ipynb"), progress_bar=False,
                            parameters={**common, "strategy": "lora", "exp": "lora1", "out": str(tmp_path / "m1")})
        rec = json.loads((work / "submissions" / "lora1" / "run.json").read_text())
        assert rec["kind"] == "train" and len(rec["history"]) == 2 and rec["samples"]["pseudo_fake"] > 0
        assert rec["git"] and rec["versions"]["torch"] and rec["timings"]["train_s"] > 0
        progress = [json.loads(line) for line in (work / "submissions" / "lora1" / "progress.jsonl").open()]
        assert [r["epoch"] for r in progress] == [1, 2] and {"train_loss", "val_loss", "val_f1", "val_auc"} <= set(progress[0])
        for name in ("curves.png", "sbi_examples.png", "val_predictions.csv", "val_by_kind.csv"):
            assert (work / "submissions" / "lora1" / name).is_file(), name
        assert "| lora1 |" in (work / "EXPERIMENTS.md").read_text()
        training = models.read_training(tmp_path / "m1")
        assert training["exp"] == "lora1" and 0 <= training["threshold"] <= 1

        pm.execute_notebook(str(NOTEBOOKS / "train.ipynb"), str(tmp_path / "distill.ipynb"), progress_bar=False,
                            parameters={**common, "strategy": "distill", "teacher": str(tmp_path / "m1"),
                                        "backbone": "resnet_tiny", "exp": "distill1", "out": str(tmp_path / "m2")})
        d = json.loads((work / "submissions" / "distill1" / "run.json").read_text())["strategy_report"]
        assert d["student_parameters"] < d["teacher_parameters"] or d["teacher_parameters"] < 1e6

        pm.execute_notebook(str(NOTEBOOKS / "train.ipynb"), str(tmp_path / "loo.ipynb"), progress_bar=False,
                            parameters={**common, "strategy": "fine_tune", "validate": "leave_one_out",
                                        "leave_out_by": "source", "loo_min_files": 2, "monitor": "loo_auc",
                                        "exp": "loo1", "out": str(tmp_path / "m3")})
        loo = json.loads((work / "submissions" / "loo1" / "run.json").read_text())
        assert [g["held_out"] for g in loo["leave_one_out"]["by_group"]] == ["photos", "portraits"]
        assert loo["metrics"]["loo_mean_auc"] is not None and loo["metrics"]["loo_by"] == "source"
        assert (work / "submissions" / "loo1" / "loo_by_group.csv").is_file()
        assert "loo1" in (work / "EXPERIMENTS.md").read_text() and models.read_training(tmp_path / "m3")["threshold"]

        pm.execute_notebook(str(NOTEBOOKS / "infer.ipynb"), str(tmp_path / "infer.ipynb"), progress_bar=False,
                            parameters={"data_dir": str(data), "model": str(tmp_path / "m1"), "frames": 3,
                                        "workers": 0, "threshold": "model", "exp": "inf1",
                                        "labels": str(data / "labels.csv"), "cache_dir": str(work / "crops")})
        inf = json.loads((work / "submissions" / "inf1" / "run.json").read_text())
        assert inf["model"]["training_run"] == "lora1" and inf["model"]["threshold"] == training["threshold"]
        assert len(pd.read_csv(work / "submissions" / "inf1" / "submission.csv")) == 11

        import yaml

        from lib import bundle as bundles

        task = tmp_path / "task.yaml"
        task.write_text(yaml.safe_dump({"frames": 3, "threshold": "model", "workers": 0}))
        bundle = bundles.build("k1", model=str(tmp_path / "m1"), params_file=str(task), out_root=tmp_path / "kernels")
        assert (bundle / bundles.task_parameters(bundle)["model"] / "training.json").is_file()
        assert bundles.static_problems(bundle) == [], "a trained model's bundle passes the server checks"
        assert not (bundle / "lib" / "training").exists(), "the bundle never ships training code"
    finally:
        os.environ["KIT_WORKDIR"] = old


def test_consistent_head_keeps_only_features_every_kind_agrees_on():
    from lib.training import heads

    rng = np.random.default_rng(0)
    n = 60
    y = np.r_[np.zeros(n), np.ones(n), np.ones(n)].astype(int)
    kinds = np.array(["real"] * n + ["a"] * n + ["b"] * n)
    x = rng.normal(size=(3 * n, 40))
    x[y == 1, 0] += 1.5  # every kind of fake is higher on feature 0
    x[kinds == "a", 1] += 3.0  # kind a is higher on feature 1, kind b lower: a cue of one generator
    x[kinds == "b", 1] -= 3.0
    head = heads.fit(x, y, kinds, tau=0.5)
    assert 0 in head.kept and 1 not in head.kept and head.weight[1] == 0
    assert 1 in heads.fit(x, y, kinds, tau=0.0).kept
    logit = x @ head.weight + head.bias  # the standardisation is folded into weight and bias
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, logit) > 0.8


def test_linear_probe_fits_in_one_pass_and_scores_files_like_its_regression(tmp_path):
    probe_strategy = strategies.make("linear_probe", {"probe_features": "stages", "probe_tau": 0.0, "probe_c": 1.0})
    model, data = backbones.create("efficientnet_lite0", ID2LABEL)
    data = {**data, "size": 64}  # small crops, for speed
    model = probe_strategy.prepare(model)
    assert loop.counts(model)["trainable"] == 2 * 1536 + 2
    crops = _crop_set(16, size=64)
    samples = traindata.TrainSamples(crops, [], seed=1)
    settings = loop.Loop(epochs=1, device="cpu")
    seen = []
    model, history = probe_strategy.fit(model, samples, _crop_set(8, size=64, seed=1), data, settings, None, None,
                                        on_epoch=seen.append)
    assert len(history) == 1 and seen and history.loc[0, "features"] == 2 * (24 + 40 + 80 + 112 + 192 + 320)
    x, files, extra = probe_strategy.file_features(model, samples, data, "cpu")
    assert extra is None and len(files) == len(x) == 16
    logits = loop.predict(model, crops.crops, data, torch.device("cpu"))
    assert np.allclose(logits[:, 0], 0) and np.allclose(logits[:, 1], x @ model.classifier.weight[1].detach().double().numpy()
                                                          + float(model.classifier.bias[1]), atol=1e-3)
    out = export.save(model, tmp_path / "probe", data, {"exp": "p", "threshold": 0.5})
    assert export.check_saved(out, model, crops.crops[:4], data) < 1e-5
    assert models.load_model(str(out), device="cpu").info["architecture"] == "KitProbeForImageClassification"


def test_data_patterns_stand_for_every_labelled_folder(tmp_path):
    for name in ("b", "a", "empty"):
        (tmp_path / name).mkdir()
    for name in ("a", "b"):
        (tmp_path / name / "labels.csv").write_text("filename,label\n")
    found = traindata.expand_folders([str(tmp_path / "*"), str(tmp_path / "a")])
    assert found == [str((tmp_path / "a").resolve()), str((tmp_path / "b").resolve())]  # each folder once
    with pytest.raises(ParameterError, match="none matches"):
        traindata.expand_folders([str(tmp_path / "nothing*")])
