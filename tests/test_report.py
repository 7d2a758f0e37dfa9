"""report.ipynb's library (lib/review: curves, robustness, saliency, timeline, page, report) on tiny synthetic
media and tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

import media_factory as mf
from lib import frames
from lib.errors import ParameterError
from lib.filerecord import FileRecord
from lib.models import LoadedModel, normalized
from lib.review import curves, page, report, robustness, saliency, timeline

ID2LABEL = {0: "real", 1: "fake"}


# ------------------------------------------------------------------------------------------------------- curves
def _scores(n_origins: int = 12, copies: int = 4, seed: int = 0) -> pd.DataFrame:
    """Labelled scores where each origin holds ``copies`` near-identical files (a subject's clips)."""
    rng = np.random.default_rng(seed)
    rows = []
    for o in range(n_origins):
        truth, base = o % 2, rng.normal(o % 2 * 0.8, 1.0)
        for c in range(copies):
            rows.append({"filename": f"o{o}_{c}.mp4", "truth": truth, "origin": f"o{o}",
                         "source": "a" if o < n_origins // 2 else "b", "kind": "swap" if truth else "",
                         "prob_fake": float(1 / (1 + np.exp(-(base + rng.normal(0, 0.05)))))})
    return pd.DataFrame(rows)


def test_intervals_resample_whole_origins_and_are_wider_than_by_file():
    s = _scores()
    by_origin = curves.summarize(s, 0.5, "origin", n=300)
    by_file = curves.summarize(s, 0.5, "no-such-column", n=300)
    assert by_origin.resampled_by == "origin" and by_file.resampled_by == "filename"
    auc_o, auc_f = (x.table.set_index("figure").loc["AUC"] for x in (by_origin, by_file))
    assert auc_o["value"] == pytest.approx(roc_auc_score(s["truth"], s["prob_fake"]))
    assert auc_o["low"] <= auc_o["value"] <= auc_o["high"]
    # four near-copies per subject: resampling files pretends there are four times as many subjects
    assert auc_o["high"] - auc_o["low"] > 1.3 * (auc_f["high"] - auc_f["low"])
    rec = by_origin.record()
    assert set(rec) >= {"macro F1", "AUC", "reals called real", "threshold", "level"} and rec["level"] == 0.9


def test_a_one_class_group_is_ranked_against_every_real():
    s = _scores()
    units, _ = curves.resample_units(s, "origin")
    groups = curves.group_intervals(s, 0.5, units, ("kind",), n=100).set_index("group")
    swaps = s[s["kind"] == "swap"]
    both = pd.concat([swaps, s[s["truth"] == 0]])
    assert groups.loc["swap", "AUC"] == pytest.approx(roc_auc_score(both["truth"], both["prob_fake"]))
    assert groups.loc["swap", "AUC against"] == "+ every real" and groups.loc["swap", "units"] == 6
    assert groups.loc["swap", "called right"] == pytest.approx(float((swaps["prob_fake"] >= 0.5).mean()))
    reals_a = s[(s["source"] == "a") & (s["truth"] == 0)]  # a source of reals only: ranked against every fake
    by_source = curves.group_intervals(s.assign(source=np.where(s["truth"] == 0, s["source"], "f")), 0.5, units,
                                       ("source",), n=50).set_index("group")
    both = pd.concat([reals_a, s[s["truth"] == 1]])
    assert by_source.loc["a", "AUC"] == pytest.approx(roc_auc_score(both["truth"], both["prob_fake"]))
    assert by_source.loc["a", "AUC against"] == "+ every fake"


def test_operating_point_and_figures():
    y, s = np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.6, 0.4, 0.7, 0.9])
    assert curves.operating_point(y, s, 0.5) == pytest.approx((0.5, 2 / 3, 2 / 3))
    summary = curves.summarize(_scores(), 0.5, n=20)
    assert set(summary.figures) == {"curves", "curves_by_source", "curves_by_kind", "reliability"}
    one_source = curves.summarize(_scores().assign(source="x"), 0.5, n=20)
    assert "curves_by_source" not in one_source.figures


# --------------------------------------------------------------------------------------------------- robustness
@pytest.fixture(scope="module")
def small_media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    mf.face_video(folder / "clip.mp4", n_frames=8, size=(160, 120))
    Image.fromarray(mf.face_image((200, 160))).save(folder / "photo.png")
    return folder


def test_unknown_perturbation_names_the_valid_ones():
    with pytest.raises(ParameterError, match="robustness.*jpeg90_crf23.*blur"):
        robustness.check(["jpeg90_crf23", "jpeg_95"])
    with pytest.raises(ParameterError, match="robustness"):
        robustness.check("blur")
    assert [p.name for p in robustness.check(["half", "half"])] == ["half"]


def test_perturbed_media_are_made_once_and_keyed_by_content(small_media, tmp_path):
    video, photo = small_media / "clip.mp4", small_media / "photo.png"
    strong, quarter = robustness.PERTURBATIONS["jpeg50_crf36"], robustness.PERTURBATIONS["quarter"]
    made, failed, seconds = robustness.ensure([video, photo], strong, tmp_path / "p", progress=False)
    assert not failed and seconds > 0
    assert made[video].suffix == ".mp4" and made[photo].suffix == ".jpg"
    fr = frames.read_frames(made[video], 8)
    assert len(fr.frames) == 8 and fr.frames[0].shape == (120, 160, 3)
    assert not np.array_equal(frames.read_image(made[photo]), frames.read_image(photo))  # JPEG 50 changed it
    again, _, seconds = robustness.ensure([video, photo], strong, tmp_path / "p", progress=False)
    assert again == made and seconds == 0.0  # read from the cache, nothing re-encoded
    small, _, _ = robustness.ensure([video, photo], quarter, tmp_path / "p", progress=False)
    assert frames.read_frames(small[video], 2).frames[0].shape == (30, 40, 3)
    assert frames.read_image(small[photo]).shape == (40, 50, 3) and small[photo].suffix == ".png"
    copy = tmp_path / "copy.png"
    Image.fromarray(mf.face_image((200, 161))).save(copy)
    assert robustness.perturbed_path(tmp_path / "p", copy, quarter) != small[photo]  # other content, other key


def test_a_file_that_cannot_be_perturbed_is_left_out_with_its_reason(small_media, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((small_media / "clip.mp4").read_bytes()[:300])
    made, failed, _ = robustness.ensure([broken, small_media / "photo.png"], robustness.PERTURBATIONS["blur"],
                                        tmp_path / "p", progress=False)
    assert list(made) == [small_media / "photo.png"] and "ffmpeg" in failed[broken]


def test_grid_scores_each_perturbation_under_the_original_names(small_media, tiny_vit, tmp_path):
    from lib.models import load_model
    from lib.options import InferOptions

    lm = load_model(str(tiny_vit), "cpu")
    files = [small_media / "clip.mp4", small_media / "photo.png"]
    scores = pd.DataFrame({"filename": ["clip.mp4", "photo.png"], "truth": [1, 0], "prob_fake": [0.6, 0.4],
                           "origin": ["a", "b"]})
    chosen = robustness.check(["jpeg50_crf36", "half"])
    grid, times = robustness.run_grid(scores, files, lm, InferOptions(frames=2), chosen, tmp_path / "p", 0.5,
                                      tmp_path / "crops", workers=0, n=20, progress=False)
    assert list(grid.table["perturbation"]) == ["none", "jpeg50_crf36", "half"]
    assert (grid.table["files"] == 2).all() and grid.table.loc[0, "AUC"] == 1.0
    assert sorted(grid.predictions["filename"]) == ["clip.mp4", "clip.mp4", "photo.png", "photo.png"]
    assert set(times) == {"jpeg50_crf36", "half"} and all(t["perturb_s"] > 0 for t in times.values())
    entries = list((tmp_path / "crops").glob("*/*.npz"))
    assert len(entries) == 4, "the crop cache holds each perturbed version apart"
    assert grid.record()["rows"][0]["perturbation"] == "none"


# ----------------------------------------------------------------------------------------------------- saliency
def _loaded(module: torch.nn.Module, size: int = 64) -> LoadedModel:
    from lib.backbones import imagenet_data

    return LoadedModel(module.eval(), "test", ID2LABEL, [1], imagenet_data(size), torch.device("cpu"),
                       info={"architecture": type(module).__name__})


def _crops(n: int = 2, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_probe_maps_add_up_to_the_margin_exactly():
    from lib import linear_probe as lp

    torch.manual_seed(0)
    config = lp.KitProbeConfig(stages=(4, 5, 6), num_labels=2, id2label=ID2LABEL, label2id={"real": 0, "fake": 1})
    probe = lp.KitProbeForImageClassification(config)
    torch.nn.init.normal_(probe.classifier.weight, std=0.5)
    torch.nn.init.normal_(probe.classifier.bias)
    lm, crops = _loaded(probe), _crops()
    maps = saliency.heat_maps(lm, crops)
    with torch.no_grad():
        logits = probe(pixel_values=normalized(crops, lm.data)).logits
    margin = (logits[:, 1] - logits[:, 0]).numpy()
    bias = float((probe.classifier.bias[1] - probe.classifier.bias[0]).detach())
    assert maps.method == "linear probe decomposition" and maps.maps.shape == (2, 64, 64)
    assert maps.margin == pytest.approx(margin, rel=1e-4, abs=1e-3)
    assert maps.maps.sum(axis=(1, 2)) + bias == pytest.approx(margin, rel=1e-3, abs=1e-2)
    assert "stages [4, 5, 6]" in saliency.method(lm)


def test_grad_cam_of_an_efficientnet_is_its_share_of_the_margin():
    from lib import backbones

    torch.manual_seed(0)
    model, _ = backbones.create("efficientnet_lite0", ID2LABEL)  # ImageNet weights: a random trunk maps to ~0
    head = model.timm_model.classifier
    torch.nn.init.normal_(head.weight, std=0.5)
    torch.nn.init.normal_(head.bias)
    lm, crops = _loaded(model), _crops()
    maps = saliency.heat_maps(lm, crops)
    with torch.no_grad():
        logits = model(pixel_values=normalized(crops, lm.data)).logits
    margin = (logits[:, 1] - logits[:, 0]).numpy()
    assert maps.method == "Grad-CAM" and maps.layer == "timm_model.bn2"
    bias = float((head.bias[1] - head.bias[0]).detach())
    assert maps.maps.sum(axis=(1, 2)) + bias == pytest.approx(margin, rel=1e-3, abs=1e-3)
    assert maps.maps[0].std() > 0.05 * np.abs(maps.maps[0]).max(), "a map, not a constant"


def test_a_resnet_gets_grad_cam_and_a_vit_gets_none(tiny_vit):
    from lib.models import load_model
    from transformers import AutoModelForImageClassification, ResNetConfig

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                          num_labels=2, id2label=ID2LABEL, label2id={"real": 0, "fake": 1})
    resnet = _loaded(AutoModelForImageClassification.from_config(config))
    maps = saliency.heat_maps(resnet, _crops(1))
    assert maps.method == "Grad-CAM" and "encoder.stages.1" in maps.layer
    vit = load_model(str(tiny_vit), "cpu")
    with pytest.raises(saliency.Unavailable, match="no spatial feature map"):
        saliency.heat_maps(vit, _crops(1, 32))
    assert "no spatial feature map" in saliency.method(vit)


def test_frames_that_pushed_the_call():
    p = np.array([0.2, 0.9, 0.5, 0.95, 0.1])
    assert saliency.pick_frames(p, True, 2).tolist() == [1, 3]
    assert saliency.pick_frames(p, False, 2).tolist() == [0, 4]


# ----------------------------------------------------------------------------------------------------- timeline
def test_timeline_places_frames_without_a_face_as_gaps():
    box = [0, 0, 10, 10]
    record = FileRecord("v.mp4", "video", frame_indices=[0, 10, 15], boxes=[box, None, box, box], frames_read=4,
                        count_reported=16)
    x, y, gaps = timeline.series(record, np.array([0.2, 0.8, 0.7]), frames=4)
    assert x.tolist() == [0, 5, 10, 15] and gaps.tolist() == [False, True, False, False]
    assert np.isnan(y[1]) and y[[0, 2, 3]].tolist() == [0.2, 0.8, 0.7]
    lying = record.but(count_reported=None)  # no count to redo the sampling: halfway between its neighbours
    assert timeline.read_indices(lying, 4)[0].tolist() == [0, 5, 10, 15]
    fig = timeline.figure([{"record": record, "probs": [0.2, 0.8, 0.7], "prob_fake": 0.6, "title": "v"}], 4, 0.5)
    line = fig.axes[0].lines[0]
    assert np.isnan(line.get_ydata()).sum() == 1, "the no-face frame breaks the line"


# --------------------------------------------------------------------------------------------------- page, report
def test_page_embeds_figures_and_escapes_text(tmp_path):
    import matplotlib.pyplot as plt

    p = page.Page("T <1>", "sub")
    s = p.section("one", "First")
    s.text("a <script>alert(1)</script> name").table(pd.DataFrame({"file": ["<b>x</b>"], "v": [0.12345]}))
    s.figure(plt.figure(figsize=(2, 2)), "fig")
    text = p.write(tmp_path / "r.html").read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert 'id="one"' in text and "data:image/png;base64," in text and "0.123" in text and 'href="#one"' in text


def _labelled(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(mf.face_image((96, 96))).save(folder / name)
    (folder / "labels.csv").write_text("filename,label,origin\na.png,0,x\nb.png,1,y\n")
    return folder


def _params(**over: object) -> dict:
    return {**report.REPORT.defaults, **over}


def test_report_parameters_are_checked_before_any_work(tmp_path, tiny_vit):
    data = _labelled(tmp_path / "d")
    good = _params(model=str(tiny_vit), data_dir=str(data))
    cfg = report.REPORT.check(good)
    assert cfg["options"].threshold == 0.5 and "stores none" in cfg["threshold_from"]
    assert [p.name for p in cfg["robustness"]] == list(robustness.PERTURBATIONS)
    for name, value, match in (("robustness", ["jpeg"], "robustness"), ("n_errors", -1, "n_errors"),
                               ("threshold", "model", "threshold.*stores no threshold"), ("level", 1.5, "level"),
                               ("aggregate", "mode", "aggregate"), ("run", "no-such-run", "run=")):
        with pytest.raises(ParameterError, match=match):
            report.REPORT.check({**good, name: value})
    (data / "labels.csv").unlink()
    with pytest.raises(ParameterError, match="labels.*needs labels"):
        report.REPORT.check(good)


def test_threshold_auto_reads_the_models_stored_threshold(tmp_path, tiny_vit):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_vit, model)
    (model / "training.json").write_text(json.dumps({"threshold": 0.37, "exp": "t"}))
    assert report.check_threshold("auto", str(model)) == ("model", "stored with the model by train.ipynb")
    assert report.check_threshold(0.4, str(model)) == (0.4, "given")


def test_aggregate_auto_is_how_the_model_was_trained_to_score_a_file(tmp_path, tiny_vit):
    """models/detector (trace_signals) scores a file from all its crops at once: report's default must follow it."""
    import shutil

    data = _labelled(tmp_path / "d")
    assert report.REPORT.check(_params(model=str(tiny_vit), data_dir=str(data)))["options"].aggregate == "logit_mean"
    model = tmp_path / "m"
    shutil.copytree(tiny_vit, model)
    (model / "training.json").write_text(json.dumps({"aggregate": "median", "exp": "t"}))
    assert report.REPORT.check(_params(model=str(model), data_dir=str(data)))["options"].aggregate == "median"
    assert report.REPORT.check(_params(model=str(model), data_dir=str(data), aggregate="max"))["options"].aggregate \
        == "max"


def test_chosen_files_are_the_worst_mistakes_and_the_surest_right_calls():
    s = pd.DataFrame({"filename": list("abcdef"), "truth": [0, 0, 1, 1, 0, 1],
                      "prob_fake": [0.9, 0.6, 0.1, 0.95, 0.05, 0.45]})
    c = report.chosen_files(s, 0.5, n_errors=1, n_correct=1)
    assert c[["why", "filename"]].values.tolist() == [["false positive", "a"], ["false negative", "c"],
                                                       ["correct fake", "d"], ["correct real", "e"]]
    assert c["row"].tolist() == [0, 2, 3, 4] and (c["threshold"] == 0.5).all()


def test_a_model_trained_on_the_reports_folder_is_flagged(tmp_path, tiny_vit):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_vit, model)
    (model / "training.json").write_text(json.dumps({"exp": "t", "params": {"data": [str(tmp_path / "sets" / "*")]}}))
    (tmp_path / "sets" / "dev" / "media").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    assert "trained on" in report.training_overlap(str(model), tmp_path / "sets" / "dev" / "media")
    assert "trained on" in report.training_overlap(str(model), tmp_path / "sets" / "dev")
    assert report.training_overlap(str(model), tmp_path / "other") == ""
    assert report.training_overlap(str(tiny_vit), tmp_path / "other") == ""


def test_heat_map_rows_show_the_frames_that_pushed_the_call():
    from lib import backbones

    model, _ = backbones.create("efficientnet_lite0", ID2LABEL)
    lm, crops = _loaded(model), _crops(4)
    probs = np.array([0.1, 0.9, 0.8, 0.2])
    chosen = pd.DataFrame({"row": [0, 1], "filename": ["v.mp4", "w.jpg"], "truth": [0, 1], "prob_fake": [0.7, 0.0],
                           "why": ["false positive", "false negative"], "threshold": 0.5})
    empty = (np.zeros((0, 64, 64, 3), np.uint8), np.zeros(0), np.zeros(0, int))
    rows = saliency.rows_for(lm, chosen, lambda r: (crops, probs, np.array([0, 5, 10, 15])) if r == 0 else empty, 2)
    assert rows[0]["indices"].tolist() == [5, 10] and rows[0]["maps"].shape == (2, 64, 64)
    assert "no crop" in rows[1]["title"]
    fig = saliency.figure(rows, 2)
    assert "margin" in fig.axes[2].get_title()
