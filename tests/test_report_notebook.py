"""report.ipynb end to end: a papermill run on a miniature (a model and a labelled folder, then a finished infer
run reused), and a real browser opening the report.html of a run on the sample set.

The browser test runs report.ipynb with the demo detector on data/sample/test (made by ``make sample demo-model``
when missing), opens the page in Debian's headless chromium through selenium, finds every section with at least
one drawn image, and saves a screenshot in the run folder (``KIT_REPORT_TEST_WORKDIR=/some/folder`` keeps it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest
from PIL import Image

import media_factory as mf
from test_lab import _browser  # Debian's chromium and chromedriver, or a skip that says how to install them
from lib.paths import DEMO_MODEL, NOTEBOOKS, ROOT, SAMPLE
from lib.review import report

pytestmark = pytest.mark.slow
SECTIONS = ("overview", "curves", "robustness", "where-it-looks", "timelines", "provenance")
SMALL = {"frames": 3, "resamples": 50, "robustness": ["jpeg50_crf36", "quarter"], "n_errors": 2, "workers": 0}


def _miniature(folder: Path) -> Path:
    """Two videos and two photos with labels, origins and sources."""
    folder.mkdir(parents=True, exist_ok=True)
    mf.face_video(folder / "real.mp4", n_frames=6, size=(160, 120))
    mf.face_video(folder / "fake.mp4", n_frames=6, size=(176, 128))
    Image.fromarray(mf.face_image((128, 128))).save(folder / "real.png")
    Image.fromarray(mf.face_image((144, 128))).save(folder / "fake.jpg")
    (folder / "labels.csv").write_text("filename,label,source,origin\nreal.mp4,0,v,p1\nfake.mp4,1,v,p1\n"
                                       "real.png,0,i,p2\nfake.jpg,1,i,p2\n", encoding="utf-8")
    return folder


def _sections(html: str) -> dict[str, int]:
    """Embedded images per section id."""
    parts = re.split(r'<section id="', html)[1:]
    return {p.split('"', 1)[0]: p.count('src="data:image/png;base64,') for p in parts}


def test_report_of_a_model_and_of_a_finished_infer_run(workdir, tiny_vit, tmp_path_factory):
    data = _miniature(tmp_path_factory.mktemp("mini"))
    common = {"data_dir": str(data), "model": str(tiny_vit), "cache_dir": str(workdir / "crops")}
    pm.execute_notebook(str(NOTEBOOKS / "report.ipynb"), str(workdir / "r1.ipynb"), progress_bar=False,
                        parameters={**common, **SMALL, "perturb_dir": str(workdir / "perturbed"), "exp": "r1"})
    out = workdir / "submissions" / "r1"
    record = json.loads((out / "run.json").read_text())
    assert record["kind"] == "report" and record["status"] == "complete" and record["report"] == "report.html"
    assert record["intervals"]["resampled_by"] == "origin" and record["metrics"]["n"] == 4
    assert [r["perturbation"] for r in record["robustness"]["rows"]] == ["none", "jpeg50_crf36", "quarter"]
    html = (out / "report.html").read_text(encoding="utf-8")
    images = _sections(html)
    assert tuple(images) == SECTIONS and all(n >= 1 for n in images.values()), images
    assert "no spatial feature map" in html, "a ViT gets no heat map, and the page says why"
    assert record["git"]["commit"] and "| r1 |" in (workdir / "EXPERIMENTS.md").read_text()

    # a finished infer run: its model, data, settings and predictions; its crops are all cache hits
    pm.execute_notebook(str(NOTEBOOKS / "infer.ipynb"), str(workdir / "i.ipynb"), progress_bar=False,
                        parameters={**common, "frames": 3, "workers": 0, "exp": "inf"})
    infer = json.loads((workdir / "submissions" / "inf" / "run.json").read_text())
    assert infer["intervals"]["AUC"]["value"] is not None, "infer shows the report's intervals when labels are given"
    pm.execute_notebook(str(NOTEBOOKS / "report.ipynb"), str(workdir / "r2.ipynb"), progress_bar=False,
                        parameters={**SMALL, "run": "inf", "robustness": [], "exp": "r2",
                                    "perturb_dir": str(workdir / "perturbed")})
    second = json.loads((workdir / "submissions" / "r2" / "run.json").read_text())
    assert second["timings"]["cache_hits"] == 4 and second["timings"]["cache_misses"] == 0
    assert second["threshold_used"] == infer["threshold_used"] and second["model"]["source"] == str(tiny_vit)
    html = (workdir / "submissions" / "r2" / "report.html").read_text(encoding="utf-8")
    assert "infer run&#x27;s predictions.csv (inf)" in html and "at most 0" in html


def test_a_wrong_report_parameter_stops_at_once(workdir, tiny_vit, tmp_path):
    data = _miniature(tmp_path / "d")
    with pytest.raises(pm.PapermillExecutionError, match="robustness.*valid values: jpeg90_crf23"):
        pm.execute_notebook(str(NOTEBOOKS / "report.ipynb"), str(tmp_path / "bad.ipynb"), progress_bar=False,
                            parameters={"data_dir": str(data), "model": str(tiny_vit), "robustness": ["jpeg"],
                                        "exp": "bad"})
    assert not (workdir / "submissions" / "bad").exists()


# ---------------------------------------------------------------------------------------------- a real browser
def _sample_and_demo_model() -> None:
    """The sample set and the demo detector the notebook's defaults use (make sample demo-model, once)."""
    if (DEMO_MODEL / "fit.json").is_file() and (SAMPLE / "test" / "labels.csv").is_file():
        return
    done = subprocess.run(["make", "--no-print-directory", "sample", "demo-model", f"VENV={sys.prefix}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _open(chromium: str, driver: str, tmp: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--window-size=1300,1000", f"--user-data-dir={tmp / 'profile'}"):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver,
                                                          log_output=str(tmp / "chromedriver.log")))


# every section: its title, and its drawn images (naturalWidth: decoded, not a broken icon)
_PAGE_JS = """
return [...document.querySelectorAll('main > section')].map(s => ({id: s.id,
  title: s.querySelector('h2') ? s.querySelector('h2').textContent : '',
  images: [...s.querySelectorAll('img')].map(i => [i.complete, i.naturalWidth, i.naturalHeight])}));
"""


@pytest.mark.browser
def test_report_page_opens_in_a_real_browser(tmp_path):
    chromium, driver = _browser()
    _sample_and_demo_model()
    work = Path(os.environ.get("KIT_REPORT_TEST_WORKDIR") or tmp_path / "work")
    env = {**os.environ, "KIT_WORKDIR": str(work), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "papermill", "--log-level", "WARNING", str(NOTEBOOKS / "report.ipynb"),
           str(tmp_path / "report.ipynb"), "-p", "exp", "browser", "-p", "resamples", "200", "-p", "frames", "4",
           "-y", "robustness: [jpeg50_crf36, quarter]"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    run = work / "submissions" / "browser"
    browser = _open(chromium, driver, tmp_path)
    try:
        browser.get((run / report.REPORT_FILE).as_uri())
        found = browser.execute_script(_PAGE_JS)
        assert [s["id"] for s in found] == list(SECTIONS), found
        for s in found:
            drawn = [img for img in s["images"] if img[0] and img[1] > 100 and img[2] > 50]
            assert drawn, f"section {s['id']} ({s['title']}) shows no image: {s['images']}"
        assert browser.title.startswith("Report browser")
        shot = run / "report-screenshot.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
        browser.execute_script("document.getElementById('where-it-looks').scrollIntoView();")
        assert browser.save_screenshot(str(run / "report-screenshot-heatmaps.png"))
    finally:
        browser.quit()
    print(f"screenshot: {shot}")
