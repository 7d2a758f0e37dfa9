from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from lib import metrics, submission
from lib.errors import ParameterError


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for name in ("a.jpg", "b.mp4", "진짜 사진.png"):
        (d / name).write_bytes(b"x")
    (d / "notes.txt").write_text("not media")
    return d


def test_valid_submission(folder, tmp_path):
    preds = pd.DataFrame({"filename": ["a.jpg", "b.mp4", "진짜 사진.png"], "label": [0, 1, 1]})
    path = submission.write_submission(preds, tmp_path / "submission.csv")
    assert submission.submission_problems(path, folder) == []
    assert path.read_text().splitlines()[0] == "filename,label"


def test_invalid_submissions_listed(folder, tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame({"filename": ["a.jpg", "a.jpg", "c", "b.mp4"], "label": [0, 1, 2, 1]}).to_csv(path, index=False)
    problems = "\n".join(submission.submission_problems(path, folder))
    assert "more than once" in problems and "no row" in problems and "name no media" in problems
    assert "bare names with an extension" in problems and "not the integers 0/1" in problems
    with pytest.raises(ValueError, match="invalid submission"):
        submission.check_submission(path, folder)
    pd.DataFrame({"file": ["a.jpg"], "label": [0]}).to_csv(path, index=False)
    assert "columns" in submission.submission_problems(path, folder)[0]


def test_macro_f1_and_confusion():
    y, p = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    assert metrics.macro_f1(y, p) == pytest.approx((2 / 3 + 0.8) / 2)
    assert metrics.confusion(y, p) == [[1, 1], [0, 2]]


def test_evaluate_per_source_and_inversion_warning():
    labels = pd.DataFrame({"filename": list("abcdef"), "label": [0, 0, 0, 1, 1, 1],
                           "source": ["x", "x", "y", "y", "x", "y"]})
    good = pd.DataFrame({"filename": list("abcdef"), "label": [0, 0, 0, 1, 1, 1], "prob_fake": [.1, .2, .3, .7, .8, .9]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = metrics.evaluate(good, labels)
    assert m["macro_f1"] == 1.0 and set(m["per_source"]) == {"x", "y"} and not m["labels_look_inverted"]
    bad = good.assign(label=1 - good["label"], prob_fake=1 - good["prob_fake"])
    with pytest.warns(UserWarning, match="LABELS LOOK INVERTED"):
        m = metrics.evaluate(bad, labels)
    assert m["labels_look_inverted"] and m["flipped_macro_f1"] == 1.0
    assert len(metrics.per_source_table(m)) == 2


def test_read_labels_errors(tmp_path):
    with pytest.raises(ParameterError, match="labels="):
        metrics.read_labels(tmp_path / "none.csv")
    p = tmp_path / "l.csv"
    p.write_text("filename,label\na.jpg,fake\n")
    with pytest.raises(ParameterError, match="labels 0"):
        metrics.read_labels(p)
