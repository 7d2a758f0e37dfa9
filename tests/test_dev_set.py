"""Smoke tests on the real dev set (../shared/data/dev); skipped when it is absent."""

from __future__ import annotations

import pandas as pd

from lib import pipeline
from lib.options import PrepSettings


def test_real_videos_and_photos_give_face_crops(shared_dev, tmp_path):
    labels = pd.read_csv(shared_dev / "labels.csv")
    names = [labels.loc[labels["source"] == s, "filename"].iloc[0] for s in labels["source"].unique()]
    metas = pipeline.preprocess([shared_dev / "media" / n for n in names], PrepSettings(frames=4, size=64),
                                tmp_path, workers=0, progress=False)
    for r in metas:
        assert not r.error, r
        assert r.faces_found >= r.frames_read - 1 and r.n_crops >= 1, r
