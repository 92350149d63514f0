"""Plain writers for result tables: Markdown, LaTeX, HTML and CSV, without optional pandas dependencies."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

TABLE_FORMATS = ("md", "csv", "tex")


def cell_text(value, digits: int = 3) -> str:
    """How one value prints in a table: floats rounded, missing values as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _rows(frame: pd.DataFrame, digits: int) -> tuple[list[str], list[list[str]]]:
    flat = frame.reset_index() if _has_named_index(frame) else frame
    header = [str(c) for c in flat.columns]
    rows = [[cell_text(v, digits) for v in row] for row in flat.itertuples(index=False)]
    return header, rows


def _has_named_index(frame: pd.DataFrame) -> bool:
    return any(name is not None for name in frame.index.names)


def frame_to_markdown(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (named index levels become leading columns)."""
    if frame.empty:
        return "_No data._\n"
    header, rows = _rows(frame, digits)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    replace = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "–": "--",
        "−": "$-$",
    }
    return "".join(replace.get(ch, ch) for ch in text)


def frame_to_latex(frame: pd.DataFrame, *, digits: int = 3, caption: str | None = None) -> str:
    """A ``booktabs`` tabular (in a ``table`` float when a caption is given)."""
    if frame.empty:
        return "% no data\n"
    header, rows = _rows(frame, digits)
    spec = (
        "l" * (len(header) - frame.shape[1]) + "r" * frame.shape[1]
        if _has_named_index(frame)
        else "l" * len(header)
    )
    lines = [
        r"% needs \usepackage{booktabs}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    body = "\n".join(lines)
    if caption:
        body = (
            "\\begin{table}[t]\n\\centering\n"
            + body
            + f"\n\\caption{{{latex_escape(caption)}}}\n\\end{{table}}"
        )
    return body + "\n"


def frame_to_html(frame: pd.DataFrame, *, digits: int = 3, css_class: str = "data") -> str:
    """An HTML ``<table>`` with escaped cells."""
    if frame.empty:
        return "<p><em>No data.</em></p>"
    header, rows = _rows(frame, digits)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def write_table(
    frame: pd.DataFrame,
    out: Path,
    stem: str,
    *,
    title: str,
    formats=TABLE_FORMATS,
    digits: int = 3,
    markdown: str | None = None,
    latex: str | None = None,
) -> list[Path]:
    """Write ``<stem>.md``, ``.csv`` and ``.tex`` (those in ``formats``) and return their paths.

    ``markdown`` and ``latex`` replace the generic rendering (tables with marks).
    """
    written = []
    if "md" in formats:
        path = out / f"{stem}.md"
        path.write_text(
            f"# {title}\n\n" + (markdown or frame_to_markdown(frame, digits=digits)), encoding="utf-8"
        )
        written.append(path)
    if "csv" in formats:
        path = out / f"{stem}.csv"
        frame.to_csv(path, index=_has_named_index(frame), float_format="%.6g")
        written.append(path)
    if "tex" in formats:
        path = out / f"{stem}.tex"
        path.write_text(latex or frame_to_latex(frame, digits=digits, caption=title), encoding="utf-8")
        written.append(path)
    return written
