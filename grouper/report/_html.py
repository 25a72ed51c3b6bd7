"""The page frame every report shares: style, head, tables, escaping, and the atomic write.

One place for it so that the five reports look alike and every text reaches the page escaped.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Callable

import numpy as np

from grouper.io import atomic

esc = html.escape

# One page frame for every report: the base style plus each report's own classes.
BASE_CSS = """body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;max-width:1100px;margin:2em auto;
color:#222} table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 9px;
text-align:left} th{background:#f2f2f2} img{max-width:100%;display:block} .note{color:#888}"""
SHADES_CSS = "td.hi{background:#fbe3d6} td.lo{background:#dcebf7} td.ok{background:#e2f0d9}"
CODES_CSS = ".codes{font-family:monospace;line-height:1.6} code{font-size:.85em}"
SETTLEMENT_CSS = ".warn{background:#fff3cd;padding:.5em} td.hi{background:#fbe3d6} td.lo{background:#e2f0d9}"


def write_page(path: str | os.PathLike, overwrite: bool, build: Callable[[], str]) -> Path:
    """Write the page ``build()`` returns to ``path`` atomically: an existing file is refused
    (unless ``overwrite``) before ``build`` draws anything, and a failed build leaves no file."""
    path = Path(path)
    with atomic(path, overwrite) as tmp:
        Path(tmp).write_text(build(), encoding="utf-8")
    return path


def page_head(title: str, css: str = SHADES_CSS, *, heading: str | None = None) -> str:
    """The page up to its <h1> (``heading``, by default the title)."""
    return (f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>{BASE_CSS}\n{css}</style></head><body>\n<h1>{esc(heading or title)}</h1>")


def figures_html(figures) -> str:
    """Each (title, PNG as base64) as a heading and an embedded image; missing plots left out."""
    return "".join(f"<h2>{esc(t)}</h2><img src=\"data:image/png;base64,{png}\" alt=\"{esc(t)}\">"
                   for t, png in figures if png)


def table_html(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{esc(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>" if rows else "<p class=note>无 / none</p>"


def cells_html(head: list[str], rows: list[list]) -> str:
    """Like ``table_html``, but a cell may be ``(value, css class)`` to shade it."""
    def td(c):
        v, cls = c if isinstance(c, tuple) else (c, "")
        return f"<td class={cls}>{esc(str(v))}</td>" if cls else f"<td>{esc(str(v))}</td>"
    th = "".join(f"<th>{esc(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>" if rows else "<p class=note>无 / none</p>"


def num(v, fmt: str) -> str:
    """A number for a cell; "–" for a missing or non-finite one."""
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)
