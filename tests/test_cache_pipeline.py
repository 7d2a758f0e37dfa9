from __future__ import annotations

import numpy as np
import pytest

from lib import cache, checks, pipeline
from lib.errors import ParameterError
from lib.filerecord import FileRecord
from lib.options import InferOptions, PrepSettings


def test_prep_settings_reject_bad_values():
    with pytest.raises(ParameterError, match="frames=0"):
        PrepSettings(frames=0)
    with pytest.raises(ParameterError, match="no_face='blur'.*skip, center_crop, full_frame"):
        PrepSettings(no_face="blur")
    with pytest.raises(ParameterError, match="detector='yolo'"):
        PrepSettings(detector="yolo")


def test_cache_key_changes_with_content_and_settings(tmp_path):
    f = tmp_path / "a.jpg"
    f.write_bytes(b"one")
    k1 = cache.entry_key(f, PrepSettings(frames=10))
    assert k1 == cache.entry_key(f, PrepSettings(frames=10))
    assert k1 != cache.entry_key(f, PrepSettings(frames=11))
    f.write_bytes(b"two")
    assert k1 != cache.entry_key(f, PrepSettings(frames=10))


def test_cache_roundtrip(tmp_path):
    record = FileRecord("a.mp4", "video", n_crops=2, faces_found=2, note="ok", boxes=[[0, 0, 4, 4], None])
    entry = cache.CropEntry(np.full((2, 8, 8, 3), 7, np.uint8), record)
    cache.save(tmp_path, "ab" * 32, entry)
    assert cache.load_record(tmp_path, "ab" * 32) == record
    np.testing.assert_array_equal(cache.load(tmp_path, "ab" * 32).crops, entry.crops)
    assert cache.load_record(tmp_path, "cd" * 32) is None


def test_a_cache_entry_written_before_the_record_type_still_reads(tmp_path):
    """Entries hold the record as JSON; older entries (a plain dict with the same keys) read as records."""
    import json

    dest = cache.entry_path(tmp_path, "ef" * 32)
    dest.parent.mkdir(parents=True)
    meta = {"filename": "b.jpg", "kind": "image", "frames_read": 1, "faces_found": 1, "frame_indices": [0],
            "error": "", "note": "", "detect_s": 0.01, "boxes": [[1, 2, 3, 4]], "detections": 1,
            "frame_shape": [10, 10], "count_reported": None, "decode_s": 0.0, "n_crops": 1}
    np.savez(dest, crops=np.zeros((1, 4, 4, 3), np.uint8), meta=np.array(json.dumps(meta)))
    record = cache.load_record(tmp_path, "ef" * 32)
    assert record.filename == "b.jpg" and record.has_crops is False and record.n_crops == 1


def test_batches_are_fixed_size_and_keep_owners():
    stream = [(0, np.zeros((5, 1))), (1, np.ones((2, 1))), (2, np.full((6, 1), 2.0))]
    out = list(pipeline._batches(iter(stream), 4))
    assert [len(b) for b, _ in out] == [4, 4, 4, 1]
    owners = [o for _, os_ in out for o in os_]
    counts = {}
    for owner, n in owners:
        counts[owner] = counts.get(owner, 0) + n
    assert counts == {0: 5, 1: 2, 2: 6}
    flat = np.concatenate([b for b, _ in out]).ravel()
    np.testing.assert_array_equal(flat, [0] * 5 + [1] * 2 + [2] * 6)


def test_file_predictions_fallbacks():
    metas = [
        FileRecord("ok.mp4", "video", frames_read=4, faces_found=4, n_crops=4, key="k"),
        FileRecord("partial.mp4", "video", frames_read=4, faces_found=3, n_crops=3, key="k"),
        FileRecord("noface.jpg", "image", frames_read=1, faces_found=0, n_crops=0, key="k"),
        FileRecord("broken.mp4", "video", key="k", error="zero-byte file"),
    ]
    probs = {0: np.array([0.9, 0.8, 0.7, 0.6]), 1: np.array([0.1, 0.2, 0.3])}
    df = pipeline.file_predictions(metas, probs, "mean", 0.5, fallback_prob=0.25, no_face="skip")
    assert df["label"].tolist() == [1, 0, 0, 0]
    assert df["prob_fake"].tolist() == pytest.approx([0.75, 0.2, 0.25, 0.25])
    assert df["fallback"].tolist() == ["", "no_face:skip", "fallback_prob", "fallback_prob"]
    assert df.loc[3, "reason"] == "zero-byte file" and "no face in any of 1" in df.loc[2, "reason"]
    summary = pipeline.summarize(df)
    assert summary["fallback_files"] == 3 and summary["fallbacks"]["fallback_prob"] == 2


def test_workers_parameter():
    assert checks.workers(-1) >= 1
    assert checks.workers(0) == 0
    with pytest.raises(ParameterError, match="workers=-3"):
        checks.workers(-3)


def _face_files(folder):
    from PIL import Image

    import media_factory as mf

    folder.mkdir()
    mf.face_video(folder / "a.mp4", n_frames=6)
    Image.fromarray(mf.face_image()).save(folder / "b.jpg")
    mf.face_video(folder / "c.mp4", n_frames=6, size=(400, 300))
    (folder / "d.mp4").write_bytes(b"")
    return sorted(folder.iterdir())


def test_infer_files_overlapped_and_without_cache_gives_the_same_answer(tmp_path, tiny_vit):
    from lib import models

    files = _face_files(tmp_path / "data")
    lm = models.load_model(str(tiny_vit), device="cpu")
    prep = PrepSettings(frames=3, size=lm.size)
    kept = pipeline.infer_files(files, lm, prep, "flip", 4, tmp_path / "c1", workers=0, progress=False)
    streamed = pipeline.infer_files(files, lm, prep, "flip", 4, tmp_path / "c2", workers=1, keep_cache=False, ahead=1,
                                    progress=False)
    assert [r.filename for r in streamed[0]] == [f.name for f in files]
    assert sorted(kept[1]) == sorted(streamed[1]) == [0, 1, 2]
    for i in kept[1]:
        np.testing.assert_allclose(kept[1][i], streamed[1][i], atol=1e-6)
    assert list((tmp_path / "c2").rglob("*.npz")) == [], "keep_cache=False leaves no crops on disk"
    assert len(list((tmp_path / "c1").rglob("*.npz"))) == 4  # the unreadable file's entry holds its reason
    times = streamed[2]
    assert times["model_s"] > 0 and times["cache_misses"] == 4 and times["cache_peak_bytes"] > 0


def test_detect_every_changes_the_cache_key_but_not_the_default():
    assert PrepSettings().key_text() == PrepSettings(detect_every=1).key_text()
    assert "detect_every" not in PrepSettings().key_text() and "detect_every" in PrepSettings(detect_every=4).key_text()
    with pytest.raises(ParameterError, match="detect_every=0"):
        PrepSettings(detect_every=0)


def test_predict_files_is_infer_files_plus_file_predictions(tmp_path, tiny_vit):
    """The one road (lib.predict) gives what its two steps give, with the threshold and fallbacks of the options."""
    from lib import models, predict

    files = _face_files(tmp_path / "data")
    lm = models.load_model(str(tiny_vit), device="cpu")
    opts = InferOptions(frames=3, tta="flip", batch_size=4, threshold=0.4, fallback_prob=0.3)
    pred = predict.predict_folder(tmp_path / "data", lm, opts, tmp_path / "out", tmp_path / "c", workers=0,
                                  progress=False)
    records, probs, _ = pipeline.infer_files(files, lm, opts.crops(lm.size), "flip", 4, tmp_path / "c2", 0,
                                             progress=False)
    table = pipeline.file_predictions(records, probs, "mean", 0.4, 0.3, "skip")
    assert pred.table.equals(table) and pred.threshold == 0.4
    assert (tmp_path / "out" / "submission.csv").is_file() and (tmp_path / "out" / "predictions.csv").is_file()
    assert pred.table.loc[pred.table["filename"] == "d.mp4", "prob_fake"].item() == 0.3


def test_infer_options_check_themselves():
    with pytest.raises(ParameterError, match="tta='flop'"):
        InferOptions(tta="flop")
    with pytest.raises(ParameterError, match="threshold=2"):
        InferOptions(threshold=2)
    assert InferOptions(threshold="model").threshold == "model"
    assert InferOptions.from_params({"frames": 8, "tta": "flip", "unrelated": 1}).crops(64) == PrepSettings(frames=8,
                                                                                                            size=64)


def test_one_file_at_a_time_from_the_terminal(tmp_path, tiny_vit, capsys):
    """python -m lib.predict: the infer road for a few files, one printed line each, crops saved on request."""
    from lib import predict

    files = _face_files(tmp_path / "data")
    predict.main([str(files[0]), str(files[3]), "--model", str(tiny_vit), "--frames", "3", "--tta", "flip",
                  "--cache-dir", str(tmp_path / "c"), "--save-crops", str(tmp_path / "crops"), "--device", "cpu"])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[1].lstrip().startswith("a.mp4") and "fallback_prob" in out[2]
    assert len(list((tmp_path / "crops" / "a").glob("*.png"))) == 3
    table = predict.predict_paths([files[1]], str(tiny_vit), cache_dir=tmp_path / "c", device="cpu", frames=3)
    assert table["filename"].tolist() == ["b.jpg"] and 0 <= table["prob_fake"].item() <= 1
    with pytest.raises(ParameterError, match="files="):
        predict.predict_paths([tmp_path / "nope.jpg"], str(tiny_vit))
