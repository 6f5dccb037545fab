"""Boards: the fleet table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from edgepack.device.fleet import Row


def summary_table(rows: Sequence[Row], *, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("board", "address", "status", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for r in rows:
        status = "[green]ok[/]" if r.ok else "[bold red]FAILED[/]"
        detail = r.detail if r.ok else r.detail.splitlines()[0]
        table.add_row(r.board, r.destination, status, f"{r.seconds:.1f}", detail)
    return table
