"""The lock policy against real Debian mirrors: real .deb files (dpkg-deb), a real dists/ + pool/
tree served over HTTP on 127.0.0.1, real apt re-resolving from the index, requests counted at the server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepack.debian import DebianLock, DebPackage, fetch_debs, read_lock, write_lock
from edgepack.locks.drift import DebianLockRef, StaleLockError, sync_debian
from edgepack.locks.store import Store
from edgepack.runner import Runner
from tests.mirror import Served, serve

REPO = Path(__file__).resolve().parents[2]
RELEASE = """Origin: edgepack-test
Suite: {suite}
Codename: {suite}
Architectures: arm64
Components: main
Date: Tue, 01 Dec 2026 00:00:00 UTC
SHA256:
 {sha} {size} main/binary-arm64/Packages
"""


def make_deb(out: Path, name: str, version: str, depends: str = "") -> DebPackage:
    """A real .deb (dpkg-deb --build) holding one file."""
    tree = out.parent / f"tree-{name}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/share" / name).mkdir(parents=True)
    (tree / "usr/share" / name / "version").write_text(version + "\n")
    control = [
        f"Package: {name}",
        f"Version: {version}",
        "Architecture: arm64",
        "Maintainer: edgepack <t@e.st>",
        *([f"Depends: {depends}"] if depends else []),
        f"Description: test package {name}",
    ]
    (tree / "DEBIAN/control").write_text("\n".join(control) + "\n")
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree), str(out)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    data = out.read_bytes()
    return DebPackage(name, version, "arm64", hashlib.sha256(data).hexdigest(), "", len(data))


def publish(
    root: Path, archive: str, suite: str, debs: list[tuple[DebPackage, Path, str]]
) -> list[DebPackage]:
    """dists/<suite>/Release + main/binary-arm64/Packages and pool/ under root/archive."""
    base = root / archive
    stanzas, entries = [], []
    for package, deb, depends in debs:
        filename = f"pool/main/{package.name[0]}/{package.name}/{deb.name}"
        (base / filename).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(deb, base / filename)
        entry = DebPackage(package.name, package.version, "arm64", package.sha256, filename, package.size)
        entries.append(entry)
        stanzas.append(
            "\n".join(
                [
                    f"Package: {entry.name}",
                    f"Version: {entry.version}",
                    "Architecture: arm64",
                    *([f"Depends: {depends}"] if depends else []),
                    f"Filename: {filename}",
                    f"Size: {entry.size}",
                    f"SHA256: {entry.sha256}",
                    "Priority: optional",
                ]
            )
        )
    packages = base / "dists" / suite / "main/binary-arm64/Packages"
    packages.parent.mkdir(parents=True, exist_ok=True)
    packages.write_text("\n\n".join(stanzas) + "\n")
    data = packages.read_bytes()
    release = RELEASE.format(suite=suite, sha=hashlib.sha256(data).hexdigest(), size=len(data))
    (base / "dists" / suite / "Release").write_text(release)
    return entries


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[tuple[Served, Served, dict[str, DebPackage]]]:
    """Mirror 1 (bookworm): liba 2 and libb 1 (liba 1 was dropped); mirror 2 (bookworm-security): libc 1."""
    debs = tmp_path / "debs"
    debs.mkdir()
    built = {
        f"{n}{v}": (make_deb(debs / f"{n}_{v}_arm64.deb", n, v, d), debs / f"{n}_{v}_arm64.deb", d)
        for n, v, d in [("liba", "1", ""), ("liba", "2", ""), ("libb", "1", "liba"), ("libc", "1", "")]
    }
    first, second = tmp_path / "mirror1", tmp_path / "mirror2"
    served: dict[str, DebPackage] = {}

    def record(entries: list[DebPackage]) -> None:
        served.update({f"{p.name}{p.version}": p for p in entries})

    record(publish(first, "debian", "bookworm", [built["liba1"], built["libb1"]]))  # what was locked
    (first / "debian" / served["liba1"].filename).unlink()  # then superseded and removed, as Debian does
    record(publish(first, "debian", "bookworm", [built["liba2"], built["libb1"]]))
    record(publish(second, "debian-security", "bookworm-security", [built["libc1"]]))
    with serve(first) as one, serve(second) as two:
        yield one, two, served


def project_with_lock(root: Path, packages: dict[str, DebPackage]) -> Path:
    lock = root / "targets" / "locks" / "debian-bookworm-arm64.json"
    lock.parent.mkdir(parents=True)
    entries = (packages["liba1"], packages["libb1"], packages["libc1"])
    write_lock(lock, DebianLock("bookworm", "arm64", ("libb", "libc"), ("dpkg",), entries))
    return lock


def sources(one: Served, two: Served) -> tuple[str, ...]:
    return (
        f"deb [trusted=yes] {one.url}/debian bookworm main",
        f"deb [trusted=yes] {two.url}/debian-security bookworm-security main",
    )


def test_default_re_resolves_the_dropped_version_locked_refuses_and_a_new_clone_asks_nothing(
    tmp_path: Path, mirrors: tuple[Served, Served, dict[str, DebPackage]]
) -> None:
    one, two, packages = mirrors
    store = Store(tmp_path / "store")
    runner = Runner(echo=False)
    lock_path = project_with_lock(tmp_path / "clone1", packages)
    ref = DebianLockRef(lock_path, sources(one, two), "board", tmp_path / "apt1")
    before = lock_path.read_bytes()

    with pytest.raises(StaleLockError) as info:  # --locked: refused, nothing rewritten
        sync_debian(ref, store=store, runner=runner, locked=True, root=tmp_path / "clone1")
    assert (
        "targets/locks/debian-bookworm-arm64.json: --locked, and no source serves liba 1"
        in info.value.message
    )
    assert "edgepack lock --target board" in info.value.hint
    assert lock_path.read_bytes() == before

    drift = sync_debian(ref, store=store, runner=runner, locked=False, root=tmp_path / "clone1")
    assert [(d.package, d.locked, d.now, d.suite) for d in drift] == [("liba", "1", "2", "bookworm")]
    lock = read_lock(lock_path)
    assert {(p.name, p.version) for p in lock.packages} == {("liba", "2"), ("libb", "1"), ("libc", "1")}
    assert lock.resolved
    # libc came from the second mirror after the first answered 404: sources in order.
    assert f"/debian/{packages['libc1'].filename}" in one.paths
    assert f"/debian-security/{packages['libc1'].filename}" in two.paths

    # A second clone on the same machine, with the rewritten lock: zero package requests.
    clone2 = tmp_path / "clone2" / "targets" / "locks"
    clone2.mkdir(parents=True)
    shutil.copy(lock_path, clone2 / lock_path.name)
    asked = (one.requests, two.requests)
    ref2 = DebianLockRef(clone2 / lock_path.name, sources(one, two), "board", tmp_path / "apt2")
    assert sync_debian(ref2, store=store, runner=runner, locked=True, root=tmp_path / "clone2") == []
    debs = fetch_debs(read_lock(ref2.path), sources=ref2.sources, runner=runner, store=store)
    assert (one.requests, two.requests) == asked
    assert [
        subprocess.run(
            ["dpkg-deb", "-f", str(d), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for d in debs
    ] == ["2", "1", "1"]

    # A corrupt entry is detected on read and fetched again: one request, at the first mirror.
    stored = store.get(packages["liba2"].sha256)
    assert stored is not None
    stored.write_bytes(b"not a deb")
    fetch_debs(read_lock(ref2.path), sources=ref2.sources, runner=runner, store=store)
    assert (one.requests, two.requests) == (asked[0] + 1, asked[1])


def test_build_locked_from_the_cli_names_the_package_and_the_command(
    tmp_path: Path, mirrors: tuple[Served, Served, dict[str, DebPackage]]
) -> None:
    one, two, packages = mirrors
    project = tmp_path / "project"
    for part in ("targets", "docker", "assets", "models", "wheels", "runtime"):
        shutil.copytree(REPO / part, project / part)
    shutil.copy(REPO / "tasks.py", project)
    lines = "\n".join(f"    - {line}" for line in sources(one, two))
    text = (  # the rpi4 board, its base from the two mirrors here
        "extends: rpi4\ndescription: rpi4 from test mirrors\nimage: test/mirrored\nwheels: []\nfeatures: []\n"
        f"debian:\n  suite: bookworm\n  glibc: '2.36'\n  sources:\n{lines}\n"
        "  packages: [libb, libc]\n  exclude: [dpkg]\n"
    )
    (project / "targets/mirrored.yaml").write_text(text)
    (project / "targets/locks/debian-bookworm-arm64.json").unlink()
    lock_path = project_with_lock(tmp_path / "lockonly", packages)
    shutil.copy(lock_path, project / "targets/locks/debian-bookworm-arm64.json")
    env = {**os.environ, "EDGEPACK_STORE": str(tmp_path / "store"), "EDGEPACK_DEBIAN_SNAPSHOT": "none"}
    invoke = str(Path(sys.executable).with_name("edgepack"))
    r = subprocess.run(
        [invoke, "build", "--target", "mirrored", "--locked"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "no source serves liba 1" in r.stderr and "edgepack lock --target mirrored" in r.stderr
    assert not (project / "build" / "mirrored").exists()
