"""Target-architecture trees from locked Debian packages: the cross sysroot and the builder rootfs.

Both are unpacked on the host with ``edgepack.debian`` (no emulation, no
maintainer scripts) from a committed lock, ``wheels/locks/<kind>-<suite>-<arch>.json``,
whose roots are the toolchain's own packages plus every recipe's ``system``
-dev packages. ``edgepack lock`` refreshes them.

- ``sysroot``: headers and libraries for ``gcc --sysroot`` (libc6-dev, the
  target Python's headers, the recipes' -dev packages).
- ``builder``: a Debian userland with Python, pip and gcc, the image that
  cibuildwheel runs under QEMU (the ``emulated`` strategy).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from edgepack import debian
from edgepack.config import Project, Target
from edgepack.debian.apt import load_index, prepare_state, update_index
from edgepack.debian.debfile import USRMERGE_DIRS, PathFilter, extract_deb, make_folders, read_deb
from edgepack.debian.lock import DebianLock
from edgepack.errors import ConfigError
from edgepack.fsutil import atomic_path, held
from edgepack.runner import Runner
from edgepack.wheels.recipes import Recipe, recipes_dir

Kind = Literal["sysroot", "builder"]

# What each tree needs besides the recipes' -dev packages ({py}: the target's Python).
BASE_ROOTS: dict[str, tuple[str, ...]] = {
    "sysroot": ("libc6-dev", "libpython{py}-dev"),
    "builder": (
        "python{py}",
        "libpython{py}-dev",
        "python3-pip",
        "gcc",
        "libc6-dev",
        "bash",
        "dash",
        "coreutils",
        "tar",
        "debianutils",
        "findutils",
        "grep",
        "sed",
    ),
}
# Never needed to compile: a package manager, debconf front-ends, init glue.
EXCLUDE = (
    "apt",
    "base-files",
    "base-passwd",
    "debconf",
    "debconf-2.0",
    "dpkg",
    "init-system-helpers",
    "install-info",
    "perl-base",
    "usr-is-merged",
    "usrmerge",
)
# Headers and libraries are all a compiler reads: documentation only costs time.
DROP = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian")


def roots(kind: Kind, target: Target, recipes: Sequence[Recipe]) -> tuple[str, ...]:
    base = tuple(r.format(py=target.python) for r in BASE_ROOTS[kind])
    return tuple(sorted({*base, *(p for r in recipes for p in r.system)}))


def lock_path(project: Project, target: Target, kind: Kind) -> Path:
    return recipes_dir(project.root) / "locks" / f"{kind}-{target.debian.suite}-{target.arch}.json"


def read_lock(project: Project, target: Target, kind: Kind, recipes: Sequence[Recipe]) -> DebianLock:
    """The committed lock; ConfigError when it misses a root that a recipe now needs."""
    path = lock_path(project, target, kind)
    fix = f"Run: edgepack lock --target {target.name}"
    if not path.is_file():
        raise ConfigError(f"no {kind} lock for {target.arch} ({path}).", hint=fix)
    lock = debian.read_lock(path, target=target.name)
    missing = sorted(set(roots(kind, target, recipes)) - set(lock.roots))
    if missing:
        who = ", ".join(f"{r.line('system')} ({p})" for r in recipes for p in r.system if p in missing)
        raise ConfigError(
            f"the {kind} lock {path.name} lacks {', '.join(missing)}, named by {who or 'the toolchain'}.",
            hint=fix,
        )
    return lock


def resolve(
    kind: Kind, target: Target, recipes: Sequence[Recipe], *, project: Project, runner: Runner
) -> DebianLock:
    """Lock the closure of the tree's roots; a recipe's package missing for the arch names the recipe."""
    workdir = apt_workdir(project, target)
    wanted = roots(kind, target, recipes)
    state = prepare_state(workdir, arch=target.arch, suite=target.debian.suite, sources=target.debian.sources)
    update_index(state, runner=runner)
    if not runner.dry_run:
        index = load_index(state)
        for recipe in recipes:
            for package in recipe.system:
                if package not in index.packages and package not in index.providers:
                    close = [n for n in index.packages if n.endswith("-dev") and package.split("-")[0] in n]
                    tip = f" Debian {target.arch} has: {', '.join(sorted(close)[:5])}." if close else ""
                    raise ConfigError(
                        f"{recipe.line('system')}: system library '{package}' does not exist for "
                        f"{target.arch} in Debian {target.debian.suite}.{tip}"
                    )
    return debian.resolve_lock(
        suite=target.debian.suite,
        arch=target.arch,
        roots=wanted,
        exclude=EXCLUDE,
        sources=target.debian.sources,
        runner=runner,
        workdir=workdir,
    )


def apt_workdir(project: Project, target: Target) -> Path:
    return project.cache_dir("apt") / f"{target.debian.suite}-{target.arch}"


def ensure_tree(lock: DebianLock, *, target: Target, project: Project, runner: Runner, kind: Kind) -> Path:
    """build/cache/<kind>/<lock digest>/: the lock's packages unpacked, reused while the lock holds."""
    out = project.cache_dir(kind) / f"{target.arch}-{lock.digest()[:16]}"
    if (out / ".complete").is_file():
        return out
    # Targets of one architecture share the tree: one unpacks it while the others wait (a second
    # unpack would replace the folder under a compiler reading it).
    with held(out.with_name(f"{out.name}.lock")):
        if (out / ".complete").is_file():
            return out
        debs = debian.fetch_debs(lock, sources=target.debian.sources, runner=runner, target=target.name)
        with atomic_path(out, is_dir=True) as tmp:
            unpack(lock, debs, root=tmp)
            (tmp / ".complete").write_text(lock.digest() + "\n")
    return out


def unpack(lock: DebianLock, debs: Sequence[Path], *, root: Path) -> None:
    """Unpack ``debs`` into ``root`` as a merged-/usr tree whose symlinks stay inside it."""
    paths = PathFilter(drop=DROP)
    for _package, deb in zip(lock.packages, debs, strict=True):
        extract_deb(read_deb(deb), root, paths=paths)
    for name in USRMERGE_DIRS:
        if (root / "usr" / name).is_dir() and not (root / name).exists():
            (root / name).symlink_to(f"usr/{name}")
    relativize_symlinks(root)


def relativize_symlinks(root: Path) -> int:
    """Point absolute symlinks at the tree, not the host (libm.so -> /lib/...): how sysroots are fixed.

    ``ld --sysroot`` would otherwise follow ``/usr/lib/aarch64-linux-gnu/libfoo.so.1``
    to the host's x86 file, or to nothing.
    """
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            link = Path(dirpath) / name
            if link.is_symlink() and (target := str(link.readlink())).startswith("/"):
                relative = os.path.relpath(root / target.lstrip("/"), link.parent)
                link.unlink()
                link.symlink_to(relative)
                changed += 1
    return changed


def library_dirs(sysroot: Path, triplet: str) -> list[Path]:
    """Where the target's shared libraries are, for the linker and for auditwheel."""
    return [sysroot / "usr" / "lib" / triplet, sysroot / "usr" / "lib"]


def temp_dir(project: Project) -> Path:
    """A scratch folder on the same filesystem as the cache (renames stay atomic)."""
    base = project.build_dir / "tmp"
    make_folders(base)
    return Path(tempfile.mkdtemp(prefix="wheels-", dir=base))
