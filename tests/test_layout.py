"""The layout is the architecture: the top-level ``lib/*.py`` modules are exactly what a server bundle ships, and
nothing that ships imports a subpackage (training, bundle, scale, corpora, review, sweep) or Dask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lib import bundle
from lib.paths import ROOT

LIB = ROOT / "lib"


def _top_level() -> list[str]:
    return sorted(p.stem for p in LIB.glob("*.py"))


def test_the_bundle_ships_exactly_the_top_level_modules() -> None:
    assert bundle.lib_closure() == _top_level()


def test_no_top_level_module_imports_a_subpackage_or_dask() -> None:
    subpackages = {p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert {"bundle", "corpora", "review", "scale", "sweep", "training"} <= subpackages
    found = []
    for name in _top_level():
        tree = ast.parse((LIB / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                mods = [node.module] if node.module else [a.name for a in node.names]
                found += [f"{name} imports lib.{m}" for m in mods if m.split(".")[0] in subpackages]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{name} imports {m}" for m in mods if m.split(".")[0] in ("dask", "distributed", "lib")]
    assert found == []


def test_a_closure_that_reaches_a_subpackage_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lib" / "training").mkdir(parents=True)
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "predict.py").write_text("from .training import job\n")
    monkeypatch.setattr("lib.bundle.builder.ROOT", tmp_path)
    with pytest.raises(RuntimeError, match="subpackages of lib"):
        bundle.lib_closure(("predict",))
