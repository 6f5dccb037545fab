"""The doctor's table: one row per toolchain check."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgepack.host.checks import Check


def render_checks(checks: Sequence[Check], console: Console, *, fix: bool = True) -> None:
    table = Table("check", "status", "found", "action", box=box.SIMPLE_HEAD)
    for check in checks:
        if not check.ok:
            status = Text("FAIL", style="bold red")
        else:
            status = Text("fixed", style="yellow") if check.fixed else Text("ok", style="green")
        table.add_row(check.name, status, Text(check.found), Text(check.action))
    console.print(table)
    failed = [check.name for check in checks if not check.ok]
    if failed:
        console.print(Text(f"{len(failed)} check(s) failed: {', '.join(failed)}", style="red"))
    changed = [check.name for check in checks if check.fixed]
    if fix:  # without --fix nothing is ever changed: saying so would only confuse
        console.print(Text(f"changed: {', '.join(changed)}" if changed else "nothing changed"))
