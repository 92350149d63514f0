"""One self-contained HTML page: tables inline, plots as base64 PNGs; opens from disk with no server or network."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1300px; color: #222; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
.meta { color: #666; font-size: 0.9em; }
nav ol { columns: 2; font-size: 0.9em; }
.notes { background: #fff8e1; border-left: 4px solid #f0b400; padding: 8px 16px; }
.notes li { margin: 2px 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0 16px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f4f6; white-space: normal; vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; }
.footnote, .nodata { color: #555; font-size: 0.85em; max-width: 1100px; }
.nodata { font-style: italic; background: #f6f6f6; padding: 6px 10px; border-left: 3px solid #bbb; }
tr.domain th { background: #e8eef7; text-align: left; font-style: italic; }
td.top1 { background: #1f77b4; color: white; font-weight: bold; } td.top2 { background: #6baed6; }
td.top3 { background: #c6dbef; }
td.pos { color: #1a7f37; font-weight: bold; } td.neg { color: #b42318; font-weight: bold; }
sup { font-size: 0.75em; }
figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85em; }
.scroll { overflow-x: auto; }
details { margin: 8px 0; } summary { cursor: pointer; color: #1f4e8c; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px 16px; }
"""


@dataclass
class Section:
    """One part of the page: a heading, a sentence on what it shows, tables (HTML) and figures (PNG bytes)."""

    anchor: str
    title: str
    intro: str = ""
    tables: list[str] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, png)
    grid: bool = False  # figures two per row
    details: list[tuple[str, str]] = field(default_factory=list)  # (summary, table): long tables, folded


def image_tag(png: bytes, alt: str) -> str:
    """An ``<img>`` carrying the PNG inline as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def render_page(title: str, meta: str, notes: list[str], sections: list[Section]) -> str:
    """The whole page as a string."""
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{meta}</p>',
    ]
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(
            f'<div class="notes" id="notes"><strong>What is missing or excluded</strong>'
            f"<ul>{items}</ul></div>"
        )
    toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    parts.append(f"<nav><ol>{toc}</ol></nav>")
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        if section.intro:
            parts.append(f"<p>{section.intro}</p>")
        parts.extend(f'<div class="scroll">{table}</div>' for table in section.tables)
        parts.extend(
            f'<details><summary>{html.escape(summary)}</summary><div class="scroll">{table}</div></details>'
            for summary, table in section.details
        )
        if section.grid:
            parts.append('<div class="grid">')
        for caption, png in section.figures:
            figcaption = f"<figcaption>{html.escape(caption)}</figcaption>"
            parts.append(f"<figure>{image_tag(png, caption)}{figcaption}</figure>")
        if section.grid:
            parts.append("</div>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
