"""Which locks a target uses, syncing them before a build, and refreshing them (``edgepack lock``).

| kind         | file                                               | used by                     |
|--------------|----------------------------------------------------|-----------------------------|
| base         | targets/locks/debian-<suite>-<arch>.json           | every build (the rootfs)    |
| requirements | targets/locks/requirements-py<ver>-<arch>.txt      | ``deps: wheels`` targets    |
| sysroot      | wheels/locks/sysroot-<suite>-<arch>.json           | targets with ``wheels:``    |
| builder      | wheels/locks/builder-<suite>-<arch>.json           | ``wheels --strategy emulated`` |
| sdcard       | targets/locks/sdcard-<target>-<suite>-<arch>.json  | ``edgepack flash.image``      |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from edgepack import debian
from edgepack.config import Project, Target
from edgepack.errors import ConfigError
from edgepack.locks.drift import DebianLockRef, Drift, sync_debian
from edgepack.locks.pypi import sync_pypi
from edgepack.locks.sources import Fetcher
from edgepack.locks.store import Store
from edgepack.pipeline import pip as pydeps
from edgepack.runner import Runner

Kind = Literal["base", "requirements", "sysroot", "builder", "sdcard"]
KINDS: tuple[Kind, ...] = ("base", "requirements", "sysroot", "builder", "sdcard")
# What a plain `edgepack build` needs; the rest is asked for by its own task.
BUILD_KINDS: tuple[Kind, ...] = ("base", "requirements", "sysroot")


@dataclass(frozen=True)
class LockFile:
    kind: Kind
    path: Path
    target: Target
    sources: tuple[str, ...]
    workdir: Path  # apt's private state when it is re-resolved

    dest: Path | None = None  # the project's own copy, where a refresh or a drift writes

    def debian_ref(self) -> DebianLockRef:
        return DebianLockRef(self.path, self.sources, self.target.name, self.workdir, self.dest)


def refresh_command(target: str) -> str:
    return f"edgepack lock --target {target}"


def locks_of(project: Project, target: Target, kinds: Iterable[Kind] = KINDS) -> list[LockFile]:
    """The lock files the target uses, of the given kinds, in build order."""
    from edgepack.wheels import sysroot

    apt = project.cache_dir("apt")
    wanted = set(kinds)
    files = []
    if "base" in wanted:
        files.append(LockFile("base", project.lock_path(target, "debian"), target, target.debian.sources,
                              apt / f"{target.debian.suite}-{target.arch}"))  # fmt: skip
    if "requirements" in wanted and target.deps == "wheels":
        files.append(LockFile("requirements", project.lock_path(target, "requirements"), target, (), apt))
    tree_kinds: tuple[Literal["sysroot", "builder"], ...] = ("sysroot", "builder")
    for kind in tree_kinds:
        if kind in wanted and target.wheels:
            path, workdir = sysroot.lock_path(project, target, kind), sysroot.apt_workdir(project, target)
            files.append(LockFile(kind, path, target, target.debian.sources, workdir))
    if "sdcard" in wanted and target.sdcard is not None:
        files.append(LockFile("sdcard", project.lock_path(target, "sdcard"), target, target.sdcard.sources,
                              apt / f"sdcard-{target.debian.suite}-{target.arch}"))  # fmt: skip
    # A built-in board's lock is read from edgepack; refreshed or drifted, it is written into the project.
    return [replace(f, dest=project.writable(f.path)) for f in files]


def sync(
    project: Project,
    target: Target,
    *,
    runner: Runner,
    locked: bool,
    kinds: Sequence[Kind] = BUILD_KINDS,
    store: Store | None = None,
    say: Callable[[str], None] = print,
) -> list[Drift]:
    """Before a plan is made: every lock the build uses is fetchable, or re-resolved, or refused."""
    store = store or Store.default()
    fetcher = Fetcher(store, say=say)
    drift: list[Drift] = []
    for lock in locks_of(project, target, kinds):
        if not lock.path.is_file():
            continue  # the step that needs it names the missing lock and the command
        if lock.kind == "requirements":
            drift += sync_pypi(lock.path, dest=lock.dest, target=target.name,
                               platform=pydeps.platform_args(target), store=store, runner=runner,
                               requirements=project.find(target.requirements),
                               locked=locked, root=project.root, say=say)  # fmt: skip
        else:
            drift += sync_debian(lock.debian_ref(), store=store, runner=runner, locked=locked,
                                 root=project.root, say=say, fetcher=fetcher)  # fmt: skip
    return drift


def refresh(
    project: Project, target: Target, *, runner: Runner, kinds: Sequence[Kind] = KINDS
) -> list[tuple[LockFile, str]]:
    """Re-resolve every lock of the target from today's indexes; (lock, one-line summary) each."""
    done = []
    for lock in locks_of(project, target, kinds):
        done.append((lock, _refresh_one(project, lock, runner=runner)))
    return done


def _refresh_one(project: Project, lock: LockFile, *, runner: Runner) -> str:
    from edgepack.wheels import preflight, sysroot, wheelhouse
    from edgepack.wheels.recipes import recipe_names, recipes_dir

    target = lock.target
    if lock.kind == "requirements":
        preflight.require_wheels(target, project=project, runner=runner)
        pydeps.lock(target, project=project, runner=runner, out=lock.dest or lock.path)
        return "PyPI wheels"
    if lock.kind in ("sysroot", "builder"):
        recipes = wheelhouse.selected(target, project, recipe_names(recipes_dir(project.root)))
        resolved = sysroot.resolve(lock.kind, target, recipes, project=project, runner=runner)
    else:
        if lock.kind == "sdcard":
            from edgepack.flash import layout

            card = layout.require_sdcard(target, project)
            roots, exclude = card.packages, card.exclude
        else:
            roots, exclude = target.debian.packages, target.debian.exclude
        resolved = debian.resolve_lock(suite=target.debian.suite, arch=target.arch, roots=roots,
                                       exclude=exclude, sources=lock.sources, runner=runner,
                                       workdir=lock.workdir)  # fmt: skip
    if runner.dry_run:
        return "dry run: nothing written"
    debian.write_lock(lock.dest or lock.path, resolved)
    return f"{len(resolved.packages)} packages, digest {resolved.digest()[:16]}"


def check_kinds(only: str) -> tuple[Kind, ...]:
    """``--only base,sdcard`` -> the kinds; an unknown one is a ConfigError with the choices."""
    if not only:
        return KINDS
    chosen: list[Kind] = []
    for kind in (k.strip() for k in only.split(",") if k.strip()):
        if kind not in KINDS:
            raise ConfigError(f"--only {kind}: not a kind of lock.", hint=f"Choose from: {', '.join(KINDS)}.")
        chosen.append(kind)
    return tuple(chosen)
