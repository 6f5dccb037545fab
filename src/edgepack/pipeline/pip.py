"""The target's Python dependencies: binary wheels only, hash-locked per architecture.

pip runs on the host with ``--platform``/``--python-version``, so nothing is
compiled or emulated: the wheels for the board are downloaded, checked
against the lock's sha256 and unpacked into their own image layer.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgepack.config import Project, Target
from edgepack.errors import ConfigError
from edgepack.fsutil import atomic_path, sha256_file, write_text
from edgepack.pipeline import slim
from edgepack.runner import Runner

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.*\.whl$")


def pip_argv(command: str, *args: str | Path) -> list[str]:
    """pip of the running interpreter (never a random one on PATH), quiet."""
    return [sys.executable, "-m", "pip", command, "--quiet", "--disable-pip-version-check", *map(str, args)]


def hashed_install_argv(target: Target, dest: Path, *sources: str | Path) -> list[str]:
    """pip installing wheels only, each by its sha256, for the board's platform, from local folders
    (``sources``: -r FILE, --find-links DIR); no index is asked."""
    return pip_argv("install", "--no-deps", "--no-index", "--only-binary=:all:", "--require-hashes",
                    "--no-compile", *platform_args(target), "--target", dest, *sources)  # fmt: skip


def platform_args(target: Target) -> list[str]:
    """--platform for every manylinux tag the target's glibc accepts, newest first."""
    major, minor = (int(x) for x in target.debian.glibc.split("."))
    arch = target.wheel_arch
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    if arch in ("aarch64", "x86_64"):
        tags.append(f"manylinux2014_{arch}")
    py = target.python.replace(".", "")
    args = [a for tag in tags for a in ("--platform", tag)]
    return [*args, "--python-version", target.python, "--implementation", "cp", "--abi", f"cp{py}"]


def lock(target: Target, *, project: Project, runner: Runner, out: Path | None = None) -> Path:
    """Resolve the requirements for the target's platform and write name==version --hash lines."""
    requirements = project.find(target.requirements)
    if not requirements.is_file():
        raise ConfigError(f"{requirements}: requirements file not found (target '{target.name}').")
    out = out or project.writable(project.lock_path(target, "requirements"))
    with tempfile.TemporaryDirectory(prefix="edgepack-lock-") as tmp:
        runner.run(
            pip_argv(
                "download", "--only-binary=:all:", *platform_args(target), "--dest", tmp, "-r", requirements
            ),
            what=f"resolving {target.requirements} for {target.platform}",
            hint="Every requirement needs a binary wheel for the target (see `edgepack wheels`).",
        )
        lines = [
            f"# Locked for {target.platform}, Python {target.python}, glibc {target.debian.glibc}.",
            f"# Regenerate with: edgepack lock --target {target.name}",
        ]
        for wheel in sorted(Path(tmp).glob("*.whl")):
            match = _WHEEL.match(wheel.name)
            assert match, wheel.name
            name = match["name"].replace("_", "-").lower()
            lines.append(f"{name}=={match['version']} \\\n    --hash=sha256:{sha256_file(wheel)}")
    write_text(out, "\n".join(lines) + "\n")
    return out


def install(
    target: Target, *, project: Project, runner: Runner, out_dir: Path, wheelhouse: Path | None = None
) -> dict[str, list[str]]:
    """Install the locked wheels for the target into ``out_dir`` (a site-packages tree).

    ``wheelhouse``: an index folder of wheels edgepack built for the board
    (``edgepack wheels``), installed in the same pip call, by their sha256.
    Returns what was left out, by group (``pipeline.slim``).
    """
    built: list[str | Path] = (
        ["-r", wheelhouse / "requirements.txt", "--find-links", wheelhouse] if wheelhouse else []
    )
    locked = project.lock_path(target, "requirements")
    if not locked.is_file():
        raise ConfigError(
            f"{locked}: no requirements lock for {target.platform}.",
            hint=f"Run: edgepack lock --target {target.name}",
        )
    with atomic_path(out_dir, is_dir=True) as tmp, _stored_wheels(target, locked, runner=runner) as links:
        if target.runtime != "onnxruntime":  # the lock's onnxruntime swapped for the target's runtime
            locked = _runtime_lock(target, locked, links, runner=runner)
        runner.run(
            hashed_install_argv(target, tmp, "-r", locked, "--find-links", links, *built),
            what=f"installing the locked wheels for {target.platform}",
            hint=f"If a wheel left the index, refresh the lock: edgepack lock --target {target.name}",
        )
        # Console scripts carry the host interpreter's path: useless on the board.
        shutil.rmtree(tmp / "bin", ignore_errors=True)
        removed = slim.remove_groups(tmp, slim.site_groups(target))
        from edgepack.runtimes.board import prune_list

        if gone := slim.remove(tmp, prune_list(target)):
            removed[f"{target.runtime} (never loaded by its interpreter)"] = gone
    return removed


def _runtime_lock(target: Target, locked: Path, links: Path, *, runner: Runner) -> Path:
    """The lock as the target's runtime needs it, written beside the links (which gain its wheel)."""
    from edgepack.locks import pypi
    from edgepack.locks.store import Store
    from edgepack.runtimes.board import swap

    store = Store.default()
    comments, pins = pypi.read_pins(locked)
    have = pypi.stored(pins, store)
    swapped = swap(target, pins, have, store, runner)
    for pin in swapped:
        path = store.get(pin.hashes[0]) if pin.name not in have else None
        if path is not None and not (links / path.name).exists():
            (links / path.name).symlink_to(path)
    out = links / f"requirements-{target.runtime}.txt"
    pypi.write_pins(out, [*comments, f"# runtime: {target.runtime} (onnxruntime swapped out)"], swapped)
    return out


@contextlib.contextmanager
def _stored_wheels(target: Target, locked: Path, *, runner: Runner) -> Iterator[Path]:
    """A folder of links to the locked wheels in the package store (fetched there first if missing)."""
    from edgepack.locks import pypi
    from edgepack.locks.store import Store

    store = Store.default()
    _, pins = pypi.read_pins(locked)
    have = pypi.stored(pins, store)
    if not runner.dry_run and (missing := [p for p in pins if p.name not in have]):
        pypi.sync_pypi(
            locked,
            target=target.name,
            platform=platform_args(target),
            requirements=None,
            store=store,
            runner=runner,
            locked=True,
            root=locked.parent,
            say=lambda _: None,
        )
        have = pypi.stored(pins, store)
        assert all(p.name in have for p in missing)
    with tempfile.TemporaryDirectory(prefix="edgepack-wheels-") as folder:
        for path in have.values():
            (Path(folder) / path.name).symlink_to(path)
        yield Path(folder)


def prune(tree: Path, patterns: tuple[str, ...]) -> list[str]:
    """Remove what matches ``patterns`` (globs relative to ``tree``); return what went."""
    return slim.remove(tree, patterns)
