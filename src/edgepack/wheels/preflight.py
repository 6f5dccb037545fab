"""Before anything is built: which of a target's requirements have a wheel for the board.

For each requirement (the target's requirements file, plus its ``wheels``),
pip resolves it on the host for the board's platform and Python with
``--only-binary=:all: --dry-run`` (metadata only, nothing is installed or
built). A requirement with no such wheel is one that pip would compile on the
board, or under QEMU: it needs a recipe in wheels/ and ``edgepack wheels``.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgepack import debian
from edgepack.config import Project, Target, debian_package_for
from edgepack.errors import CommandError, ConfigError
from edgepack.pipeline.pip import pip_argv, platform_args
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
    path = project.find(target.requirements)
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
    if target.deps == "debian":
        return debian_rows(target, project=project)
    known = {name.lower(): name for name in recipe_names(recipes_dir(project.root))}
    rows = []
    for req in requirements(target, project):
        name = req.split("==")[0]
        wheel = binary_wheel(target, req, runner=runner)
        recipe = f"wheels/{known[name.lower()]}.yaml" if name.lower() in known else ""
        if wheel:
            action = "PyPI wheel" + (" (recipe not needed)" if recipe else "")
        elif recipe:
            action = "build from the recipe (edgepack wheels)"
        elif target.arch == "armhf":
            action = f"no armv7 wheel on PyPI: deps: debian ({debian_package_for(name)})"
        else:
            action = f"needs a recipe: wheels/{name.lower()}.yaml"
        rows.append(Row(req, wheel, recipe, action))
    return rows


def debian_rows(target: Target, *, project: Project) -> list[Row]:
    """deps: debian: each requirement is the locked python3-<name> package of the base."""
    lock_path = project.lock_path(target, "debian")
    locked = {p.name: p for p in debian.read_lock(lock_path, target=target.name).packages}
    rows = []
    for req in requirements(target, project):
        package = locked.get(debian_package_for(req.split("==")[0]))
        if package is None:
            rows.append(Row(req, "", "", f"not in {lock_path.name}: edgepack lock --target {target.name}"))
        else:
            rows.append(Row(req, f"{package.name} {package.version}", "", "Debian package (deps: debian)"))
    return rows


def require_wheels(target: Target, *, project: Project, runner: Runner) -> None:
    """Refuse, naming them, requirements with neither a wheel for the board nor a recipe."""
    missing = [r for r in preflight(target, project=project, runner=runner) if not r.wheel and not r.recipe]
    if not missing:
        return
    names = ", ".join(r.requirement for r in missing)
    py = "cp" + target.python.replace(".", "")
    where = f"targets/{target.name}.yaml"
    if target.arch == "armhf":
        packages = ", ".join(debian_package_for(r.requirement.split("==")[0]) for r in missing)
        raise ConfigError(
            f"{where}: PyPI has no {py} {target.wheel_arch} wheel for {names}.",
            hint=f"Take them from Debian: set 'deps: debian' and list {packages} in debian.packages "
            "(as targets/rpi-zero2w.yaml does). Details: edgepack wheels.preflight --target " + target.name,
        )
    raise ConfigError(
        f"{where}: PyPI has no {py} {target.wheel_arch} wheel for {names}.",
        hint="Write a recipe for each in wheels/<name>.yaml (edgepack wheels.preflight --target "
        f"{target.name} shows the table).",
    )
