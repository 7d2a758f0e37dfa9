"""Error analysis: the most confident mistakes, the per-group table, the reliability diagram, the saved files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.review import analysis


def _scores() -> pd.DataFrame:
    return pd.DataFrame({"filename": [f"f{i}.jpg" for i in range(8)],
                         "truth": [0, 0, 0, 0, 1, 1, 1, 1],
                         "prob_fake": [0.1, 0.9, 0.6, 0.2, 0.8, 0.3, 0.05, 0.7],
                         "kind": ["real-photo"] * 4 + ["faceswap", "faceswap", "lipsync", "lipsync"],
                         "source": ["a", "a", "b", "b", "a", "a", "b", "b"]})


def test_confident_errors_are_the_surest_mistakes_first():
    errors = analysis.confident_errors(_scores(), 0.5, n=1)
    assert errors[["filename", "error"]].values.tolist() == [["f1.jpg", "false positive"], ["f6.jpg", "false negative"]]
    assert errors["row"].tolist() == [1, 6]
    assert len(analysis.confident_errors(_scores(), 0.5, n=5)) == 4  # 2 false positives, 2 false negatives


def test_group_table_ranks_a_fake_kind_against_every_real():
    table = analysis.group_table(_scores(), 0.5).set_index(["by", "group"])
    lipsync = table.loc[("kind", "lipsync")]
    assert lipsync["files"] == 2 and lipsync["fakes_called_fake"] == 0.5
    assert lipsync["auc"] == pytest.approx(0.375)  # 0.7 beats 3 of the 4 reals, 0.05 beats none
    assert table.loc[("kind", "real-photo"), "reals_called_real"] == 0.5
    assert table.loc[("source", "b"), "auc"] == pytest.approx(0.5)


def test_analyse_draws_every_mistake_and_saves_its_files(tmp_path):
    crops = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    seen = []

    def crops_of(row):
        seen.append(row)
        return crops, np.array([0.1, 0.5, 0.9])

    result = analysis.analyse(_scores(), 0.5, crops_of, n=2)
    assert sorted(seen) == [1, 2, 5, 6] and set(result.figures) == {"error_crops", "reliability"}
    written = result.save(tmp_path)
    assert all((tmp_path / f).is_file() for f in written.values())
    assert pd.read_csv(tmp_path / written["errors"])["error"].value_counts().to_dict() == {"false positive": 2,
                                                                                          "false negative": 2}
