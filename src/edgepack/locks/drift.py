"""The build's lock policy: a lock is used as it is while every entry can be fetched.

When a source stops serving a locked version (Debian drops superseded
``-security``/``-updates`` versions within days; PyPI files get removed), the
default build re-resolves only those entries, in the same suite and
architecture, from the signed index; prints a drift table; rewrites the lock
atomically; and records the drift in the report and the image labels.
``--locked`` (release paths) refuses instead, naming each package and the one
command that refreshes the lock; it also asks Debian's snapshot archive for the
exact bytes first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from edgepack.debian import apt
from edgepack.debian.closure import resolve_closure
from edgepack.debian.lock import DebianLock, DebPackage, read_lock, write_lock
from edgepack.errors import InputError
from edgepack.locks.sources import Fetcher, Wanted, mirror_roots, snapshot_roots
from edgepack.locks.store import Store
from edgepack.runner import Runner


@dataclass(frozen=True)
class Drift:
    """One entry of a lock that moved: ``-`` stands for absent (added or removed)."""

    lock: str
    package: str
    locked: str
    now: str
    suite: str

    def to_json(self) -> dict[str, str]:
        return {"lock": self.lock, "package": self.package, "locked": self.locked, "now": self.now,
                "suite": self.suite}  # fmt: skip

    def label(self) -> str:
        return f"{self.package} {self.locked}->{self.now}"


class StaleLockError(InputError):
    """--locked, and a locked package no source serves any more."""


@dataclass(frozen=True)
class DebianLockRef:
    """A Debian lock file, the apt sources it was resolved from, and the target it serves."""

    path: Path
    sources: tuple[str, ...]
    target: str
    workdir: Path  # apt's private state for a re-resolve
    dest: Path | None = None  # where a re-resolved lock is written (the project's copy); default: path

    def name(self, root: Path) -> str:
        try:
            return self.path.relative_to(root).as_posix()
        except ValueError:
            return self.path.name


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def sync_debian(
    ref: DebianLockRef,
    *,
    store: Store,
    runner: Runner,
    locked: bool,
    root: Path,
    say: Callable[[str], None] = _stderr,
    fetcher: Fetcher | None = None,
) -> list[Drift]:
    """Make every package of the lock present in the store; re-resolve (or refuse) what no source has."""
    lock = read_lock(ref.path, target=ref.target)
    if runner.dry_run or all(store.present(p.sha256) for p in lock.packages):  # read, verified, when used
        return []
    fetcher = fetcher or Fetcher(store, say=say)
    gone = fetcher.fetch([apt.wanted_deb(p) for p in lock.packages], mirror_roots(ref.sources))
    if gone and locked:
        roots, why_not = snapshot_roots(ref.sources, resolved=lock.resolved)
        if why_not:
            say(f"  snapshot archive not asked: {why_not}")
        gone = fetcher.fetch(gone, roots)
    if not gone:
        return []
    name = ref.name(root)
    if locked:
        raise StaleLockError(
            f"{name}: --locked, and no source serves {', '.join(w.label for w in gone)} any more.",
            hint=f"Refresh the lock, run: edgepack lock --target {ref.target} (or build without --locked)",
        )
    gone_names = {w.label.split(" ")[0] for w in gone}
    new_lock, drift = _reresolve(lock, gone_names=gone_names, ref=ref, runner=runner, name=name)
    missing = fetcher.fetch([apt.wanted_deb(p) for p in new_lock.packages], mirror_roots(ref.sources))
    if missing:
        raise InputError(
            f"{name}: the mirror's index lists {', '.join(w.label for w in missing)}, "
            "but no source serves it.",
            hint="The mirror may be mid-update: try again in a few minutes.",
        )
    write_lock(ref.dest or ref.path, new_lock)  # atomic: a temporary file, then a rename
    return drift


def _reresolve(
    lock: DebianLock, *, gone_names: set[str], ref: DebianLockRef, runner: Runner, name: str
) -> tuple[DebianLock, list[Drift]]:
    """Keep every entry still available; take the index's version for the gone ones and new dependencies."""
    state = apt.prepare_state(ref.workdir, arch=lock.arch, suite=lock.suite, sources=ref.sources)
    apt.update_index(state, runner=runner)
    apt.check_codenames(state, suite=lock.suite)
    closure = resolve_closure(apt.load_index(state), roots=lock.roots, exclude=lock.exclude)
    old = {p.name: p for p in lock.packages}
    packages: list[DebPackage] = []
    drift: list[Drift] = []
    for candidate in closure:
        kept = old.get(candidate.name)
        if kept is not None and candidate.name not in gone_names:
            packages.append(kept)
            continue
        packages.append(apt.candidate_package(candidate))
        was = kept.version if kept else "-"
        drift.append(Drift(name, candidate.name, was, candidate.version, lock.suite))
    in_closure = {c.name for c in closure}
    drift += [Drift(name, n, old[n].version, "-", lock.suite) for n in sorted(set(old) - in_closure)]
    new = replace(lock, packages=tuple(packages), resolved=apt.resolve_time())
    return new, sorted(drift, key=lambda d: d.package)


def drift_labels(drift: Sequence[Drift]) -> str:
    """The image label's value: one ``package old->new`` per moved entry."""
    return "; ".join(d.label() for d in drift)


__all__ = ["DebianLockRef", "Drift", "StaleLockError", "Wanted", "drift_labels", "sync_debian"]
