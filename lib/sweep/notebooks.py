"""Every kit notebook's parameter schema in one place, and what is generated from them: each notebook's parameters
cell (papermill needs a literal one; ``papermill --help-notebook`` prints its comments) and docs/parameters.md.

    python -m lib.sweep.notebooks          # rewrite the parameters cells and docs/parameters.md from the schemas
    python -m lib.sweep.notebooks --check  # compare only: exit 1 naming what is out of date

It lives with the sweep, the one part of the kit that works on any notebook's parameters, so that it can see the
schemas of every layer (train's imports torch: they are imported when asked for).
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..parameters import Schema, literal
from ..paths import DOCS, NOTEBOOKS

PAGE = DOCS / "parameters.md"
COMMAND = "python -m lib.sweep.notebooks"
# what each notebook is for, one line on the page
ABOUT = {"preprocess.ipynb": "fill the crop cache (decode, detect, crop) ahead of inference",
         "infer.ipynb": "a media folder → predictions.csv and submission.csv",
         "train.ipynb": "labelled folders → a model folder that infer.ipynb and the bundle load",
         "eda.ipynb": "what is in a data folder, and does it look like the competition's test set",
         "ensemble.ipynb": "combine the predictions of several runs",
         "report.ipynb": "know your detector: one HTML page with curves and intervals, robustness, heat maps and "
                         "timelines",
         "sweep.ipynb": "Optuna over another notebook's parameters (also `python -m lib.sweep --name value`)",
         "task.ipynb": "the scoring-server bundle's notebook (`python -m lib.bundle build` writes its parameters cell "
                       "with the experiment's values)"}


def schemas() -> dict[str, Schema]:
    """Every kit notebook's schema by file name: the seven of notebooks/ and the server bundle's task.ipynb."""
    from ..parameters import INFER, PREPROCESS, TASK
    from ..review.eda import EDA
    from ..review.ensemble import ENSEMBLE
    from ..review.report import REPORT
    from ..training.parameters import TRAIN
    from .study import SWEEP

    return {s.notebook: s for s in (PREPROCESS, INFER, TRAIN, EDA, ENSEMBLE, REPORT, SWEEP, TASK)}


def cell_lines(source: str) -> list[tuple[str, str, str, str]]:
    """(name, annotation, value as source, comment) of each ``name: type = value  # comment`` line of a cell."""
    comments = {t.start[0]: t.string.lstrip("#").strip()
                for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT}
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            value = literal(ast.literal_eval(node.value))
            out.append((node.target.id, ast.unparse(node.annotation), value, comments.get(node.lineno, "")))
        else:
            out.append((ast.unparse(node), "", "", ""))  # anything else is out of place in a parameters cell
    return out


def cell_problems(schema: Schema, source: str, defaults: bool = True) -> list[str]:
    """How a parameters cell differs from its schema (names and order, annotations, defaults unless ``defaults`` is
    False, comments); [] when it matches."""
    found = cell_lines(source)
    want = [(p.name, p.type.__name__, literal(p.default) if defaults else "", p.help) for p in schema.params]
    if not defaults:
        found = [(n, a, "", c) for n, a, _, c in found]
    if [f[0] for f in found] != [w[0] for w in want]:
        return [f"{schema.notebook}: parameters {[f[0] for f in found]} != the schema's {[w[0] for w in want]}"]
    return [f"{schema.notebook}: {w[0]}: the cell has {f[1:]}, the schema {w[1:]}" for f, w in zip(found, want)
            if f != w]


def parameters_cell(path: Path) -> Any:
    """The notebook (nbformat) and its cell tagged ``parameters``."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return nb, next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))


def page() -> str:
    """docs/parameters.md: one table per notebook."""
    head = f"""# Notebook parameters

Every parameter of every notebook: its name, type and default, and what it means. Set them in a params file
(`papermill -f params/<exp>.yaml`: flat keys named exactly like the parameters) or one at a time (`-p frames 40`);
`papermill --help-notebook notebooks/<name>.ipynb` prints the same list. A wrong value stops the run before any work
starts, with a message naming the parameter and its valid values.

This page is generated from the notebooks' schemas (`lib/parameters.py` and the modules it names); do not edit it.
After changing a parameter there, write the notebooks' parameters cells and this page again (a test fails while
either is out of date):

```
{COMMAND}
{COMMAND} --check
```
"""
    parts = [head] + [f"## {name}\n\n{ABOUT[name][0].upper() + ABOUT[name][1:]}.\n\n{s.table()}\n"
                      for name, s in schemas().items()]
    return "\n".join(parts)


def stale() -> list[str]:
    """What is out of date with the schemas: a notebook's parameters cell, or the page."""
    problems = []
    for name, schema in schemas().items():
        if (NOTEBOOKS / name).is_file():
            problems += cell_problems(schema, parameters_cell(NOTEBOOKS / name)[1].source)
    if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != page():
        problems.append(f"{PAGE} is not the page the schemas give")
    return problems


def write() -> list[Path]:
    """Write every notebook's parameters cell and the page from the schemas; returns the files that changed."""
    import nbformat

    changed = []
    for name, schema in schemas().items():
        path = NOTEBOOKS / name
        if path.is_file():
            nb, cell = parameters_cell(path)
            if cell.source != schema.cell():
                cell.source = schema.cell()
                write_text(path, nbformat.writes(nb) + "\n")
                changed.append(path)
    if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != page():
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        write_text(PAGE, page())
        changed.append(PAGE)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 naming what is out of date")
    if ap.parse_args(argv).check:
        problems = stale()
        print("\n".join(problems) if problems else "the parameters cells and docs/parameters.md match the schemas")
        return 1 if problems else 0
    changed = write()
    print("\n".join(f"wrote {p}" for p in changed) or "nothing to write: all up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
