"""Documented means tested: every relative link and anchor of README.md and docs/ resolves, and every command block
(```bash, ```sh, ```console) runs, in order, in a fresh copy of the project, on the generated sample set or on
miniatures made here, with the small settings declared in SUBS and SMALL_PARAMS below and nowhere else.

A block marked ``<!-- test: skip: REASON -->`` or ``<!-- test: needs shared-data|gpu -->`` is skipped with that
reason (tests/docblocks.py). ``python tests/docblocks.py`` lists every block and how it is exercised.

The copy: every file git tracks (or would track) of this checkout, with ``.venv`` linked to the venv running the
tests; it is its own project root and KIT_WORKDIR (runs, EXPERIMENTS.md, the crop cache, kernels/ all land in it).
Each block runs with bash (``-e -o pipefail -x``) from the copy's root, in the activated venv (its ``bin`` first on
PATH) and with PYTHONPATH set to the copy (the venv's editable install points at the checkout, the copy's ``lib``
must win). The README's blocks run first: every page starts from the state they leave (the demo made, its bundle
built and checked). Then the pages run, two at a time (CI has two cores; a notebook run keeps about one busy), the
blocks of a page in order, each once, and each block's test reports its page's outcome for it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

import docblocks
from docblocks import ROOT, Block

INSTALLED = ".venv/.installed"


@dataclass(frozen=True)
class Sub:
    """A declared change to the blocks of ``page`` ("*": every page): ``re.sub(pattern, repl)``, line by line."""

    page: str
    pattern: str
    repl: str | Callable[[re.Match], str]
    why: str


_SMALL_TRAIN = r"\1 -p epochs 1 -p frames 2"
# In order: each applies to the text the ones before it left. A substitution that matches no block fails the suite.
SUBS = (
    Sub("*", r"^(\s*)make test\b", r"\1make -n test",
        "`make test` is this suite: run inside itself it would recurse; `make -n` checks the target and its commands"),
    Sub("*", r"^(\s*)make lab\b", r"\1make -n lab",
        "`make lab` starts JupyterLab, which runs until stopped; `make -n` checks the target (tests/test_lab.py drives "
        "`make lab` in a headless browser)"),
    Sub("*", r"^(\s*)make (?!-n )", r"\1make -o " + INSTALLED + " ",
        "the suite runs inside `make test`, which has just installed the venv: a test never reinstalls it"),
    Sub("README.md", r"(make -o \S+ demo)\b", r"\1 DEMO_MODEL_FRAMES=4",
        "small settings: the demo detector is fitted on 4 frames per video instead of 40"),
    Sub("docs/generalisation.md", r"(make -o \S+ detector)\b",
        r"""\1 DETECTOR_ARGS='-y "data: [data/mini-kinds]" -p frames 2 -p loo_min_files 3'""",
        "a miniature data list instead of ../shared/data: the sample set's 44 files, its fakes given three kinds "
        "(made here), 2 frames per video, folds of 3 fakes counted"),
    Sub("docs/training.md", r"(make -o \S+ train-demo)\b", r'\1 TRAIN_ARGS="-p epochs 1 -p frames 2"',
        "small settings: 1 epoch, 2 frames per video"),
    Sub("docs/training.md", r"(papermill notebooks/train\.ipynb \S+)", _SMALL_TRAIN,
        "small settings: 1 epoch, 2 frames per video"),
    Sub("docs/training.md", r"\.\./shared/data/dev, \.\./shared/data/faces", "data/sample/fit, data/mini-faces",
        "two folders like ../shared/data's dev set (reals with their fakes) and face pool (reals only): the sample "
        "set's fit folder, and its test folder's reals (made here)"),
    Sub("docs/corpora.md", r" /data/", " minis/",
        "miniature corpora in each corpus's layout, made here from the sample set's files"),
    Sub("docs/corpora.md", r"(papermill notebooks/train\.ipynb \S+)", _SMALL_TRAIN,
        "small settings: 1 epoch, 2 frames per video"),
    Sub("docs/report.md", r"(papermill notebooks/report\.ipynb \S+)", r"\1 -p frames 4 -p resamples 200",
        "small settings: 4 frames per video (the demo's crops, cached), 200 bootstrap resamples"),
    Sub("docs/report.md", r"(-p run demo)$", r'\1 -y "robustness: []"',
        "small settings: no robustness grid for the second report (the first one scores two perturbations)"),
    Sub("docs/sweeps.md", r"--trials 4\b", "--trials 2", "small settings: 2 of the 4 infer trials"),
    Sub("docs/sweeps.md", r"(--trials 3|-p trials 2)\b", lambda m: m.group(1)[:-1] + "1",
        "small settings: 1 trial for the training study and for the notebook's"),
    Sub("docs/sweeps.md", r'--fixed "\{epochs: 2, frames: 4\}"', '--fixed "{epochs: 1, frames: 2}"',
        "small settings: 1 epoch, 2 frames per video"),
)
# Values changed in the copy's params files before anything runs (every command that reads the file sees them).
SMALL_PARAMS = {"params/demo.yaml": {"frames": 4}}


def substituted(block: Block) -> tuple[str, list[Sub]]:
    """The block's text as the test runs it, and the substitutions that changed it."""
    text, used = block.text, []
    for sub in SUBS:
        if sub.page in ("*", block.page):
            new = re.sub(sub.pattern, sub.repl, text, flags=re.MULTILINE)
            if new != text:
                text, used = new, used + [sub]
    return text, used


def describe() -> list[str]:
    """One line per command block: where it is, and whether it runs as written, runs substituted, or is skipped."""
    lines = []
    for block in docblocks.all_blocks():
        first = block.text.strip().splitlines()[0] if block.text.strip() else ""
        if block.skip_reason:
            how = f"skipped: {block.skip_reason}"
        else:
            used = substituted(block)[1]
            how = "runs as written" if not used else "runs with: " + "; ".join(s.why for s in used)
        lines.append(f"{block.id}  [{first[:70]}]  {how}")
    lines += [f"{path}: {key} {value} in the copy (small settings)" for path, kv in SMALL_PARAMS.items()
              for key, value in kv.items()]
    return lines


# --------------------------------------------------------------------------------------------- links and anchors

@pytest.mark.parametrize("page", docblocks.pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    assert docblocks.broken_links(page) == []


def test_anchors_follow_github() -> None:
    assert docblocks.slug("Training (`train.ipynb`)") == "training-trainipynb"
    assert docblocks.slug("Measured: dev set + face pool, EfficientNet-Lite0") == \
        "measured-dev-set--face-pool-efficientnet-lite0"
    assert docblocks.slug("Projection: DFDC's 100,000 clips on N machines") == \
        "projection-dfdcs-100000-clips-on-n-machines"
    assert docblocks.slug(docblocks._heading_text("Sweeps (`sweep.ipynb`, [lib](x.md))")) == "sweeps-sweepipynb-lib"


def test_a_broken_link_or_anchor_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# A title\n\n## Same\n\n## Same\n", encoding="utf-8")
    (tmp_path / "x.md").write_text("outside\n", encoding="utf-8")
    page = root / "README.md"
    page.write_text("[ok](docs/a.md#a-title) [dup](docs/a.md#same-1) [web](https://example.com/x) [self](#top)\n"
                    "[gone](docs/b.md) [bad](docs/a.md#nope) `[code](not/a/link.md)` [up](../x.md)\n"
                    "# Top\n```bash\n[in a block](nowhere.md)\n```\n", encoding="utf-8")
    assert docblocks.broken_links(page, root) == [
        "README.md:2: docs/b.md: no such file", "README.md:2: docs/a.md#nope: no heading with that anchor in a.md",
        "README.md:2: ../x.md: leaves the repository"]


# ------------------------------------------------------------------------------------------ the command blocks

def test_blocks_are_found_with_their_marks(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("x\n<!-- test: skip: why not -->\n\n```bash\necho a\n```\n```python\nprint()\n```\n"
                    "<!-- test: needs gpu -->\n```console\n$ echo b\nb\n```\n```sh\necho c\n```\n", encoding="utf-8")
    found = docblocks.blocks(page, tmp_path)
    assert [(b.line, b.lang, b.text, b.skip_reason) for b in found] == [
        (4, "bash", "echo a", "why not"), (11, "console", "echo b", docblocks.NEEDS["gpu"]), (15, "sh", "echo c", None)]


def test_every_mark_is_known_and_every_substitution_still_matches() -> None:
    """A substitution that no block needs any more is stale: the docs changed under it."""
    used = []
    for block in docblocks.all_blocks():
        block.skip_reason  # raises on an unknown mark
        if not block.skip_reason:
            used += substituted(block)[1]
    assert [(s.page, s.pattern) for s in SUBS if s not in used] == []
    for path, values in SMALL_PARAMS.items():
        text = (ROOT / path).read_text(encoding="utf-8")
        assert all(re.search(rf"^{k}:", text, re.M) for k in values), path


def test_a_block_that_breaks_fails_with_what_it_ran(tmp_path: Path) -> None:
    """A renamed or broken command fails its block (bash -e): the failure names the block and shows its output."""
    block = Block("docs/x.md", 3, "bash", "echo before\npython -m lib.no_such_module\necho after", ())
    outcome = _run_block(block, tmp_path)
    assert outcome.failure and outcome.failure.startswith("docs/x.md:3 failed (exit 1)")
    assert "No module named" in outcome.failure and "+ echo before" in outcome.failure
    assert "+ echo after" not in outcome.failure


BLOCKS = docblocks.all_blocks()
RUNNABLE = [b for b in BLOCKS if not b.skip_reason]


def _copy_project(dest: Path) -> Path:
    """Every file git tracks or would track (not ignored), as a fresh clone has them, and the venv linked in."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    for path, values in SMALL_PARAMS.items():
        text = (dest / path).read_text(encoding="utf-8")
        for key, value in values.items():
            text = re.sub(rf"^{key}:.*$", f"{key}: {value}", text, flags=re.M)
        (dest / path).write_text(text, encoding="utf-8")
    return dest


def _environment(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KIT_WORKDIR", "PYTEST_CURRENT_TEST")}
    env.update(PATH=f"{project / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(project / ".venv"),
               PYTHONPATH=str(project), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("docs") / "kit")


# ---------------------------------------------------------------- miniatures some pages need, made from the sample

def _sample_files(project: Path) -> dict[tuple[str, str], list[Path]]:
    """The sample set's files by (label 'real'|'fake', extension)."""
    found: dict[tuple[str, str], list[Path]] = {}
    for split in ("fit", "test"):
        folder = project / "data" / "sample" / split
        with (folder / "labels.csv").open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                key = ("fake" if row["label"] == "1" else "real", Path(row["filename"]).suffix)
                found.setdefault(key, []).append(folder / row["filename"])
    return found


# corpus folder -> {path in its layout: (label, extension) of the sample file copied there, or text}
_V, _FV, _P, _FP = ("real", ".mp4"), ("fake", ".mp4"), ("real", ".jpg"), ("fake", ".jpg")
MINI_CORPORA: dict[str, dict[str, tuple[str, str] | str | dict]] = {
    "FaceForensics++": {
        "original_sequences/youtube/c23/videos/000.mp4": _V, "original_sequences/youtube/c23/videos/001.mp4": _V,
        "original_sequences/youtube/c23/videos/002.mp4": _V,
        "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4": _FV,
        "manipulated_sequences/Face2Face/c23/videos/001_002.mp4": _FV,
        "manipulated_sequences/NeuralTextures/c23/videos/002_000.mp4": _FV},
    "Celeb-DF-v2": {
        "Celeb-real/id0_0000.mp4": _V, "Celeb-real/id1_0000.mp4": _V, "YouTube-real/00000.mp4": _V,
        "Celeb-synthesis/id0_id1_0000.mp4": _FV, "Celeb-synthesis/id1_id0_0000.mp4": _FV,
        "List_of_testing_videos.txt": "1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"},
    "dfdc": {
        "dfdc_train_part_0/a.mp4": _V, "dfdc_train_part_0/b.mp4": _FV,
        "dfdc_train_part_0/metadata.json": {"a.mp4": {"label": "REAL", "split": "train", "original": None},
                                            "b.mp4": {"label": "FAKE", "split": "train", "original": "a.mp4"}}},
    "df40": {
        **{f"DF40_train/simswap/frames/001_870/{i:03d}.png": ("fake", ".png") for i in range(10)},
        "DF40_train/StyleGAN2/001/seed0001.png": ("fake", ".png"), "DF40/MidJourney/img_9.jpg": _FP},
    "my-set": {"real/a.jpg": _P, "real/trip/b.mp4": _V, "fake/c.jpg": _FP},
}


def make_mini_corpora(project: Path) -> None:
    """minis/<corpus>/: each corpus's download layout, filled with the sample set's files (faces a detector finds)."""
    pool = {k: iter(v * 4) for k, v in _sample_files(project).items()}
    for corpus, layout in MINI_CORPORA.items():
        for rel, what in layout.items():
            dest = project / "minis" / corpus / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(what, tuple):
                shutil.copyfile(next(pool[what]), dest)
            else:
                dest.write_text(what if isinstance(what, str) else json.dumps(what), encoding="utf-8")


def make_kinds_folder(project: Path) -> None:
    """data/mini-kinds/: the sample set's 44 files in one labelled folder, its fakes dealt into three kinds."""
    out = project / "data" / "mini-kinds"
    out.mkdir(parents=True)
    rows, kinds = [], ("faceswap", "lipsync", "diffusion")
    for split in ("fit", "test"):
        with (project / "data" / "sample" / split / "labels.csv").open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                (out / row["filename"]).symlink_to(project / "data" / "sample" / split / row["filename"])
                media = "video" if row["filename"].endswith(".mp4") else "photo"
                kind = kinds[len(rows) % 3] if row["label"] == "1" else f"real-{media}"
                rows.append({**row, "kind": kind, "origin": f"{split}/{row['origin']}"})
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["filename", "label", "source", "kind", "origin"])
        writer.writeheader()
        writer.writerows(rows)


def make_faces_folder(project: Path) -> None:
    """data/mini-faces/: the sample test folder's reals alone, a labelled folder of real faces (a face pool)."""
    out, test = project / "data" / "mini-faces", project / "data" / "sample" / "test"
    out.mkdir(parents=True)
    with (test / "labels.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "0"]
    for row in rows:
        (out / row["filename"]).symlink_to(test / row["filename"])
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


MINIATURES: dict[str, Callable[[Path], None]] = {"docs/corpora.md": make_mini_corpora,
                                                 "docs/generalisation.md": make_kinds_folder,
                                                 "docs/training.md": make_faces_folder}


# ------------------------------------------------------------------------------------------------------ running

PAGES_AT_ONCE = 2  # CI has two cores; one notebook run keeps about one busy


@dataclass(frozen=True)
class Outcome:
    """How a block went: None when it passed, else why not; and its seconds."""

    failure: str | None
    seconds: float


def _run_block(block: Block, project: Path) -> Outcome:
    script, _ = substituted(block)
    start = time.monotonic()
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-x", "-c", script], cwd=project, env=_environment(project),
                          capture_output=True, text=True, timeout=1500)
    failure = None if done.returncode == 0 else (
        f"{block.id} failed (exit {done.returncode}); it ran:\n{script}\n--- output (last 6000 characters) ---\n"
        + (done.stdout + done.stderr)[-6000:])
    return Outcome(failure, time.monotonic() - start)


def _run_page(page: str, project: Path, outcomes: dict[str, Outcome], after: str | None = None) -> None:
    """Run the page's blocks in order (its miniature first); after a failure the rest only say which one failed."""
    failed = after
    for n, block in enumerate(b for b in RUNNABLE if b.page == page):
        if failed:
            outcomes[block.id] = Outcome(f"needs {failed}, which failed:\n{outcomes[failed].failure}", 0.0)
            continue
        if n == 0 and page in MINIATURES:
            MINIATURES[page](project)
        outcomes[block.id] = _run_block(block, project)
        failed = block.id if outcomes[block.id].failure else None


def _cost(page: str) -> int:
    """Notebook runs and make targets on a page: the longest pages start first."""
    return sum(b.text.count("papermill ") + b.text.count("make ") + 4 * b.text.count("lib.sweep")
               for b in RUNNABLE if b.page == page)


@dataclass
class Runs:
    """Each block's Outcome by id, and the future of each page still running."""

    done: dict[str, Outcome]
    pages: dict[str, Future]

    def outcome(self, block: Block) -> Outcome:
        if block.page in self.pages:
            self.pages[block.page].result()  # re-raises what stopped the page (a time-out, a miniature that failed)
        return self.done[block.id]


@pytest.fixture(scope="module")
def runs(project: Path, request: pytest.FixtureRequest) -> Iterator[Runs]:
    """The README's blocks first (every page starts from the state they leave), then the pages of the selected
    blocks, PAGES_AT_ONCE at a time, the longest first."""
    tests = [item for item in request.session.items if getattr(item, "originalname", "") == "test_command_block_runs"]
    chosen = {t.callspec.params["block"].page for t in tests if not t.callspec.params["block"].skip_reason}
    done: dict[str, Outcome] = {}
    _run_page("README.md", project, done)
    readme_failed = next((b.id for b in RUNNABLE if b.page == "README.md" and done[b.id].failure), None)
    with ThreadPoolExecutor(PAGES_AT_ONCE) as pool:
        yield Runs(done, {page: pool.submit(_run_page, page, project, done, readme_failed)
                          for page in sorted(chosen - {"README.md"}, key=_cost, reverse=True)})


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_command_block_runs(block: Block, runs: Runs) -> None:
    if block.skip_reason:
        pytest.skip(f"{block.id}: {block.skip_reason}")
    outcome = runs.outcome(block)
    print(f"{block.id}: {outcome.seconds:.1f} s")
    if outcome.failure:
        pytest.fail(outcome.failure, pytrace=False)
