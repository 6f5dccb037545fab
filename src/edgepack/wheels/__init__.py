"""Wheels for native dependencies that PyPI has no binary for, built for the board.

    preflight(target)                 which requirements have a wheel for the board, which need building
    build_wheels(target, strategy=)   recipes in wheels/ -> repaired wheels in build/wheelhouse/<target>/
    verify(target, entries)           each wheel imported and exercised under QEMU with the board's CPU

Strategies (one module each, one Protocol): ``cross`` (Debian cross compiler
and a target sysroot; default) and ``emulated`` (cibuildwheel in a builder
image made from Debian packages, under QEMU).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgepack.config import Project, Target
from edgepack.pipeline.steps import digest
from edgepack.runner import Runner
from edgepack.wheels import wheelhouse
from edgepack.wheels.boardtest import TestResult
from edgepack.wheels.strategy import STRATEGIES, Strategy, StrategyName
from edgepack.wheels.wheelhouse import Entry


def make_strategy(name: StrategyName, *, target: Target, project: Project, runner: Runner) -> Strategy:
    if name == "cross":
        from edgepack.wheels.cross import CrossStrategy

        return CrossStrategy(target=target, project=project, runner=runner)
    from edgepack.wheels.emulated import EmulatedStrategy

    return EmulatedStrategy(target=target, project=project, runner=runner)


def build_wheels(
    target: Target,
    *,
    project: Project,
    runner: Runner,
    strategy: StrategyName = "cross",
    packages: Sequence[str] = (),
) -> list[Entry]:
    """Build (or reuse) the repaired wheels of ``packages`` (default: the target's ``wheels``)."""
    recipes = wheelhouse.selected(target, project, packages)
    if not recipes:
        return []
    builder = make_strategy(strategy, target=target, project=project, runner=runner)
    builder.prepare(recipes)
    entries = [
        wheelhouse.build_one(r, builder, target=target, project=project, runner=runner) for r in recipes
    ]
    if not packages or set(packages) >= set(target.wheels):
        wheelhouse.write_index(entries, project=project, target=target)
    return entries


def planned_digest(
    target: Target, *, project: Project, runner: Runner, strategy: StrategyName = "cross"
) -> str:
    """The wheelhouse keys the target's wheels will have: known before anything is built (for --dry)."""
    builder = make_strategy(strategy, target=target, project=project, runner=runner)
    toolchain = builder.toolchain_id()
    keys = [
        wheelhouse.entry_key(r, strategy=strategy, toolchain=toolchain, target=target)
        for r in wheelhouse.selected(target, project)
    ]
    return digest(*keys)


def ensure_index(target: Target, *, project: Project, runner: Runner) -> Path:
    """The target's wheels built (or reused) by the default strategy: the index the image installs."""
    build_wheels(target, project=project, runner=runner)
    return wheelhouse.index_dir(project, target)


def verify(target: Target, entries: Sequence[Entry], *, project: Project, runner: Runner) -> list[TestResult]:
    """Install ``entries`` into the target's base runtime and run each recipe's test under QEMU."""
    from edgepack.wheels import boardtest

    recipes = wheelhouse.selected(target, project, [e.package for e in entries])
    index = wheelhouse.write_index(
        entries, project=project, target=target, name=f"test-{entries[0].strategy}"
    )
    return boardtest.verify(target, entries, recipes, project=project, runner=runner, index=index)


__all__ = [
    "STRATEGIES",
    "Entry",
    "StrategyName",
    "build_wheels",
    "ensure_index",
    "make_strategy",
    "planned_digest",
    "verify",
]
