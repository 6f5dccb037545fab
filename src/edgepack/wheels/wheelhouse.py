"""The per-target wheelhouse: repaired wheels keyed by recipe and toolchain, and a hash-pinned index.

    build/wheelhouse/<target>/<package>/<strategy>-<key>/   the repaired wheel + entry.json
    build/wheelhouse/<target>/index/                        the target's wheels + requirements.txt

A built entry is also kept for the whole machine (``locks.store.built_root()``,
beside the package store): a fresh clone, or another project with the same
recipe, toolchain and target platform, takes the wheel from there instead of
compiling it again, as pip's wheel cache does for host builds.

An entry's key hashes the recipe (version, sdist sha256, build requirements,
system packages), the strategy's toolchain (compiler and sysroot lock, or
builder image lock), the manylinux policy, SOURCE_DATE_EPOCH (the wheel's zip
times) and the code that builds it; an entry whose key still matches is
reused (a cross-built one's key fixes its bytes). The image build installs
``index/requirements.txt`` (``name==version --hash=sha256:...``) with
``--require-hashes`` from ``--find-links index/``, alongside the PyPI lock.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version as dist_version
from pathlib import Path

from edgepack.config import Project, Target
from edgepack.debian.rootfs import source_date_epoch
from edgepack.fsutil import atomic_path, held, sha256_file, sha256_tree, write_json, write_text
from edgepack.locks.store import built_root
from edgepack.pipeline.steps import digest
from edgepack.runner import Runner
from edgepack.wheels import repair, sources
from edgepack.wheels.recipes import Recipe, load_recipes, recipes_dir
from edgepack.wheels.strategy import Strategy, StrategyName


@dataclass(frozen=True)
class Entry:
    """One repaired wheel in the wheelhouse, with how it was made."""

    package: str
    version: str
    strategy: str
    key: str
    wheel: str  # path of the repaired wheel
    sha256: str
    built_bytes: int  # before auditwheel repair
    repaired_bytes: int
    grafted: tuple[str, ...]  # libraries auditwheel copied into the wheel
    seconds: float  # build + repair
    show: str  # auditwheel show, verbatim
    cached: bool = False

    @property
    def path(self) -> Path:
        return Path(self.wheel)


def root(project: Project, target: Target) -> Path:
    return project.build_dir / "wheelhouse" / target.name


def index_dir(project: Project, target: Target) -> Path:
    return root(project, target) / "index"


def entry_key(recipe: Recipe, *, strategy: StrategyName, toolchain: str, target: Target) -> str:
    """Every input of the built wheel; a local source folder by its contents, not only its name."""
    code = "".join(inspect.getsource(m) for m in (repair, sources))
    local = recipe.source_path()
    return digest(
        recipe.digest(),
        f"source tree {sha256_tree(local)}" if local is not None and local.is_dir() else "sdist",
        strategy,
        toolchain,
        repair.manylinux_plat(target),
        target.python,
        f"auditwheel {dist_version('auditwheel')}",
        f"SOURCE_DATE_EPOCH={source_date_epoch()}",
        code,
    )


def entry_dir(project: Project, target: Target, recipe: Recipe, *, strategy: StrategyName, key: str) -> Path:
    return root(project, target) / recipe.name / f"{strategy}-{key[:16]}"


def lookup(folder: Path) -> Entry | None:
    try:
        data = json.loads((folder / "entry.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    entry = Entry(**{**data, "grafted": tuple(data["grafted"]), "cached": True})
    if not entry.path.is_file() or sha256_file(entry.path) != entry.sha256:
        return None
    return entry


def machine_dir(recipe: Recipe, *, strategy: StrategyName, key: str) -> Path | None:
    """The entry's folder in the machine's cache of built wheels (None when it is off)."""
    shared = built_root()
    return None if shared is None else shared / "wheels" / recipe.name / f"{strategy}-{key}"


def copy_entry(source: Path, dest: Path) -> Entry | None:
    """The verified entry in ``source`` copied to ``dest`` (its wheel hard-linked where it can be)."""
    found = lookup(source)
    if found is None:
        return None
    with atomic_path(dest, is_dir=True) as tmp:
        try:
            os.link(found.path, tmp / found.path.name)
        except OSError:  # another filesystem
            shutil.copyfile(found.path, tmp / found.path.name)
        data = {k: v for k, v in asdict(found).items() if k != "cached"}
        write_json(tmp / "entry.json", {**data, "wheel": str(dest / found.path.name)})
    return lookup(dest)


def reuse(recipe: Recipe, strategy: Strategy, *, target: Target, project: Project) -> Entry | None:
    """The entry already built with this key: the project's, else the machine's (copied in); or None."""
    key = entry_key(recipe, strategy=strategy.name, toolchain=strategy.toolchain_id(), target=target)
    folder = entry_dir(project, target, recipe, strategy=strategy.name, key=key)
    if (found := lookup(folder)) is not None:
        return found
    shared = machine_dir(recipe, strategy=strategy.name, key=key)
    return None if shared is None else copy_entry(shared, folder)


def build_one(
    recipe: Recipe, strategy: Strategy, *, target: Target, project: Project, runner: Runner
) -> Entry:
    """Build, fix tags, check the architecture, repair, record; reuse a matching entry.

    Reused first from the project's wheelhouse, then from the machine's cache;
    a new build is added to both.
    """
    if (found := reuse(recipe, strategy, target=target, project=project)) is not None:
        return found
    key = entry_key(recipe, strategy=strategy.name, toolchain=strategy.toolchain_id(), target=target)
    folder = entry_dir(project, target, recipe, strategy=strategy.name, key=key)
    shared = machine_dir(recipe, strategy=strategy.name, key=key)
    entry = _build(recipe, strategy, key=key, folder=folder, target=target, project=project, runner=runner)
    if shared is not None and not runner.dry_run:
        with held(shared.with_name(f"{shared.name}.lock")):
            if lookup(shared) is None:
                copy_entry(folder, shared)
    return entry


def _build(
    recipe: Recipe,
    strategy: Strategy,
    *,
    key: str,
    folder: Path,
    target: Target,
    project: Project,
    runner: Runner,
) -> Entry:
    cache = project.cache_dir("sources")
    src = sources.fetch(recipe, cache=cache, runner=runner)
    ldpaths = strategy.ldpaths()
    t0 = time.perf_counter()
    with atomic_path(folder, is_dir=True) as tmp:
        built = strategy.build(recipe, src, out_dir=tmp / "built")
        built = repair.fix_tags(built, repair.target_tags(target))
        repair.check_architecture(built, target)
        fixed = repair.repair(built, target=target, out_dir=tmp, ldpaths=ldpaths, runner=runner)
        seconds = round(time.perf_counter() - t0, 2)
        show = repair.show(fixed, ldpaths=ldpaths, runner=runner)
        final = folder / fixed.name
        entry = Entry(
            package=recipe.name,
            version=recipe.version,
            strategy=strategy.name,
            key=key,
            wheel=str(final),
            sha256=sha256_file(fixed),
            built_bytes=built.stat().st_size,
            repaired_bytes=fixed.stat().st_size,
            grafted=grafted_libraries(fixed),
            seconds=seconds,
            show=show,
        )
        shutil.rmtree(tmp / "built")
        write_json(tmp / "entry.json", {k: v for k, v in asdict(entry).items() if k != "cached"})
    return entry


def grafted_libraries(wheel: Path) -> tuple[str, ...]:
    """What auditwheel vendored: the files in the wheel's ``<dist>.libs/`` folder."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.split("/")[0].endswith(".libs") and not n.endswith("/")]
    return tuple(sorted(Path(n).name for n in names))


def write_index(entries: Sequence[Entry], *, project: Project, target: Target, name: str = "index") -> Path:
    """index/: hard links to the wheels and requirements.txt pinning each by sha256."""
    folder = root(project, target) / name
    with atomic_path(folder, is_dir=True) as tmp:
        lines = [
            f"# Built by edgepack for {target.name} ({target.platform}); install with --require-hashes.",
            f"# Rebuild with: edgepack wheels --target {target.name}",
        ]
        for entry in sorted(entries, key=lambda e: e.package):
            os.link(entry.path, tmp / entry.path.name)
            lines.append(f"{entry.package}=={entry.version} \\\n    --hash=sha256:{entry.sha256}")
        write_text(tmp / "requirements.txt", "\n".join(lines) + "\n")
    return folder


def selected(target: Target, project: Project, packages: Sequence[str] = ()) -> list[Recipe]:
    """The target's recipes, or only ``packages`` (which need not be in the target's list)."""
    return load_recipes(recipes_dir(project.root), list(packages or target.wheels))
