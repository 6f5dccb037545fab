"""What the ``wheels`` invoke tasks call: parse nothing, run the library, render a table."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from invoke.context import Context
from rich import box
from rich.table import Table

from edgepack import wheels
from edgepack.commands.boundary import command, given
from edgepack.config import Project, find_project, load_target
from edgepack.errors import ConfigError
from edgepack.locks import catalog as lock_catalog
from edgepack.runner import Runner
from edgepack.ui import console
from edgepack.ui import wheels as ui_wheels
from edgepack.wheels import preflight as checks
from edgepack.wheels import wheelhouse
from edgepack.wheels.strategy import STRATEGIES


def build_wheels(
    target_name: str, *, strategy: str, package: str | None, verify: bool, verbose: bool
) -> None:
    project = find_project()
    target = load_target(project, target_name)
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy '{strategy}'.", hint=f"Use one of: {', '.join(STRATEGIES)}.")
    runner = Runner(echo=verbose)
    kinds: tuple[lock_catalog.Kind, ...] = ("base", "sysroot") if strategy == "cross" else ("base", "builder")
    for moved in lock_catalog.sync(project, target, runner=runner, locked=False, kinds=kinds):
        console.print(f"lock drift: {moved.lock}: {moved.label()}")
    packages = [package] if package else []
    if not packages and not target.wheels:
        console.print(f"{target.name}: no wheels to build (set 'wheels:' in targets/{target.name}.yaml).")
        return
    entries = wheels.build_wheels(
        target, project=project, runner=runner, strategy=strategy, packages=packages
    )
    results = (
        {r.package: r.output for r in wheels.verify(target, entries, project=project, runner=runner)}
        if verify
        else {}
    )
    table = Table(
        "package",
        "wheel",
        "built",
        "repaired",
        "grafted",
        "seconds",
        f"test ({target.runs_on})",
        box=box.SIMPLE_HEAD,
        title=f"wheelhouse {wheelhouse.root(project, target)}",
        title_justify="left",
    )
    for e in entries:
        table.add_row(
            e.package,
            e.path.name,
            _size(e.built_bytes),
            _size(e.repaired_bytes),
            "\n".join(e.grafted) or "-",
            "cached" if e.cached else f"{e.seconds:.1f}",
            results.get(e.package, "not run"),
        )
    console.print(table)


def run_preflight(target_name: str, *, verbose: bool, as_json: bool = False) -> None:
    project = find_project()
    target = load_target(project, target_name)
    rows = checks.preflight(target, project=project, runner=Runner(echo=verbose))
    if as_json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return
    console.print(ui_wheels.render(rows, target))


def _all_recipes(project: Project) -> Sequence[str]:
    """Every recipe in wheels/: one lock per architecture serves them all."""
    from edgepack.wheels.recipes import recipe_names, recipes_dir

    return recipe_names(recipes_dir(project.root))


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"


# -- the tasks ---------------------------------------------------------------------------------------

WHEELS_HELP = {
    "target": "target name",
    "strategy": "cross (cross compiler + sysroot) or emulated (cibuildwheel under QEMU)",
    "package": "only this recipe (wheels/NAME.yaml)",
    "no_test": "skip the tests on the board (QEMU)",
    "verbose": "echo every command",
}


@command(name="build", help=WHEELS_HELP, required=("target",))
def build_(
    c: Context,
    target: str | None = None,
    strategy: str = "cross",
    package: str | None = None,
    no_test: bool = False,
    verbose: bool = False,
) -> None:
    """Build the target's wheels from wheels/*.yaml, repair them (auditwheel), test them under QEMU."""
    build_wheels(given(target), strategy=strategy, package=package, verify=not no_test, verbose=verbose)


@command(
    help={"target": "target name", "verbose": "echo every command", "json": "print the rows as JSON"},
    required=("target",),
)
def preflight(c: Context, target: str | None = None, verbose: bool = False, json: bool = False) -> None:
    """Which of the target's requirements have a wheel for the board, and which need building."""
    run_preflight(given(target), verbose=verbose, as_json=json)
