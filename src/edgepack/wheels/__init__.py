"""Wheels for native dependencies that PyPI has no binary for, built for the board.

    preflight(target)                 which requirements have a wheel for the board, which need building
    build_wheels(target, strategy=)   recipes in wheels/ -> repaired wheels in build/wheelhouse/<target>/
    verify(target, entries)           each wheel imported and exercised under QEMU with the board's CPU

Strategies (one module each, one Protocol): ``cross`` (Debian cross compiler
and a target sysroot; default) and ``emulated`` (cibuildwheel in a builder
image made from Debian packages, under QEMU).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from edgepack.config import Project, Target
from edgepack.pipeline.steps import digest
from edgepack.runner import Runner
from edgepack.wheels import wheelhouse
from edgepack.wheels.boardtest import TestResult
from edgepack.wheels.recipes import Recipe
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
    found = {r.name: wheelhouse.reuse(r, builder, target=target, project=project) for r in recipes}
    missing = [r for r in recipes if found[r.name] is None]
    if missing:
        builder.prepare(recipes)  # the sysroot or builder image: only when something is compiled
    built = _each(
        missing,
        lambda r: wheelhouse.build_one(r, builder, target=target, project=project, runner=runner),
        at_once=builder.name == "cross",  # the emulated builds are not tried side by side
    )
    made = {e.package: e for e in built}
    entries = [found[r.name] or made[r.name] for r in recipes]
    if not packages or set(packages) >= set(target.wheels):
        wheelhouse.write_index(entries, project=project, target=target)
    return entries


def _each(recipes: Sequence[Recipe], build: Callable[[Recipe], Entry], *, at_once: bool) -> list[Entry]:
    """``build`` on every recipe at once, one per core (each is one compiler process at a time).

    Results in the recipes' order; the first recipe's error is raised after
    the others have finished, so no build is left half-written.
    """
    workers = max(1, min(len(recipes), os.cpu_count() or 1)) if at_once else 1
    if workers == 1:
        return [build(r) for r in recipes]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wheel") as pool:
        futures = [pool.submit(build, r) for r in recipes]
        wait(futures)
    return [f.result() for f in futures]


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
