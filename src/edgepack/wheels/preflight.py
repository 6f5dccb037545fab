"""Before anything is built: which of a target's requirements have a wheel for the board.

For each requirement (the target's requirements file, plus its ``wheels``),
pip resolves it on the host for the board's platform and Python with
``--only-binary=:all: --dry-run`` (metadata only, nothing is installed or
built). A requirement with no such wheel is one that pip would compile on the
board, or under QEMU: it needs a recipe in wheels/ and ``invoke wheels``.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.table import Table

from edgepack.config import Project, Target
from edgepack.errors import CommandError, ConfigError
from edgepack.pydeps import pip_argv, platform_args
from edgepack.runner import Runner
from edgepack.wheels.recipes import load_recipe, recipe_names, recipes_dir

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==\s*[^\s;#]+)?")


@dataclass(frozen=True)
class Row:
    requirement: str
    wheel: str  # the file pip would take for the board, or ""
    recipe: str  # wheels/<name>.yaml when there is one, or ""
    action: str


def requirements(target: Target, project: Project) -> list[str]:
    """The target's requirement lines (name==version), then its recipes' pins."""
    path = project.root / target.requirements
    if not path.is_file():
        raise ConfigError(f"{path}: requirements file not found (target '{target.name}').")
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _REQUIREMENT.match(line.split("#", 1)[0])
        if match:
            found.append(match[1] + (match[2] or "").replace(" ", ""))
    wheels_dir = recipes_dir(project.root)
    found += [load_recipe(wheels_dir, name).requirement for name in target.wheels]
    return found


def dry_run_argv(target: Target, requirement: str, report: Path) -> list[str]:
    return pip_argv(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--no-deps",
        "--only-binary=:all:",
        *platform_args(target),
        "--target",
        report.parent / "target",
        "--report",
        report,
        requirement,
    )


def binary_wheel(target: Target, requirement: str, *, runner: Runner) -> str:
    """The wheel pip would take for the board (file name), or "" when there is none."""
    with tempfile.TemporaryDirectory(prefix="edgepack-preflight-") as tmp:
        report = Path(tmp) / "report.json"
        try:
            runner.run(
                dry_run_argv(target, requirement, report), what=f"looking up {requirement}", mutates=False
            )
        except CommandError as exc:
            if "No matching distribution" in exc.output:
                return ""
            raise
        if not report.is_file():  # a dry run of the runner itself
            return ""
        install = json.loads(report.read_text())["install"]
    return install[0]["download_info"]["url"].rsplit("/", 1)[-1] if install else ""


def preflight(target: Target, *, project: Project, runner: Runner) -> list[Row]:
    known = {name.lower(): name for name in recipe_names(recipes_dir(project.root))}
    rows = []
    for req in requirements(target, project):
        name = req.split("==")[0]
        wheel = binary_wheel(target, req, runner=runner)
        recipe = f"wheels/{known[name.lower()]}.yaml" if name.lower() in known else ""
        if wheel:
            action = "PyPI wheel" + (" (recipe not needed)" if recipe else "")
        elif recipe:
            action = "build from the recipe (invoke wheels)"
        else:
            action = f"needs a recipe: wheels/{name.lower()}.yaml"
        rows.append(Row(req, wheel, recipe, action))
    return rows


def render(rows: Sequence[Row], target: Target) -> Table:
    py = "cp" + target.python.replace(".", "")
    table = Table(
        "requirement",
        f"binary wheel for {py} {target.wheel_arch} (glibc {target.debian.glibc})",
        "recipe",
        "action",
        box=box.SIMPLE_HEAD,
        title=f"preflight: {target.name}",
        title_justify="left",
    )
    for row in rows:
        wheel = row.wheel or "[red]none (sdist only)[/]"
        table.add_row(row.requirement, wheel, row.recipe or "-", row.action)
    return table
