"""Smoke tests on the real dev set (../shared/data/dev); skipped when it is absent."""

from __future__ import annotations

import pandas as pd

from lib import pipeline
from lib.cache import PrepSettings


def test_real_videos_and_photos_give_face_crops(shared_dev, tmp_path):
    labels = pd.read_csv(shared_dev / "labels.csv")
    names = [labels.loc[labels["source"] == s, "filename"].iloc[0] for s in labels["source"].unique()]
    metas = pipeline.preprocess([shared_dev / "media" / n for n in names], PrepSettings(frames=4, size=64),
                                tmp_path, workers=0, progress=False)
    for m in metas:
        assert not m["error"], m
        assert m["faces_found"] >= m["frames_read"] - 1 and m["n_crops"] >= 1, m
