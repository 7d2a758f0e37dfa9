"""One self-contained HTML page: sections of text, tables and figures, the figures embedded as base64 PNG (no file
beside it, no script, nothing fetched), so the page can be mailed, archived or opened from any folder."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from ..atomic import write_text

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; margin: 0;
       background: #f6f6f4; }
header { background: #1f2a36; color: #fff; padding: 18px 32px 10px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 2px 0 8px; color: #cfd6de; }
nav a { color: #fff; margin-right: 16px; font-size: 14px; text-decoration: none; border-bottom: 1px dotted #8aa; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 24px 48px; }
section { background: #fff; border-radius: 6px; padding: 8px 24px 16px; margin: 18px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 20px; border-bottom: 2px solid #e3e3e0; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
figure { margin: 12px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f0f0ed; }
td:first-child, th:first-child { text-align: left; }
.note { background: #fff6dd; border-left: 4px solid #e0b000; padding: 6px 10px; font-size: 14px; }
.big td { font-size: 16px; padding: 5px 12px; }
code { background: #f0f0ed; padding: 0 3px; border-radius: 3px; }
.row { display: flex; flex-wrap: wrap; gap: 12px 32px; align-items: flex-start; }
.row > div { min-width: 0; flex: 0 1 auto; }
.row > div:first-child { flex: 1 1 340px; max-width: 600px; }
.kv td:last-child { text-align: left; max-width: 560px; word-break: break-word; }
ul.facts { margin: 6px 0; padding-left: 20px; }
ul.facts li { margin: 3px 0; }
"""


def figure_html(fig: Any, caption: str = "", dpi: int = 100) -> str:
    """A matplotlib figure as an embedded PNG (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    alt = html.escape(caption or "figure", quote=True)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>'


def table_html(df: pd.DataFrame, digits: int = 3, css: str = "") -> str:
    """A table (cells escaped; floats rounded)."""
    if df is None or not len(df):
        return "<p><em>(empty)</em></p>"
    return df.to_html(index=False, escape=True, na_rep="–", classes=css or None, border=0,
                      float_format=lambda x: f"{x:.{digits}f}")


@dataclass
class Section:
    """One titled part of the page; ``id`` is its anchor."""

    id: str
    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, text: str, note: bool = False) -> "Section":
        """A paragraph of plain text (escaped); ``note`` sets it apart as a warning."""
        self.parts.append(f'<p{" class=note" if note else ""}>{html.escape(text)}</p>')
        return self

    def heading(self, text: str) -> "Section":
        """A sub-heading."""
        self.parts.append(f"<h3>{html.escape(text)}</h3>")
        return self

    def bullets(self, items: list[str]) -> "Section":
        """A list of plain-text points (escaped)."""
        self.parts.append('<ul class="facts">' + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>")
        return self

    def side_by_side(self, blocks: list[tuple[str, str]]) -> "Section":
        """Blocks of HTML (from ``figure_html`` / ``table_html``), each under its heading, in a row that wraps."""
        cells = "".join(f"<div>{f'<h3>{html.escape(t)}</h3>' if t else ''}{body}</div>" for t, body in blocks)
        self.parts.append(f'<div class="row">{cells}</div>')
        return self

    def figure(self, fig: Any, caption: str = "") -> "Section":
        """A matplotlib figure, embedded (and closed)."""
        self.parts.append(figure_html(fig, caption))
        return self

    def table(self, df: pd.DataFrame, digits: int = 3, css: str = "") -> "Section":
        """A table, floats to ``digits`` places."""
        self.parts.append(table_html(df, digits, css))
        return self

    def html(self) -> str:
        """The section as HTML."""
        return f'<section id="{html.escape(self.id)}"><h2>{html.escape(self.title)}</h2>\n' + "\n".join(self.parts) \
            + "\n</section>"


@dataclass
class Page:
    """A titled page of sections, with a navigation bar to each."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, id: str, title: str) -> Section:
        """A new section at the end of the page."""
        s = Section(id, title)
        self.sections.append(s)
        return s

    def html(self) -> str:
        """The whole page."""
        nav = " ".join(f'<a href="#{html.escape(s.id)}">{html.escape(s.title)}</a>' for s in self.sections)
        body = "\n".join(s.html() for s in self.sections)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}'
                '</title>\n<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<style>{STYLE}</style>"
                f'</head>\n<body><header><h1>{html.escape(self.title)}</h1><p>{html.escape(self.subtitle)}</p>'
                f"<nav>{nav}</nav></header>\n<main>\n{body}\n</main></body></html>\n")

    def write(self, path: Path) -> Path:
        """Write the page atomically; returns its path."""
        return write_text(Path(path), self.html())
