"""Build output: the plan, the summary of a build, the multi-target table, lock drift."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgepack.errors import EdgepackError
from edgepack.locks.drift import Drift
from edgepack.pipeline.context import Build
from edgepack.pipeline.executor import Events
from edgepack.pipeline.steps import Step
from edgepack.ui import table


def plan_table(steps: list[Step], cached: dict[str, bool], *, title: str = "build plan") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("step", "what", "key", "cached"):
        table.add_column(col)
    for s in steps:
        table.add_row(s.name, s.summary, s.key[:12], "yes" if cached[s.name] else "no: will run")
    return table


def drift_table(drift: Sequence[Drift]) -> Table:
    """What moved in the locks: the mirror dropped a locked version, the build took today's."""
    table = Table(title="lock drift: re-resolved, lock rewritten", title_justify="left")
    for col in ("lock", "package", "locked", "now", "suite"):
        table.add_column(col, overflow="fold")
    for d in drift:
        table.add_row(d.lock, d.package, d.locked, d.now, d.suite)
    return table


def summary_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"edgepack build {report['target']} ({report['platform']})", title_justify="left")
    table.add_column("step")
    table.add_column("cached")
    table.add_column("seconds", justify="right")
    for s in report["steps"]:
        table.add_row(s["name"], "hit" if s["cached"] else "built", f"{s['seconds']:.1f}")
    return table


def render_summary(report: dict[str, Any], console: Console) -> None:
    console.print(summary_table(report))
    img, smoke = report["image"], report["smoke"]
    emu, host = smoke["emulated"], smoke["host"]
    worst = max((c["max_abs"] for c in smoke["checks"]), default=0.0)
    console.print(f"image   {img['tag']}  {img['id'][:19]}  {img['bytes'] / 1e6:.1f} MB  -> {img['tar']}")
    console.print(f"model   {report['model']['source']}  sha256 {report['model']['sha256'][:16]}")
    where = smoke.get("runs_on") or f"QEMU -cpu {smoke['qemu_cpu']}"
    providers = ", ".join(smoke.get("providers") or ["CPUExecutionProvider"])
    console.print(f"smoke   [green]passed[/], {where}, {providers}: max abs diff {worst:.2e}")
    unit = emu["latency_ms"]["unit"]
    for name, result in (("emulated", emu), ("host", host)):
        lat = result["latency_ms"]
        rtf = f", RTF {result['rtf']:.3f}" if result.get("rtf") else ""
        console.print(
            f"  {name:<9} latency per {unit}: p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms{rtf}"
        )
    if report.get("qemu_cpu"):
        console.print(
            "  [dim](emulated time is QEMU's, not the board's: measure on hardware for real figures)[/]"
        )

    quant = report.get("quantized_latency") or {}
    if "ratio" in quant:
        console.print(
            f"  quantized {quant['mode']} vs fp32, {quant['where']} (1 thread, median of {quant['runs']}): "
            f"{quant['fp32_ms']:.2f} -> {quant['quantized_ms']:.2f} ms ({quant['ratio']:.2f}x)"
        )
    if quant.get("warning"):
        console.print(f"  [yellow]warning:[/] {quant['warning']}")
    if smoke.get("memory_mb") and "peak_rss_mb" in emu:  # QEMU's own memory is in the figure too
        console.print(
            f"  memory    peak RSS {emu['peak_rss_mb']:.1f} MB within the board's {smoke['memory_mb']} MB"
        )


def targets_table(rows: list[tuple[str, ...]]) -> Table:
    """The summary of a multi-target build: one row per target, failed ones with their reason."""
    table = Table(title="targets", title_justify="left")
    for col in ("target", "platform", "smoke ran", "result", "seconds", "image / reason"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for row in rows:
        style = "green" if row[3] == "ok" else "red"
        table.add_row(*row[:3], f"[{style}]{row[3]}[/]", *row[4:])
    return table


def targets_list(rows: Sequence[dict[str, Any]]) -> Table:
    """``edgepack targets``: the names never cut (they are typed back), descriptions folded."""
    out = table("targets", "name", "from", "platform", "cpu", "model", "description",
                names=("name", "from", "platform", "cpu", "model"))  # fmt: skip
    for r in rows:
        out.add_row(r["name"], r["source"], r["platform"], r["cpu"], r["model"], r["description"])
    return out


def progress(console: Console, several: bool) -> Events:
    """One line per step as it starts (with the target's name when several build at once) or fails."""

    def started(target: str, step: Step, cached: bool) -> None:
        state = "[green]cached[/]" if cached else "running"
        who = f"[dim]{target:>18}[/] " if several else ""
        console.print(f"{who}[dim]{step.name:>8}[/] {state}: {escape(step.summary)}", soft_wrap=True)

    def failed(target: str, step: Step, error: EdgepackError) -> None:
        who = f"[dim]{target:>18}[/] " if several else ""
        first = escape(error.message.splitlines()[0])
        console.print(f"{who}[dim]{step.name:>8}[/] [red]FAILED[/]: {first}", soft_wrap=True)

    return Events(started=started, failed=failed)


def smoke_input_line(b: Build) -> str:
    """What the smoke test will feed the model (``--dry-run``): its source, and the audio or inputs."""
    return f"smoke   input: {b.target.smoke.audio} (the target's smoke.audio), {b.target.smoke.runs} runs"
