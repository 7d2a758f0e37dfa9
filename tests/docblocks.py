"""Read the project's Markdown the way GitHub renders it: its fenced command blocks (with the ``<!-- test: ... -->``
marks above them), its relative links, and its headings' anchors.

``python tests/docblocks.py`` lists every command block and how ``tests/test_docs.py`` exercises it.

Marks, on the lines right above a block's opening fence (blank lines between are allowed):
    <!-- test: skip: REASON -->     never run; the reason is printed as the test's skip reason
    <!-- test: needs shared-data --> needs the real data in ../shared/data: skipped, saying so
    <!-- test: needs gpu -->         needs a CUDA GPU: skipped, saying so
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND_LANGS = ("bash", "sh", "console")
NEEDS = {"shared-data": "needs the real data in ../shared/data (not in CI)",
         "gpu": "needs a CUDA GPU (CI has none)"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_MARK = re.compile(r"^\s*<!--\s*test:\s*(.*?)\s*-->\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")


@dataclass(frozen=True)
class Block:
    """One fenced command block: where it is, its language, its shell text and the test marks above it."""

    page: str
    line: int
    lang: str
    text: str
    marks: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        """Why the block is not run (from its marks), or None when it runs."""
        for mark in self.marks:
            if mark.startswith("skip:"):
                return mark[len("skip:"):].strip() or "no reason given"
            if mark.startswith("needs "):
                what = mark[len("needs "):].strip()
                if what not in NEEDS:
                    raise ValueError(f"{self.id}: unknown mark 'needs {what}' (known: {', '.join(NEEDS)})")
                return NEEDS[what]
            raise ValueError(f"{self.id}: unknown mark {mark!r} (known: 'skip: REASON', 'needs shared-data|gpu')")
        return None


def pages(root: Path = ROOT) -> list[Path]:
    """README.md, then every page under docs/ in name order, then the README of each generated folder."""
    found = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    found += [root / d / "README.md" for d in ("data", "models", "kernels", "submissions")]
    return [p for p in found if p.is_file()]


def _shell_text(lang: str, lines: list[str]) -> str:
    """The commands of a block: all of it, or for ``console`` only the lines after a ``$ `` prompt."""
    if lang != "console":
        return "\n".join(lines)
    return "\n".join(line.split("$ ", 1)[1] for line in lines if line.lstrip().startswith("$ "))


def blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced command blocks of one Markdown file, in order."""
    out, marks, fence, body = [], [], None, []
    page = path.relative_to(root).as_posix()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if fence:
            if line.strip().startswith(fence[0]) and not line.strip().strip(fence[0][0]):
                if fence[1] in COMMAND_LANGS:
                    out.append(Block(page, fence[2], fence[1], _shell_text(fence[1], body), tuple(fence[3])))
                fence, body = None, []
            else:
                body.append(line)
            continue
        m = _FENCE.match(line)
        if m:
            fence, marks = (m.group(2), m.group(3).lower(), n, marks), []
            continue
        mark = _MARK.match(line)
        if mark:
            marks.append(mark.group(1))
        elif line.strip():
            marks = []
    return out


def all_blocks(root: Path = ROOT) -> list[Block]:
    return [b for p in pages(root) for b in blocks(p, root)]


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line outside fenced code."""
    out, fence = [], None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _FENCE.match(line)
        if fence:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if m:
            fence = m.group(2)
            continue
        out.append((n, line))
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline link and link definition outside code."""
    found = []
    for n, line in prose_lines(path):
        text = _INLINE_CODE.sub("", line)
        found += [(n, m.group(1)) for m in _LINK.finditer(text)]
        ref = _REF_DEF.match(text)
        if ref:
            found.append((n, ref.group(1)))
    return found


def _heading_text(raw: str) -> str:
    """A heading's text as GitHub renders it: inline code, links, emphasis and HTML reduced to their text."""
    text = re.sub(r"\s#+\s*$", "", raw.strip())
    text = _INLINE_CODE.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"(\*\*|\*|__)(.+?)\1", r"\2", text)


def slug(text: str) -> str:
    """GitHub's anchor for a heading text (github-slugger): lower case, punctuation and symbols dropped, spaces
    to hyphens; letters, digits, marks, ``_`` and ``-`` kept."""
    kept = [c for c in text.strip().lower()
            if c in " -_" or unicodedata.category(c)[0] in "LNM"]
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the headings of ``path`` (a repeated heading gets -1, -2, ...)."""
    counts: dict[str, int] = {}
    found = set()
    for _, text in prose_lines(path):
        m = re.match(r"^\s{0,3}(#{1,6})\s+(.*)$", text)
        if not m:
            continue
        base = slug(_heading_text(m.group(2)))
        n = counts.get(base, 0)
        found.add(f"{base}-{n}" if n else base)
        counts[base] = n + 1
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of ``path`` whose file or anchor does not exist, as 'page:line: target: why'."""
    problems = []
    for n, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root).as_posix()}:{n}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif root.resolve() not in [dest, *dest.parents]:
            problems.append(f"{where}: leaves the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with that anchor in {dest.name}")
    return problems


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests"))
    from test_docs import describe  # noqa: E402  (the substitutions live in the test)

    for line in describe():
        print(line)
