"""Notebooks used by a person as well as by papermill: parameters collected from a live IPython namespace (reruns,
edited parameters, typos, list parameters given as text) and progress bars (widgets in JupyterLab, text elsewhere)."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import papermill as pm
import pytest

from lib import progress
from lib.errors import ParameterError
from lib.paths import NOTEBOOKS, ROOT


@pytest.fixture()
def shell():
    """A fresh IPython shell whose cells are kept in its history, as a kernel's are."""
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    yield sh
    InteractiveShell.clear_instance()


def _run(sh, source: str):
    """Run one cell; return its exception (None when it ran)."""
    result = sh.run_cell(source, store_history=True, silent=False)
    return result.error_in_exec or result.error_before_exec


def _parameters_cell(name: str) -> str:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))


COLLECT = "from lib import parameters\nparams = parameters.INFER.collect(globals())\n"


def test_collect_in_a_kernel_ignores_what_earlier_runs_computed(shell):
    assert _run(shell, _parameters_cell("infer.ipynb")) is None
    assert _run(shell, COLLECT + "cfg = {'data_dir': 'x'}\nfiles = ['a.mp4']\nsummary = {'files': 1}") is None
    # JupyterLab: the same cell again, and again after editing the parameters cell, with cfg/files/summary around
    assert _run(shell, COLLECT) is None
    assert _run(shell, _parameters_cell("infer.ipynb").replace("frames: int = 30", "frames: int = 12")) is None
    assert _run(shell, "print('another cell')") is None
    assert _run(shell, COLLECT + "assert params['frames'] == 12, params['frames']") is None


def test_collect_in_a_kernel_still_rejects_a_typo(shell):
    assert _run(shell, _parameters_cell("infer.ipynb")) is None
    assert _run(shell, "# Parameters\nframe = 40\n") is None  # what papermill injects for -p frame 40
    err = _run(shell, COLLECT)
    assert isinstance(err, ParameterError) and "frame=40" in str(err) and "no such parameter" in str(err)
    # a typo typed into the parameters cell itself
    assert _run(shell, _parameters_cell("infer.ipynb") + "\ntresh: float = 0.3") is None
    err = _run(shell, COLLECT)
    assert isinstance(err, ParameterError) and "tresh=0.3" in str(err)


def test_progress_is_text_outside_a_jupyter_session(monkeypatch):
    from tqdm.std import tqdm as text_tqdm

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert progress.tqdm is text_tqdm and not progress.widgets_wanted()
    # a script started from a notebook's kernel inherits the variable, but is no kernel: text
    code = "from lib import progress; print(progress.widgets_wanted(), progress.tqdm.__module__)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "JPY_SESSION_NAME": "/x/infer.ipynb"},
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["False", "tqdm.std"]


def _bar_notebook(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from lib.progress import tqdm\nfor _ in tqdm(range(3), desc='files'):\n"
                                          "    pass\n"
                                          "from tqdm import auto  # as transformers calls it\n"
                                          "for _ in auto.tqdm(range(2), desc='other library'):\n"
                                          "    pass")]
    nbformat.write(nb, path)


@pytest.mark.slow
@pytest.mark.parametrize("session", [False, True], ids=["papermill", "jupyter-session"])
def test_progress_bars_under_papermill_are_text_and_widgets_in_a_session(tmp_path, monkeypatch, session):
    pytest.importorskip("ipywidgets")
    if session:  # what a Jupyter server sets in the kernels it starts for a notebook (papermill never does)
        monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "bars.ipynb"))
    else:
        monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    _bar_notebook(tmp_path / "bars.ipynb")
    pm.execute_notebook(str(tmp_path / "bars.ipynb"), str(tmp_path / "out.ipynb"), progress_bar=False,
                        cwd=str(tmp_path))
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    if session:
        assert len(widgets) == 2 and "files: 100%" not in text
    else:
        assert not widgets and "files: 100%" in text and "3/3" in text and "other library: 100%" in text


def test_list_parameters_given_as_text_are_read_as_lists():
    """A parameter the schema types ``list``, given as text (``-p data "[a, b]"``), is read as YAML/JSON."""
    from lib.parameters import Param, Schema

    schema = Schema("train.ipynb", (Param("data", list, [], "folders"), Param("frozen_blocks", list, [], "blocks"),
                                    Param("augment", list, [], "augmentations"), Param("exp", str, "", "run name")))
    ns = {"data": "[a, 'b c']", "frozen_blocks": "[stem, 0, -1]", "augment": "[flip", "exp": "[not a list]"}
    p = schema.collect(ns)
    assert p["data"] == ns["data"] == ["a", "b c"] and p["frozen_blocks"] == ns["frozen_blocks"] == ["stem", 0, -1]
    assert p["augment"] == "[flip" and p["exp"] == "[not a list]"  # left for the checks to reject
    json_text = {"data": '["x", "y"]'}
    assert Schema("t", (Param("data", list, [], "folders"),)).collect(json_text)["data"] == ["x", "y"]


@pytest.mark.slow
def test_papermill_p_list_reads_like_yaml(tmp_path):
    from lib.training import data as training_data

    missing = [str(tmp_path / "no-such-set-a"), str(tmp_path / "no-such-set-b")]
    with pytest.raises(ParameterError) as expected:  # the error a real list with that element gets
        training_data.dataset_paths(missing[0])
    out = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / "train.ipynb"), str(tmp_path / "o.ipynb"),
                          "--log-level", "ERROR", "-p", "data", f"[{missing[0]}, {missing[1]}]"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0
    error = [line for line in out.stderr.splitlines() if line.startswith("ParameterError: ")]
    assert error == [f"ParameterError: {expected.value}"], out.stderr[-3000:]


def test_lab_command_is_local_with_a_token_and_the_kits_kernel(monkeypatch):
    from lib.review import lab

    cmd = lab.lab_command(8123, "secret", open_browser=False)
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    for arg in ("--ServerApp.ip=127.0.0.1", "--ServerApp.port=8123", "--ServerApp.port_retries=0",
                "--IdentityProvider.token=secret", f"--ServerApp.root_dir={ROOT}",
                "--LabApp.default_url=/lab/tree/notebooks", "--ServerApp.open_browser=False",
                "--KernelSpecManager.allowed_kernelspecs=deepfake-kit"):
        assert arg in cmd
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab.lab_command(1, "t")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lab.lab_command(1, "t")
    with pytest.raises(ValueError, match="token"):
        lab.lab_command(1, "")


def test_lab_kernel_and_settings_go_to_the_given_prefix(tmp_path):
    import json

    from lib.review import lab

    spec = json.loads((lab.register_kernel(tmp_path) / "kernel.json").read_text())
    assert (tmp_path / "share" / "jupyter" / "kernels" / "deepfake-kit" / "kernel.json").is_file()
    assert spec["argv"][0] == sys.executable and spec["env"]["HF_HUB_OFFLINE"] == "1"
    overrides = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True)
    overrides.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}))
    assert lab.write_settings(tmp_path) == overrides
    written = json.loads(overrides.read_text())
    assert written["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}  # kept
    assert written["@jupyterlab/apputils-extension:notification"] == {"fetchNews": "false", "checkForUpdates": False}
    assert 0 < lab.free_port() < 65536
