"""Printing results: a table for people, or JSON (``--json``) for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output is not wrapped at 80 columns: a script reads whole lines.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column.endswith("_at") and isinstance(value, str):  # ISO 8601 to the second
        return value[:19].replace("T", " ")
    return str(value)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str = "nothing here yet"
) -> None:
    if not rows:
        console.print(empty)
        return
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in columns:
        table.add_column(column.upper().replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(column, row.get(column)) for column in columns))
    console.print(table)


def show(
    value: Any, as_json: bool, columns: Sequence[str] | None = None, empty: str = "nothing here yet"
) -> None:
    """A list of records as a table, one record as ``key: value`` lines, or JSON."""
    if as_json:
        print_json(value)
    elif isinstance(value, list):
        print_table(value, columns or (list(value[0]) if value else []), empty)
    else:
        width = max((len(key) for key in value), default=0)
        for key in columns or value:
            console.print(f"{key + ':':<{width + 1}} {value.get(key, '')}")
