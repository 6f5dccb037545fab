"""The UI layer: the consoles and every table edgepack prints. Domain modules return data; this renders it.

Tables never truncate what a user must type back (a target, board or package
name): those columns do not wrap or shorten; descriptions fold instead.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

# Wide enough for the plan and target tables when output is piped (CI logs, tests).
_WIDTH = int(os.environ.get("COLUMNS", "0") or 0) or None
console = Console(highlight=False, width=_WIDTH)
errors = Console(stderr=True, highlight=False, width=_WIDTH)


def table(title: str, *columns: str, names: tuple[str, ...] = (), right: tuple[str, ...] = ()) -> Table:
    """A table whose ``names`` columns are never cut (no wrap, no ellipsis); other columns fold."""
    out = Table(title=title, title_justify="left")
    for column in columns:
        if column in names:
            out.add_column(column, no_wrap=True, overflow="ignore", min_width=len(column))
        else:
            out.add_column(column, overflow="fold", justify="right" if column in right else "left")
    return out
