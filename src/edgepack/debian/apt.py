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
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepack.debian.closure import INDEX_FIELDS, PackageIndex, resolve_closure
from edgepack.debian.control import parse_stanzas
from edgepack.debian.lock import DebianLock, DebPackage
from edgepack.errors import ConfigError, EdgepackError, InputError
from edgepack.fsutil import atomic_path, sha256_file, write_text
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
        packages = tuple(DebPackage(c.name, c.version, c.arch, c.sha256, c.filename, c.size) for c in closure)
    return DebianLock(
        suite=suite,
        arch=arch,
        roots=tuple(sorted(set(roots))),
        exclude=tuple(sorted(set(exclude))),
        packages=packages,
    )


def fetch_debs(
    lock: DebianLock,
    *,
    sources: Sequence[str],
    runner: Runner,
    cache_dir: Path,
    workdir: Path,
    target: str = "<name>",
) -> list[Path]:
    """The locked .deb files, in lock order, from ``cache_dir`` (named by sha256).

    Missing ones are downloaded with ``apt-get download name=version``, which
    checks them against the signed index, then against the lock's sha256.
    """
    paths = [cache_dir / f"{p.sha256}.deb" for p in lock.packages]
    missing = [p for p, path in zip(lock.packages, paths, strict=True) if not _is_cached(path, p)]
    if not missing:
        return paths
    state = prepare_state(workdir, arch=lock.arch, suite=lock.suite, sources=sources)
    update_index(state, runner=runner)
    if not runner.dry_run:
        _check_available(missing, load_index(state), target=target)
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=workdir) as tmp:
        specs = [f"{p.name}={p.version}" for p in missing]
        runner.run(
            state.argv("download", *specs),
            what=f"downloading {len(specs)} Debian packages",
            cwd=Path(tmp),
            env=state.env(),
            hint=_NETWORK_HINT,
        )
        if not runner.dry_run:
            _store(missing, downloaded=Path(tmp), cache_dir=cache_dir, target=target)
    return paths


def _is_cached(path: Path, package: DebPackage) -> bool:
    if not path.is_file():
        return False
    if sha256_file(path) == package.sha256:
        return True
    path.unlink()  # a damaged cache entry: fetch it again
    return False


def _check_available(missing: Sequence[DebPackage], index: PackageIndex, *, target: str) -> None:
    """Fail early, with a clear cause, when the mirror no longer has a locked version."""
    gone, changed = [], []
    for package in missing:
        found = index.find(package.name, package.version)
        if found is None:
            gone.append(f"{package.name} {package.version}")
        elif found.sha256 != package.sha256:
            changed.append(f"{package.name} {package.version}")
    if gone or changed:
        why = []
        if gone:
            why.append(f"the mirror no longer has {', '.join(gone)}")
        if changed:
            why.append(f"the mirror's sha256 differs from the lock for {', '.join(changed)}")
        raise InputError(
            f"fetching Debian packages failed because {'; and '.join(why)}.",
            hint=f"The lock is stale. Refresh it, run: invoke lock.base --target {target}",
        )


def _store(missing: Sequence[DebPackage], *, downloaded: Path, cache_dir: Path, target: str) -> None:
    """Move each download into the cache once its sha256 matches the lock."""
    by_sha = {sha256_file(path): path for path in downloaded.glob("*.deb")}
    for package in missing:
        source = by_sha.get(package.sha256)
        if source is None:
            raise InputError(
                f"fetching {package.name} {package.version} failed because no downloaded file "
                f"has the locked sha256 {package.sha256}.",
                hint=f"The lock is stale. Refresh it, run: invoke lock.base --target {target}",
            )
        with atomic_path(cache_dir / f"{package.sha256}.deb") as tmp:
            shutil.move(source, tmp)
