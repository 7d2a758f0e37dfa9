"""bench/scale.py: the DFDC projection's arithmetic and the table it prints (the measurements are not tested)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import scale  # noqa: E402


def test_projection_divides_the_clips_among_the_workers() -> None:
    clip = {"s_per_clip": 3.6, "decode_s": 1.6, "detect_s": 2.0, "frames_read": 10}
    rows = scale.projection(clip, 0.9, [1, 10], 15)
    assert rows[0]["hours"] == pytest.approx(100_000 * 3.6 / (15 * 0.9) / 3600)
    assert rows[1]["hours"] == pytest.approx(rows[0]["hours"] / 10)
    fakes = 100_000 - scale.DFDC_REALS
    want = (scale.DFDC_REALS * 3.6 + fakes * (1.6 + 0.2)) / (15 * 0.9) / 3600
    assert rows[0]["hours_box_reuse"] == pytest.approx(want) and want < rows[0]["hours"]


def test_table_has_a_row_per_engine() -> None:
    rows = [{"engine": "in-process", "workers": 0, "wall_s": 10.0, "files_per_s": 3.9, "speedup": 1.0,
             "cpu_ms_per_file": 250.0, "overhead_ms_per_file": 0.0},
            {"engine": "LocalCluster local:1", "workers": 1, "wall_s": 11.0, "files_per_s": 3.5, "speedup": 0.91,
             "cpu_ms_per_file": 275.6, "startup_s": 4.0, "noop_ms_per_file": 6.5, "overhead_ms_per_file": 25.6}]
    text = scale.table(rows)
    assert text.count("\n") == 3 and "| LocalCluster local:1 | 1 | 11.0 | 3.50 | 0.91x | 276 | +26 | 4.0 | 6.5 |" in text
