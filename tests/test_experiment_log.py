"""The experiment log: duplicate-submission warning, the "changed" column, rebuilding from records, the score plot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lib import experiments
from lib.errors import ParameterError


def _run(root, exp, params, labels, f1=None, kind="infer"):
    """A finished run with a submission.csv of ``labels`` ({filename: label}) written in the given row order."""
    run = experiments.Run(kind, exp, params, root=root)
    rows = "".join(f"{n},{y}\n" for n, y in labels.items())
    (run.dir / "submission.csv").write_text("filename,label\n" + rows, encoding="utf-8")
    run.finish(metrics={"macro_f1": f1} if f1 is not None else None)
    return run


LABELS = {"a.mp4": 1, "b.jpg": 0, "c.png": 1}


def test_duplicate_of_a_scored_submission_warns_whatever_the_row_order(tmp_path, capsys):
    _run(tmp_path, "first", {"frames": 30}, LABELS, 0.6)
    experiments.record_score("first", 0.55, root=tmp_path)
    shuffled = dict(reversed(list(LABELS.items())))
    second = _run(tmp_path, "second", {"frames": 40}, shuffled, 0.6)
    with pytest.warns(UserWarning, match="DUPLICATE SUBMISSION.*first"):
        dups = experiments.check_duplicate(second.dir)
    assert dups == [{"exp": "first", "kind": "infer", "public": 0.55, "submitted": True}]
    third = _run(tmp_path, "third", {"frames": 40}, {**LABELS, "b.jpg": 1})
    assert experiments.check_duplicate(third.dir) == []
    cmd = [sys.executable, "-m", "lib.experiments", "--submissions", str(tmp_path), "check"]
    assert subprocess.run(cmd + ["second"], capture_output=True, text=True).returncode == 1
    assert subprocess.run(cmd + ["third"], capture_output=True, text=True).returncode == 0


def test_duplicate_of_an_unsubmitted_run_is_only_a_note(tmp_path, capsys):
    _run(tmp_path, "a", {}, LABELS)
    b = _run(tmp_path, "b", {}, LABELS)
    dups = experiments.check_duplicate(b.dir)
    assert [d["exp"] for d in dups] == ["a"] and not dups[0]["submitted"]
    assert "note: same labels" in capsys.readouterr().out
    experiments.mark_submitted("a", root=tmp_path)
    with pytest.warns(UserWarning, match="not yet known"):
        experiments.check_duplicate(b.dir)
    with pytest.raises(ParameterError, match="scored run"):
        experiments.Run("infer", "a", {}, root=tmp_path)


def test_changed_column_names_the_diff_against_the_best_earlier_run(tmp_path):
    base = {"model": "m", "frames": 30, "tta": "none", "exp": "x", "workers": -1}
    _run(tmp_path, "r1", {**base, "exp": "r1"}, LABELS, 0.70)
    _run(tmp_path, "r2", {**base, "exp": "r2", "frames": 40}, LABELS, 0.60)
    _run(tmp_path, "r3", {**base, "exp": "r3", "tta": "flip", "workers": 4}, LABELS, 0.65)
    experiments.record_score("r2", 0.56, root=tmp_path)  # a public score outranks any local F1
    _run(tmp_path, "r4", {**base, "exp": "r4", "frames": 40, "tta": "flip"}, LABELS, 0.66)
    rows = {line.split(" | ")[0].strip("| "): line for line in (tmp_path / "EXPERIMENTS.md").read_text().splitlines()
            if line.startswith("| r")}
    assert rows["r1"].endswith("|  |")
    assert "vs r1: frames 30→40 |" in rows["r2"]  # before any public score: the best local F1
    # the table is rendered with what is known now: r2's public score makes it the best run before r3
    assert "vs r2: frames 40→30, tta none→flip |" in rows["r3"], "workers and exp are not parameters of the result"
    assert "vs r2: tta none→flip |" in rows["r4"]


def test_table_is_rebuilt_from_records_alone(tmp_path):
    _run(tmp_path, "r1", {"frames": 30}, LABELS, 0.7)
    _run(tmp_path, "r2", {"frames": 40}, LABELS, 0.8)
    experiments.record_score("r2", 0.5, root=tmp_path)
    first = (tmp_path / "EXPERIMENTS.md").read_text()
    (tmp_path / "EXPERIMENTS.md").write_text("edited by hand")
    out = subprocess.run([sys.executable, "-m", "lib.experiments", "--submissions", str(tmp_path), "rebuild"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "EXPERIMENTS.md").read_text() == first
    assert "| r2 |" in first and "0.5000" in first and "vs r1: frames 30→40" in first


def test_a_run_of_another_kind_never_takes_over_a_folder(tmp_path):
    _run(tmp_path, "exp003", {}, LABELS)
    with pytest.raises(ParameterError, match="kind 'infer'"):
        experiments.Run("eda", "exp003", {}, root=tmp_path)


def test_score_plot_command_writes_a_png(tmp_path):
    for i, (f1, pub) in enumerate(((0.9, 0.55), (0.7, 0.5), (0.95, 0.56))):
        _run(tmp_path, f"r{i}", {"frames": i}, {**LABELS, "z.jpg": i % 2}, f1)
        experiments.record_score(f"r{i}", pub, root=tmp_path)
    out = subprocess.run([sys.executable, "-m", "lib.experiments", "--submissions", str(tmp_path), "plot"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "local_vs_public.png").stat().st_size > 5000
