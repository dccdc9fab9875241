"""Markdown for the Prefect artifacts (pure): a titled report with a table, and per-item lists of details."""

from __future__ import annotations

from collections.abc import Sequence


def report(title: str, lead: str | None, header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """`# title`, an optional bold-led sentence, and the table (cells must not hold '|' or newlines)."""
    lines = [f"# {title}", ""]
    if lead is not None:
        lines += [lead, ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def details(sections: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """One `## heading` with a code-formatted bullet per detail, for each section that has details."""
    lines: list[str] = []
    for heading, items in sections:
        if items:
            lines += ["", f"## {heading}", *[f"- `{d}`" for d in items]]
    return lines


def cell(text: str) -> str:
    """Text safe inside a table cell: no '|' (it would split the cell) and no line breaks."""
    return text.replace("|", "\\|").replace("\n", " ")
