"""JupyterLab in a real browser: `make lab`'s server, headless Chromium, infer.ipynb run top to bottom from the UI.

The server is `make lab` itself (sample set and demo detector prepared in the project's git-ignored data/ and models/
when missing, the kernel registered, JupyterLab started) on a free port with a known token; outputs go to a temporary
KIT_WORKDIR (``KIT_LAB_TEST_WORKDIR=/some/folder`` keeps them, screenshots included). The browser is Debian's chromium
+ chromium-driver, driven by selenium; `.ci/run` installs them. Skipped, saying so, only when no browser is installed.
The test runs infer.ipynb with Run All, then edits a parameter in the page and runs the cells one by one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from lib import media, submission
from lib.review.lab import free_port
from lib.paths import ROOT, SAMPLE

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1500,1100")
SERVER_START_S = 1200  # a fresh clone fits the demo detector first (about 2.5 min here; more on a busy machine)
RUN_ALL_S = 1200  # infer.ipynb's defaults on the sample set: a few minutes on 2 CPU cores
NOTEBOOK = "notebooks/infer.ipynb"


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no browser installed: needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; .ci/run installs them)")
    return chromium, driver


def _wait_for_server(url: str, token: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make lab exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    raise AssertionError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a free port with a known token, KIT_WORKDIR and Jupyter's own folders in a temporary folder."""
    chromium, driver = _browser()
    import papermill as pm

    default = pm.inspect_notebook(str(ROOT / NOTEBOOK))["model"]["default"]
    assert default == '"models/demo-detector"', f"{NOTEBOOK}'s default model {default} is not the demo detector " \
        "that make lab prepares: the notebook cannot run with its defaults offline"
    tmp = tmp_path_factory.mktemp("lab")
    # KIT_LAB_TEST_WORKDIR keeps the runs and screenshots (pytest's own temporary folders are rotated away)
    workdir = Path(os.environ.get("KIT_LAB_TEST_WORKDIR") or tmp / "workdir")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "KIT_WORKDIR": str(workdir), "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces")}
    env.pop("JPY_SESSION_NAME", None)
    # never autosave: the notebook served is the project's own notebooks/infer.ipynb
    docmanager = tmp / "lab-settings" / "@jupyterlab" / "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    log = tmp / "make-lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"VENV={sys.prefix}", f"PORT={port}",
                                 f"LAB_ARGS=--no-browser --token {token}"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        _wait_for_server(url, token, proc, log)
        print(f"make lab answered after {time.monotonic() - t0:.0f} s")
        yield {"url": url, "token": token, "workdir": workdir, "tmp": tmp, "log": log,
               "chromium": chromium, "driver": driver}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make, python -m lib.review.lab (exec'd into JupyterLab) and its kernels
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture()
def browser(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = lab["chromium"]
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={lab['tmp'] / 'chromium-profile'}",):
        opts.add_argument(flag)
    service = Service(executable_path=lab["driver"], log_output=str(lab["tmp"] / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(180)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, what: str, condition, timeout: float, poll: float = 1.0):
    """``condition(driver)`` until it is truthy (returned), else fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# The open notebook's state, read from the page: prompts ("[3]:", "[*]:", "[ ]:"), kernel status, tracebacks shown.
_STATE_JS = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
if (!panel) return null;
const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim());
const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
const errors = [...panel.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent)
  .filter(t => t.includes('Traceback (most recent call last)')).map(t => t.slice(-3000));
return {prompts: prompts, status: status ? status.getAttribute('data-status') : null, errors: errors};
"""


def _menu(driver, menu: str, command: str) -> None:
    """Click a menu of the menu bar, then one of its items, by JupyterLab command id."""
    from selenium.webdriver.common.by import By

    items = driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
    [item for item in items if item.text.strip() == menu][0].click()
    _wait(driver, f"menu item {command}",
          lambda d: d.find_elements(By.CSS_SELECTOR, f'.lm-Menu-item[data-command="{command}"]'), 30)[0].click()


class _Finished:
    """Every code cell ran after ``after`` (its prompt shows a larger count) and the kernel is idle; a traceback, or
    cells left unrun with the kernel idle, fails at once."""

    def __init__(self, after: int = 0) -> None:
        self.after, self.stalled = after, 0

    def __call__(self, driver):
        state = driver.execute_script(_STATE_JS)
        if not state:
            return None
        if state["errors"]:
            raise AssertionError("a cell failed in JupyterLab:\n" + "\n---\n".join(state["errors"]))
        prompts, idle = state["prompts"], state["status"] == "idle"
        counts = [int(p[1:-2]) if p[1:-2].isdigit() else None for p in prompts]  # "[12]:" -> 12
        stale = [i for i, c in enumerate(counts) if c is None or c <= self.after]
        if idle and prompts and not stale:
            return state
        self.stalled = self.stalled + 1 if idle and "[*]:" not in prompts else 0
        if self.stalled >= 5:  # idle for 5 polls in a row with cells not run: the run stopped
            raise AssertionError(f"the run stopped with code cells {stale} not run (prompts {prompts})")
        return None


def _panel(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden)")


def _open_notebook(driver, lab) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{lab['url']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    _wait(driver, "the notebook in the kit's kernel, idle (the only kernel: it replaces the file's python3)",
          lambda d: (d.execute_script(_STATE_JS) or {}).get("status") == "idle" and "deepfake-kit" in d.find_element(
              By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName").text, 300)


def _new_run(workdir: Path, known: set[Path]) -> Path:
    """The one run folder that is not in ``known``, checked: an infer run whose submission matches the sample set."""
    runs = {p.parent for p in (workdir / "submissions").glob("*/run.json")} - known
    assert len(runs) == 1, f"one new run folder expected in {workdir}, found {sorted(runs)}"
    run = runs.pop()
    record = json.loads((run / "run.json").read_text())
    assert record["kind"] == "infer" and record["params"]["data_dir"] == "data/sample/test"
    submission.check_submission(run / "submission.csv", SAMPLE / "test")
    rows = pd.read_csv(run / "submission.csv", keep_default_na=False)
    assert len(rows) == len(media.list_media(SAMPLE / "test")) > 0
    analysis = record["analysis"]  # labels: auto found the sample set's labels.csv
    assert (run / analysis["error_crops"]).is_file() and (run / analysis["reliability"]).is_file()
    return run


def _check_page(driver) -> None:
    """Inline figures (error analysis, histogram, crops) drawn; progress bars drawn as widgets, not as text."""
    from selenium.webdriver.common.by import By

    sizes = driver.execute_script(
        "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img')]"
        ".map(i => [i.naturalWidth, i.naturalHeight]);")
    # the error analysis (mistakes with their crops, reliability), then the histogram and the crops
    assert len(sizes) >= 4 and all(w > 100 and h > 100 for w, h in sizes), f"inline figures: {sizes}"
    page = _panel(driver)
    bars = [b.find_element(By.XPATH, "./..").text for b in page.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output .widget-hprogress")]
    outputs = driver.execute_script(
        "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')]"
        ".map(o => (o.getAttribute('data-mime-type') || 'widget') + ': ' + o.textContent.slice(0, 80));")
    assert any(b.startswith("preprocess") and "100%" in b for b in bars), \
        f"no finished 'preprocess' widget bar (bars: {bars}); outputs:\n" + "\n".join(outputs)
    assert "HBox(children" not in page.text and "IProgress not found" not in page.text


def _screenshot(driver, path: Path, selector: str = ".jp-OutputArea-output img") -> None:
    """A screenshot with the first element matching ``selector`` (default: the first figure) in the middle."""
    from selenium.webdriver.common.by import By

    target = _panel(driver).find_elements(By.CSS_SELECTOR, selector)[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    time.sleep(1)
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    print(f"screenshot: {path}")


def _edit_parameter(driver, name: str, line: str) -> None:
    """Replace the parameters cell's line for ``name`` by typing, as a person would (no quotes or brackets typed)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});",
                          _panel(driver).find_elements(By.CSS_SELECTOR, ".jp-CodeCell")[0])
    target = [el for el in _panel(driver).find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-line")
              if el.text.startswith(f"{name}:")][0]
    target.click()
    ActionChains(driver).send_keys(Keys.END).key_down(Keys.SHIFT).send_keys(Keys.HOME).key_up(Keys.SHIFT) \
        .send_keys(line).perform()
    edited = [el.text for el in _panel(driver).find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-line")
              if el.text.startswith(f"{name}:")]
    assert edited == [line], edited


def test_infer_notebook_runs_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    assert (ROOT / "models" / "demo-detector" / "fit.json").is_file() and (SAMPLE / "test").is_dir(), \
        "make lab prepares the sample set and the demo detector"
    committed = (ROOT / NOTEBOOK).read_bytes()
    t0 = time.monotonic()
    _open_notebook(browser, lab)
    loaded = time.monotonic() - t0

    _menu(browser, "Run", "runmenu:run-all")  # Run → Run All Cells
    state = _wait(browser, "every cell of infer.ipynb to run", _Finished(), RUN_ALL_S, poll=2)
    ran = time.monotonic() - t0 - loaded
    first = _new_run(lab["workdir"], set())
    _check_page(browser)
    _screenshot(browser, first / "jupyterlab.png")  # the first figure: the error analysis's mistakes and crops
    _screenshot(browser, first / "jupyterlab-progress.png", ".jp-OutputArea-output .widget-hprogress")

    # a person edits a parameter and runs the cells one by one (Shift+Enter), in the same kernel
    after = max(int(p[1:-2]) for p in state["prompts"])
    _edit_parameter(browser, "threshold", "threshold: float = 0.4  # edited in the browser")
    n = len(state["prompts"])  # Shift+Enter runs a cell and selects the next; Ctrl+Enter runs the last, adding none
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER * (n - 1)).key_up(Keys.SHIFT) \
        .key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    _wait(browser, "the edited notebook to run cell by cell", _Finished(after), RUN_ALL_S, poll=2)
    again = time.monotonic() - t0 - loaded - ran
    second = _new_run(lab["workdir"], {first})
    assert json.loads((second / "run.json").read_text())["params"]["threshold"] == 0.4
    _screenshot(browser, second / "jupyterlab.png")
    assert (ROOT / NOTEBOOK).read_bytes() == committed, "the test must not save over the project's notebook"
    print(f"page + kernel {loaded:.0f} s; Run All {ran:.0f} s; edited rerun {again:.0f} s")
