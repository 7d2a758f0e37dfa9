"""What the notebooks' defaults rely on: ensemble.ipynb's ``runs: latest``, and defaults that need no hub."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lib import experiments

from lib.review import ensemble
from lib.errors import ParameterError
from lib.paths import DEMO_MODEL, NOTEBOOKS, ROOT


def _run(root, exp, files, kind="infer"):
    run = experiments.Run(kind, exp, {"model": "m", "data_dir": "d"}, root=root)
    pd.DataFrame({"filename": files, "prob_fake": 0.5, "label": 1}).to_csv(run.dir / "predictions.csv", index=False)
    run.finish(metrics=None)


def test_latest_runs_are_the_two_newest_infer_runs_on_the_same_files(tmp_path):
    root = tmp_path / "submissions"
    with pytest.raises(ParameterError, match="'latest' needs two infer runs on the same files.*found none"):
        ensemble.parse_runs("latest", root)
    _run(root, "a1", ["x.jpg", "y.mp4"])
    with pytest.raises(ParameterError, match=r"found \['a1'\]: run infer.ipynb twice"):
        ensemble.parse_runs("latest", root)
    _run(root, "a2", ["x.jpg", "y.mp4"])
    _run(root, "a3", ["y.mp4", "x.jpg"])
    _run(root, "b1", ["z.png"])  # newest, but alone on its files
    _run(root, "e1", ["z.png"], kind="ensemble")  # not an infer run
    assert ensemble.parse_runs(" latest ", root) == ["a2", "a3"]
    assert ensemble.parse_runs("a1,b1", root) == ["a1", "b1"]  # names still work


@pytest.mark.parametrize("name", ["preprocess.ipynb", "infer.ipynb", "eda.ipynb", "ensemble.ipynb", "report.ipynb"])
def test_defaults_need_no_hub_and_no_papermill(name):
    """A local model folder (made by make demo / make lab), never a hub id; runs that a person can have made."""
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    source = "".join(next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))["source"])
    namespace: dict = {}
    exec(source, namespace)
    if "model" in namespace:
        assert ROOT / namespace["model"] == DEMO_MODEL
    if "data_dir" in namespace:
        assert namespace["data_dir"] == "data/sample/test"
    if "runs" in namespace:
        assert namespace["runs"] == ensemble.LATEST
