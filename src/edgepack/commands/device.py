"""``edgepack device.*``: pick boards, run the action on each (fleet), render."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.tasks import Task
from rich.markup import escape
from rich.table import Table

from edgepack.commands.boundary import Body, command, given, integer, number
from edgepack.config import Project, Target, find_project, load_target
from edgepack.device import bench as device_bench
from edgepack.device import deploy as device_deploy
from edgepack.device import fleet
from edgepack.device import regress as device_regress
from edgepack.device.inventory import BoardSpec, Mode, load_inventory, parse_host
from edgepack.device.ssh import Board
from edgepack.errors import ConfigError, Reported
from edgepack.runner import Runner
from edgepack.ui import console
from edgepack.ui.device import summary_table


@dataclass(frozen=True)
class Selection:
    """Which boards: ``--host`` (one-off), ``--board`` names, ``--label``, or ``--all`` of the inventory."""

    target: str | None = None
    hosts: tuple[str, ...] = ()
    boards: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    all: bool = False
    inventory: str | None = None
    key: str | None = None
    known_hosts: str | None = None
    mode: Mode | None = None
    jobs: int = 4
    root: str = "."  # the project: targets/, build/, baselines/

    @property
    def project(self) -> Project:
        return find_project(Path(self.root))


def inventory_path(project: Project, given: str | None) -> Path:
    return Path(given or os.environ.get("EDGEPACK_INVENTORY") or project.root / "boards.yaml")


def select(project: Project, sel: Selection) -> list[BoardSpec]:
    if sel.hosts:
        if not sel.target:
            raise ConfigError("--host needs --target: which target is the board?")
        return [
            parse_host(h, target=sel.target, key=sel.key, known_hosts=sel.known_hosts, mode=sel.mode)
            for h in sel.hosts
        ]
    if not (sel.boards or sel.labels or sel.all):
        raise ConfigError(
            "no board given.", hint="Use --host user@address, --board NAME, --label L or --all."
        )
    inv = load_inventory(inventory_path(project, sel.inventory), targets=project.target_names())
    specs = inv.select(names=sel.boards, labels=sel.labels)
    if sel.target:
        specs = [s for s in specs if s.target == sel.target] or _none_of(sel.target, inv.path)
    return [replace(s, mode=sel.mode) if sel.mode else s for s in specs]


def _none_of(target: str, path: Path) -> list[BoardSpec]:
    raise ConfigError(f"{path}: no selected board is a {target}.")


def _fleet(sel: Selection, title: str, action: Any) -> list[fleet.Row]:
    project = sel.project
    specs = select(project, sel)
    rows = fleet.run_fleet(specs, lambda spec: action(project, spec), jobs=sel.jobs)
    if len(rows) > 1 or rows[0].ok:  # one failed board: its error alone says it (see _finish)
        console.print(summary_table(rows, title=title))
    for row in rows:
        if not row.ok and len(specs) > 1:
            console.print(f"[red]{row.board}[/]: {escape(row.detail)}", soft_wrap=True)
    return rows


def _finish(rows: list[fleet.Row]) -> None:
    """One board: its own error (one or two lines, its exit code); a fleet: the table says it all."""
    if len(rows) == 1 and not rows[0].ok:
        console.print(f"[bold red]error:[/] {escape(rows[0].detail)}", soft_wrap=True)
    code = fleet.exit_code(rows)
    if code:
        raise Reported(code)


@cache
def _target(root: Path, name: str) -> Target:
    return load_target(find_project(root), name)


def deploy(sel: Selection) -> list[fleet.Row]:
    def action(project: Project, spec: BoardSpec) -> tuple[str, dict[str, Any]]:
        target = _target(project.root, spec.target)
        runner = Runner(echo=False)
        with Board(spec, runner=runner) as board:
            facts = device_deploy.probe(board, target)
            device_deploy.check_board(facts, spec, target, None)  # before building any artifact
            artifact = device_deploy.prepare_artifact(project, target, mode=spec.mode, runner=runner)
            result = device_deploy.deploy(board, target, artifact)
        device_bench.record(project, target, board=spec.name, kind="deploy", result=result.as_dict())
        if not result.changed:
            return f"{artifact.short_id} already deployed ({spec.mode})", result.as_dict()
        t = result.transfer
        moved = f"{t.sent / 1e6:.1f} MB in {t.seconds:.1f} s" if t else ""
        resumed = f", resumed at {t.resumed_from / 1e6:.1f} MB" if t and t.resumed_from else ""
        return f"{artifact.short_id} deployed ({spec.mode}): {moved}{resumed}", result.as_dict()

    rows = _fleet(sel, "device.deploy", action)
    _finish(rows)
    return rows


def smoke(sel: Selection, *, runs: int | None = None) -> list[fleet.Row]:
    def action(project: Project, spec: BoardSpec) -> tuple[str, dict[str, Any]]:
        target = _target(project.root, spec.target)
        with Board(spec, runner=Runner(echo=False)) as board:
            result = device_bench.board_smoke(board, target, project, runs=runs)
        device_bench.record(project, target, board=spec.name, kind="smoke", result=result)
        worst = max((c["max_abs"] for c in result["checks"]), default=0.0)
        lat = result["board"]["latency_ms"]
        return f"passed: max abs diff {worst:.2e}, p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms", result

    rows = _fleet(sel, "device.smoke", action)
    _render_comparison(sel.project, rows)
    _finish(rows)
    return rows


def bench(sel: Selection, *, runs: int, warmup: int) -> list[fleet.Row]:
    def action(project: Project, spec: BoardSpec) -> tuple[str, dict[str, Any]]:
        target = _target(project.root, spec.target)
        with Board(spec, runner=Runner(echo=False)) as board:
            result = device_bench.board_bench(board, target, project, runs=runs, warmup=warmup)
        device_bench.record(project, target, board=spec.name, kind="bench", result=result)
        lat = result["latency_ms"]
        return (
            f"p50 {lat['p50']:.2f} / p95 {lat['p95']:.2f} / p99 {lat['p99']:.2f} ms, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB, CPU {result['cpu_percent']:.0f}%"
        ), result

    rows = _fleet(sel, "device.bench", action)
    _render_comparison(sel.project, rows)
    _finish(rows)
    return rows


def metrics(sel: Selection, *, seconds: float) -> list[fleet.Row]:
    """Run the runtime's metrics service on each board for ``seconds`` and show what it exposed."""

    def action(project: Project, spec: BoardSpec) -> tuple[str, dict[str, Any]]:
        target = _target(project.root, spec.target)
        with Board(spec, runner=Runner(echo=False)) as board:
            device_bench.require_deployed(board, target, project)
            command = ["serve", "--duration", str(seconds), "--interval", str(seconds), "--port", "0"]
            snap = device_bench.run_json(
                board, target, command, what="metrics service", timeout=seconds + target.smoke.timeout_s
            )
        lat = snap["latency_ms"]
        return (
            f"{snap['requests']} calls, p95 {lat.get('p95', 0):.2f} ms, {snap['errors']} errors, "
            f"RSS {snap['rss_bytes'] / 1e6:.0f} MB, model {snap['model'].get('sha256', '')[:12]}"
        ), snap

    rows = _fleet(sel, "device.metrics", action)
    _finish(rows)
    return rows


def run_regress(target_name: str, *, boards: Sequence[str], update_baseline: bool, root: str = ".") -> None:
    project = find_project(Path(root))
    target = load_target(project, target_name)
    findings, notes = device_regress.regress(
        project, target, boards=list(boards) or None, update_baseline=update_baseline
    )
    if findings:
        table = Table(title=f"device.regress {target.name}", title_justify="left")
        for col in ("board", "metric", "baseline", "new", "change", "threshold"):
            table.add_column(col)
        for f in findings:
            t = f.threshold
            table.add_row(
                f.board,
                f.metric,
                f"{f.baseline:.4g}",
                f"{f.new:.4g}",
                f"{f.change:+.1%}",
                f"{t.worse} by >{t.rel:.0%} and >{t.abs:g}",
            )
        console.print(table)
    for note in notes:
        console.print(f"[yellow]{note}[/]")
    if findings or update_baseline:
        console.print("[green]no regression[/]" if findings else "baseline recorded")


def _render_comparison(project: Project, rows: Sequence[fleet.Row]) -> None:
    """Host, QEMU and boards side by side (per-call latency, ms)."""
    table = Table(title="latency per call: host, QEMU, boards", title_justify="left")
    for col in ("where", "p50", "p95", "p99", "RTF", "peak RSS MB", "CPU %", "temp °C", "throttled"):
        table.add_column(col, justify="left" if col == "where" else "right")
    shown: set[str] = set()
    for row in rows:
        if not row.ok or row.result is None:
            continue
        report = _report_for(project, row.result.get("image_id", ""))
        if report and report["target"] not in shown:
            shown.add(report["target"])
            image_row = f"QEMU {report['qemu_cpu']}" if report.get("qemu_cpu") else "image (native)"
            for name, res in (("host", report["smoke"]["host"]), (image_row, report["smoke"]["emulated"])):
                table.add_row(name, *_cells(res))
        result = row.result.get("board", row.result)
        thermal = row.result.get("thermal", {}).get("after", {})
        temp = thermal.get("vcgencmd_c") or max(thermal.get("zones_c", {}).values(), default=None)
        table.add_row(
            row.board,
            *_cells(result, row.result),
            f"{temp:.1f}" if temp else "",
            thermal.get("throttled", ""),
        )
    console.print(table)


def _report_for(project: Project, image_id: str) -> dict[str, Any] | None:
    import json

    for path in project.build_dir.glob("*/report.json"):
        report: dict[str, Any] = json.loads(path.read_text())
        if report.get("image", {}).get("id") == image_id:
            return report
    return None


def _cells(result: dict[str, Any], extra: dict[str, Any] | None = None) -> list[str]:
    lat, extra = result.get("latency_ms", {}), extra or {}
    fmt = [f"{lat[p]:.2f}" if p in lat else "" for p in ("p50", "p95", "p99")]
    rtf = f"{result['rtf']:.3f}" if result.get("rtf") else ""
    rss = f"{extra['peak_rss_mb']:.0f}" if extra.get("peak_rss_mb") else ""
    cpu = f"{extra['cpu_percent']:.0f}" if extra.get("cpu_percent") else ""
    return [*fmt, rtf, rss, cpu]


# -- the tasks ---------------------------------------------------------------------------------------

BOARDS = {
    "target": "target name (required with --host; with an inventory, only boards of that target)",
    "host": "user@address[:port] of a one-off board (repeatable)",
    "board": "a board of the inventory, by name (repeatable)",
    "label": "boards of the inventory with this label (repeatable)",
    "all": "every board of the inventory",
    "inventory": "inventory file (default: boards.yaml, or $EDGEPACK_INVENTORY)",
    "key": "private key for --host",
    "known_hosts": "known_hosts file for --host (default: ~/.ssh/known_hosts)",
    "mode": "docker (docker load) or bundle (rootfs run with chroot): overrides the inventory",
    "jobs": "boards worked on at the same time",
}
MANY = ["host", "board", "label"]


def board_task(name: str, *, help: dict[str, str] | None = None) -> Callable[[Body], Task[Body]]:
    """The board-selection flags every device task shares, plus its own."""
    return command(name=name, iterable=MANY, help={**BOARDS, **(help or {})})


def _selection(
    target: str | None,
    host: Sequence[str] | None,
    board: Sequence[str] | None,
    label: Sequence[str] | None,
    all: bool,
    inventory: str | None,
    key: str | None,
    known_hosts: str | None,
    mode: str | None,
    jobs: str,
) -> Selection:
    modes: tuple[Mode | None, ...] = (None, "docker", "bundle")
    if mode not in modes:
        raise ConfigError(f"--mode {mode}: expected docker or bundle.")
    return Selection(
        target=target,
        hosts=tuple(host or ()),  # invoke gives an iterable flag [] when it is not given
        boards=tuple(board or ()),
        labels=tuple(label or ()),
        all=all,
        inventory=inventory,
        key=key,
        known_hosts=known_hosts,
        mode=mode,
        jobs=integer("jobs", jobs, minimum=1, maximum=64),
    )


@board_task("deploy")
def deploy_(
    c: Context,
    target: str | None = None,
    host: list[str] | None = None,
    board: list[str] | None = None,
    label: list[str] | None = None,
    all: bool = False,
    inventory: str | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
    mode: str | None = None,
    jobs: str = "4",
) -> None:
    """Deploy the smoke-tested image to boards over SSH: arch and space checked first; resumable, atomic."""
    deploy(_selection(target, host, board, label, all, inventory, key, known_hosts, mode, jobs))


@board_task("smoke", help={"runs": "timed passes (default: the target's smoke.runs)"})
def smoke_(
    c: Context,
    target: str | None = None,
    host: list[str] | None = None,
    board: list[str] | None = None,
    label: list[str] | None = None,
    all: bool = False,
    inventory: str | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
    mode: str | None = None,
    jobs: str = "4",
    runs: str | None = None,
) -> None:
    """The QEMU smoke test on the boards themselves: outputs against the host reference, into report.json."""
    sel = _selection(target, host, board, label, all, inventory, key, known_hosts, mode, jobs)
    smoke(sel, runs=integer("runs", runs, minimum=1, maximum=1000) if runs else None)


@board_task("bench", help={"runs": "timed passes over the smoke input", "warmup": "untimed passes"})
def bench_(
    c: Context,
    target: str | None = None,
    host: list[str] | None = None,
    board: list[str] | None = None,
    label: list[str] | None = None,
    all: bool = False,
    inventory: str | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
    mode: str | None = None,
    jobs: str = "4",
    runs: str = "5",
    warmup: str = "1",
) -> None:
    """Benchmark on the boards: latency p50/p95/p99, peak RSS, CPU, temperature and throttling."""
    sel = _selection(target, host, board, label, all, inventory, key, known_hosts, mode, jobs)
    bench(
        sel,
        runs=integer("runs", runs, minimum=1, maximum=1000),
        warmup=integer("warmup", warmup, minimum=0, maximum=100),
    )


@board_task("metrics", help={"seconds": "how long the metrics service runs"})
def metrics_(
    c: Context,
    target: str | None = None,
    host: list[str] | None = None,
    board: list[str] | None = None,
    label: list[str] | None = None,
    all: bool = False,
    inventory: str | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
    mode: str | None = None,
    jobs: str = "4",
    seconds: str = "10",
) -> None:
    """Run the runtime's metrics service (Prometheus text on 127.0.0.1, JSON lines) on the boards; show it."""
    sel = _selection(target, host, board, label, all, inventory, key, known_hosts, mode, jobs)
    metrics(sel, seconds=number("seconds", seconds, minimum=1, maximum=3600))


@command(
    iterable=["board"],
    help={
        "target": "target name",
        "board": "only this board (repeatable)",
        "update_baseline": "record the latest benches as the baseline",
    },
    required=("target",),
)
def regress(
    c: Context, target: str | None = None, board: list[str] | None = None, update_baseline: bool = False
) -> None:
    """Compare the boards' latest bench with baselines/<target>/<model>.json; exit 7 on a regression."""
    run_regress(given(target), boards=board or [], update_baseline=update_baseline)
