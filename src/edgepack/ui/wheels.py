"""Native wheels: the preflight table."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table

from edgepack.config import Target
from edgepack.wheels.preflight import Row


def render(rows: Sequence[Row], target: Target) -> Table:
    py = "cp" + target.python.replace(".", "")
    source = f"binary wheel for {py} {target.wheel_arch} (glibc {target.debian.glibc})"
    if target.deps == "debian":
        source = f"Debian {target.debian.suite} {target.arch} package"
    table = Table(
        "requirement",
        source,
        "recipe",
        "action",
        box=box.SIMPLE_HEAD,
        title=f"preflight: {target.name}",
        title_justify="left",
    )
    for row in rows:
        none = "[red]not locked[/]" if target.deps == "debian" else "[red]none[/]"
        wheel = row.wheel or none
        table.add_row(row.requirement, wheel, row.recipe or "-", row.action)
    return table
