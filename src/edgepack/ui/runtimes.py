"""The runtime comparison (``model.runtimes``) as a table, the choice and why."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def render(doc: dict[str, Any], console: Console) -> None:
    table = Table(
        box=box.SIMPLE_HEAD,
        caption="cos: least output cosine vs the fp32 export; model, rt (the runtime on the board): MB; "
        "host, board: ms, medians; start: ms to import the runtime and load the model on the board; "
        "RSS: peak MB there",
        title=f"runtimes for {doc['model']} on {doc['target']} ({doc['runs_on']})",
        title_justify="left",
    )
    columns = ("runtime", "ships", "cos", "model", "rt", "host", "board", "start", "RSS")
    for col in columns:
        table.add_column(col, justify="left" if col in ("runtime", "ships") else "right", no_wrap=True)
    for r in doc["rows"]:
        parity = (r.get("parity") or {}).get(r.get("chosen") or "", {})
        table.add_row(
            r["runtime"],
            r.get("chosen") or "[red]-[/]",
            _num(parity.get("cosine"), "{:.4f}"),
            _num(r["model_bytes"] / 1e6 if r["model_bytes"] else None, "{:.2f}"),
            _num(r["runtime_bytes"] / 1e6 if r["runtime_bytes"] else None, "{:.1f}"),
            _num(r.get("host_ms"), "{:.3f}"),
            _num(r.get("emulated_ms"), "{:.2f}"),
            _num(r.get("start_ms"), "{:.0f}"),
            _num(r.get("peak_rss_mb"), "{:.0f}"),
        )
    console.print(table)
    for r in doc["rows"]:
        if r["available"]["package"]:
            console.print(f"  [dim]{r['runtime']}: {escape(r['available']['package'])} on the board[/]")
        if r.get("why_not") or r.get("not_buildable"):
            console.print(f"  [yellow]{r['runtime']}[/]: {escape(r.get('why_not') or r['not_buildable'])}")
        for note in (r.get("converted") or {}).get("notes", []):
            console.print(f"  [dim]{r['runtime']}: {escape(note)}[/]")
    choice = doc["choice"]
    if choice.get("runtime"):
        pick = f"[green]{choice['runtime']}[/] ({choice['file']})"
        console.print(f"[bold]auto[/] would choose {pick}: {escape(choice['why'])}")
    else:
        console.print("[red]no runtime passed[/] (the reasons are above)")
    console.print(
        f"input   {escape(doc['fed'])}; host {doc['runs']['host']} runs, board {doc['runs']['board']} runs, "
        "1 thread, medians"
    )
    console.print("[dim](board time is QEMU's: good for ratios between runtimes, not absolute figures)[/]")


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
