"""apt-get with a private state: index downloads, locking and fetching .deb files.

apt runs on the x86 host for the target architecture (no emulation) and never
touches the host's own package state: lists, cache, status, sources and
preferences all live under ``workdir``. The host's apt.conf.d is not read
either: its hooks (packagekit, docker-clean) and settings (GzipIndexes,
Check-Valid-Until) would make the result depend on the host. A proxy still
works through the ``http_proxy`` variable, which apt honours. The keyring is
the host's, so downloads are verified against Debian's signed Release files.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepack.debian.closure import INDEX_FIELDS, Candidate, PackageIndex, resolve_closure
from edgepack.debian.control import parse_stanzas
from edgepack.debian.lock import DebianLock, DebPackage
from edgepack.errors import ConfigError, EdgepackError, InputError
from edgepack.fsutil import write_text
from edgepack.locks.sources import Fetcher, Wanted, mirror_roots
from edgepack.locks.store import Store
from edgepack.runner import Runner

_SOURCE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)(?:\s+\S+)*$")
_ARCH = re.compile(r"^[a-z0-9]+$")
# Debian's moving names for a release; a source may use one (dists/stable),
# and then the Codename of what it serves must be the target's suite.
_ALIASES = frozenset({"stable", "oldstable", "oldoldstable", "testing"})
_NETWORK_HINT = "apt-get needs the network on the host: check the sources, and http_proxy if one is needed."


@dataclass(frozen=True)
class AptState:
    """apt's private directories under one root."""

    root: Path
    arch: str

    @property
    def lists(self) -> Path:
        return self.root / "lists"

    def options(self) -> list[str]:
        etc = self.root / "etc"
        settings = {
            "Dir::State::Lists": str(self.lists),
            "Dir::State::status": str(self.root / "status"),
            "Dir::Cache": str(self.root / "cache"),
            "Dir::Etc::SourceList": str(etc / "sources.list"),
            "Dir::Etc::SourceParts": str(etc / "sources.list.d"),
            "Dir::Etc::Preferences": str(etc / "preferences"),
            "Dir::Etc::PreferencesParts": str(etc / "preferences.d"),
            "APT::Architecture": self.arch,
            "APT::Architectures": self.arch,
            "Acquire::Languages": "none",
            # Plain-text lists, which closure.py parses (Debian's container
            # images turn this on in apt.conf.d, which is not read here anyway).
            "Acquire::GzipIndexes": "false",
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def argv(self, *command: str) -> list[str]:
        return ["apt-get", "-q", *self.options(), *command]

    def env(self) -> dict[str, str]:
        # The main config file is read before Dir::Etc::Parts, so only a
        # private APT_CONFIG can point the parts at an empty folder.
        return {"APT_CONFIG": str(self.root / "etc" / "apt.conf")}


def source_suites(sources: Sequence[str]) -> list[str]:
    """The suite of each one-line source; ConfigError for anything but a ``deb`` line."""
    suites = []
    for line in sources:
        match = _SOURCE.match(line.strip())
        if match is None:
            raise ConfigError(
                f"Debian source {line!r} is not a one-line apt source.",
                hint="Write it as: deb http://deb.debian.org/debian bookworm main",
            )
        suites.append(match["suite"])
    return suites


def prepare_state(workdir: Path, *, arch: str, suite: str, sources: Sequence[str]) -> AptState:
    """Create apt's private directories and write its sources list."""
    if not _ARCH.match(arch):
        raise ConfigError(f"{arch!r} is not a Debian architecture name (e.g. arm64, armhf).")
    suites = source_suites(sources)
    if suite not in suites and not any(s.split("-")[0] in _ALIASES for s in suites):
        raise ConfigError(
            f"no Debian source is for suite {suite!r}.",
            hint=f"Add a line such as: deb http://deb.debian.org/debian {suite} main",
        )
    state = AptState(root=workdir / "apt", arch=arch)
    etc = state.root / "etc"
    for folder in (
        state.lists / "partial",
        state.root / "cache",
        etc / "sources.list.d",
        etc / "preferences.d",
        etc / "apt.conf.d",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    write_text(etc / "apt.conf", f'Dir::Etc::Parts "{etc / "apt.conf.d"}";\n')
    write_text(etc / "sources.list", "".join(line.strip() + "\n" for line in sources))
    write_text(etc / "preferences", "")
    # An empty dpkg status: nothing is installed in the target yet.
    write_text(state.root / "status", "")
    return state


def update_index(state: AptState, *, runner: Runner) -> None:
    runner.run(
        state.argv("update"), what="downloading the Debian package index", env=state.env(), hint=_NETWORK_HINT
    )


def check_codenames(state: AptState, *, suite: str) -> None:
    """Every source serves the target's release: ``trixie``, ``trixie-updates``, ``trixie-security``.

    A source may name an alias (``stable``) when a mirror serves the release's
    own name out of step with its signed InRelease; once the alias moves on to
    the next release, refreshing the lock stops here instead of jumping to it.
    """
    for release in sorted(state.lists.glob("*_InRelease")):
        # Clear-signed: the PGP armour header is a stanza of its own.
        text = release.read_text(encoding="utf-8", errors="replace")
        codename = next((f["Codename"] for f in parse_stanzas(text) if "Codename" in f), "")
        if codename.split("-")[0] != suite:
            raise ConfigError(
                f"the Debian source behind {release.name} serves '{codename}', not the target's '{suite}'.",
                hint=f"Name {suite} (or a source that still serves it) in the target's debian.sources.",
            )


def load_index(state: AptState) -> PackageIndex:
    """Parse every Packages list that ``apt-get update`` left in the private lists dir."""
    files = sorted(state.lists.glob("*_Packages"))
    if not files:
        raise EdgepackError(
            f"reading the Debian package index failed because {state.lists} holds no Packages list.",
            hint="Check that the sources name a component (main) that exists for " + state.arch + ".",
        )
    stanzas = (
        stanza
        for path in files
        for stanza in parse_stanzas(path.read_text(encoding="utf-8", errors="replace"), keep=INDEX_FIELDS)
    )
    return PackageIndex.from_stanzas(stanzas, arch=state.arch)


def resolve_lock(
    *,
    suite: str,
    arch: str,
    roots: Sequence[str],
    exclude: Sequence[str],
    sources: Sequence[str],
    runner: Runner,
    workdir: Path,
) -> DebianLock:
    """Lock the closure of ``roots`` at the highest versions the sources offer.

    A dry run only echoes ``apt-get update`` and returns a lock without packages.
    """
    if not roots:
        raise ConfigError("no Debian root packages are given.", hint="List at least python3.X-minimal.")
    state = prepare_state(workdir, arch=arch, suite=suite, sources=sources)
    update_index(state, runner=runner)
    packages: tuple[DebPackage, ...] = ()
    if not runner.dry_run:
        check_codenames(state, suite=suite)
        closure = resolve_closure(load_index(state), roots=roots, exclude=exclude)
        packages = tuple(candidate_package(c) for c in closure)
    return DebianLock(
        suite=suite,
        arch=arch,
        roots=tuple(sorted(set(roots))),
        exclude=tuple(sorted(set(exclude))),
        packages=packages,
        resolved=resolve_time(),
    )


def fetch_debs(
    lock: DebianLock,
    *,
    sources: Sequence[str],
    runner: Runner,
    store: Store | None = None,
    target: str = "<name>",
) -> list[Path]:
    """The locked .deb files, in lock order, from the package store (verified by sha256).

    Missing ones are fetched from the sources by their archive path and checked
    against the lock's sha256 (which a signed index gave when the lock was
    written). A build syncs its locks first (``edgepack.locks``), so this finds
    everything stored; what is still missing means a stale lock.
    """
    store = store or Store.default()
    if runner.dry_run:
        return [store.root / "sha256" / p.sha256[:2] / p.sha256 / _deb_name(p) for p in lock.packages]
    wanted = [wanted_deb(p) for p in lock.packages]
    fetcher = Fetcher(store, say=lambda line: print(line, file=sys.stderr))
    if gone := fetcher.fetch(wanted, mirror_roots(sources)):
        names = ", ".join(w.label for w in gone)
        raise InputError(
            f"fetching Debian packages failed because no source serves {names} with the locked sha256.",
            hint=f"The lock is stale. Refresh it, run: edgepack lock --target {target}",
        )
    paths = []
    for package in lock.packages:
        found = store.get(package.sha256)
        if found is None:  # removed between the fetch and now (another process cleaning the store)
            raise EdgepackError(f"the package store lost {package.name} {package.version} while building.")
        paths.append(found)
    return paths


def wanted_deb(package: DebPackage) -> Wanted:
    return Wanted(package.sha256, package.filename, _deb_name(package), f"{package.name} {package.version}")


def _deb_name(package: DebPackage) -> str:
    return Path(package.filename).name or f"{package.name}.deb"


def candidate_package(candidate: Candidate) -> DebPackage:
    c = candidate
    return DebPackage(c.name, c.version, c.arch, c.sha256, c.filename, c.size)


def resolve_time() -> str:
    """Now, in the snapshot archive's timestamp form."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
