"""The lock policy: the package store, sources in order, drift re-resolution and --locked.

The HTTP servers are real (127.0.0.1); only apt's index download is replaced
by the fake runner, which leaves a Packages list where apt would.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from edgepack.debian import DebianLock, DebPackage, fetch_debs, read_lock, write_lock
from edgepack.errors import InputError
from edgepack.locks import pypi
from edgepack.locks.drift import DebianLockRef, StaleLockError, sync_debian
from edgepack.locks.sources import Fetcher, Wanted, mirror_roots, snapshot_roots
from edgepack.locks.store import Store
from edgepack.runner import Result
from tests.conftest import FakeRunner
from tests.mirror import serve


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pool(root: Path, name: str, version: str, data: bytes) -> DebPackage:
    """A file in a mirror's pool, and the lock entry naming it."""
    filename = f"pool/main/{name[0]}/{name}/{name}_{version}_arm64.deb"
    (root / filename).parent.mkdir(parents=True, exist_ok=True)
    (root / filename).write_bytes(data)
    return DebPackage(name, version, "arm64", sha(data), filename, len(data))


def stanza(p: DebPackage, depends: str = "") -> str:
    lines = [
        f"Package: {p.name}",
        f"Version: {p.version}",
        "Architecture: arm64",
        f"Filename: {p.filename}",
        f"Size: {p.size}",
        f"SHA256: {p.sha256}",
        *([f"Depends: {depends}"] if depends else []),
    ]
    return "\n".join(lines) + "\n"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the store --------------------------------------------------------------------------------


def test_store_keeps_files_by_sha256_under_their_own_name(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    src = tmp_path / "numpy-2.4.6-cp311-manylinux_2_28_aarch64.whl"
    src.write_bytes(b"wheel")
    path = store.put(src, sha256=sha(b"wheel"), name=src.name)
    assert path.name == src.name and path.read_bytes() == b"wheel" and not src.exists()
    assert store.get(sha(b"wheel")) == path


def test_store_refuses_bytes_with_another_hash(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    (tmp_path / "f").write_bytes(b"evil")
    with pytest.raises(Exception, match="not the expected"):
        store.put(tmp_path / "f", sha256=sha(b"good"), name="f")
    assert not store.has(sha(b"good"))


def test_a_corrupt_store_entry_is_detected_and_fetched_again(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    entry = pool(mirror, "libfoo1", "1.0", b"real bytes")
    store = Store(tmp_path / "store")
    with serve(mirror) as server:
        fetcher = Fetcher(store, say=print)
        assert (
            fetcher.fetch([Wanted(entry.sha256, entry.filename, "libfoo1.deb", "libfoo1 1.0")], [server.url])
            == []
        )
        stored = store.get(entry.sha256)
        assert stored is not None and server.requests == 1
        stored.write_bytes(b"flipped bits")  # a disk fault
        assert store.get(entry.sha256) is None  # detected on read, and removed
        assert (
            fetcher.fetch([Wanted(entry.sha256, entry.filename, "libfoo1.deb", "libfoo1 1.0")], [server.url])
            == []
        )
        assert server.requests == 2
    assert store.get(entry.sha256) is not None and store.get(entry.sha256).read_bytes() == b"real bytes"  # type: ignore[union-attr]


# --- sources in order -------------------------------------------------------------------------


def test_sources_are_tried_in_order_and_an_unreachable_one_is_skipped_once(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    a = pool(first, "liba", "1", b"a")
    b = pool(second, "libb", "1", b"b")
    store = Store(tmp_path / "store")
    said: list[str] = []
    dead = f"http://127.0.0.1:{closed_port()}"
    with serve(first) as one, serve(second) as two:
        fetcher = Fetcher(store, say=said.append)
        wanted = [Wanted(p.sha256, p.filename, Path(p.filename).name, p.name) for p in (a, b)]
        assert fetcher.fetch(wanted, [dead, one.url, two.url]) == []
        assert one.paths == [f"/{a.filename}", f"/{b.filename}"]  # b: 404 at the first, then the second
        assert two.paths == [f"/{b.filename}"]
    assert len(said) == 1 and said[0].startswith(f"  skipped {dead}")


def test_a_server_serving_other_bytes_under_the_locked_path_is_not_used(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    entry = pool(mirror, "liba", "1", b"tampered")
    said: list[str] = []
    store = Store(tmp_path / "store")
    with serve(mirror) as server:
        left = Fetcher(store, say=said.append).fetch(
            [Wanted(sha(b"original"), entry.filename, "a.deb", "liba 1")], [server.url]
        )
    assert [w.label for w in left] == ["liba 1"] and "is not the locked" in said[0]
    assert list(store.entries()) == []


def test_mirror_roots_and_snapshot_roots_follow_the_apt_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb [trusted=yes] http://deb.debian.org/debian-security/ bookworm-security main",
    ]
    assert mirror_roots(lines) == ["http://deb.debian.org/debian", "http://deb.debian.org/debian-security"]
    monkeypatch.delenv("EDGEPACK_DEBIAN_SNAPSHOT")
    roots, why = snapshot_roots(lines, resolved="20261120T000000Z")
    assert why == "" and roots == [
        "https://snapshot.debian.org/archive/debian/20261120T000000Z",
        "https://snapshot.debian.org/archive/debian-security/20261120T000000Z",
    ]
    assert snapshot_roots(lines, resolved="")[1].startswith("the lock records no resolve time")
    monkeypatch.setenv("EDGEPACK_DEBIAN_SNAPSHOT", "none")
    assert snapshot_roots(lines, resolved="20261120T000000Z")[0] == []


# --- the drift policy -------------------------------------------------------------------------


class MirrorState:
    """Two versions of liba: 1 (locked) and 2; libb depends on liba; what the mirror serves varies."""

    def __init__(self, tmp_path: Path) -> None:
        self.mirror = tmp_path / "mirror"
        self.a1 = pool(self.mirror, "liba", "1", b"liba one")
        self.a2 = pool(self.mirror, "liba", "2", b"liba two")
        self.b1 = pool(self.mirror, "libb", "1", b"libb one")
        self.lock_path = tmp_path / "project" / "targets" / "locks" / "debian-bookworm-arm64.json"
        self.lock_path.parent.mkdir(parents=True)
        write_lock(self.lock_path, DebianLock("bookworm", "arm64", ("libb",), ("dpkg",), (self.a1, self.b1)))
        self.store = Store(tmp_path / "store")

    def drop(self, package: DebPackage) -> None:
        (self.mirror / package.filename).unlink()

    def runner(self, index: str) -> FakeRunner:
        """apt-get update leaves ``index`` as the Packages list (and a Release naming bookworm)."""
        runner = FakeRunner(echo=False)

        def update(argv: list[str]) -> Result:
            lists = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("Dir::State::Lists=")))
            (lists / "m_dists_bookworm_main_binary-arm64_Packages").write_text(index)
            (lists / "m_dists_bookworm_InRelease").write_text("Codename: bookworm\n")
            return Result(argv, 0, "", "")

        runner.on(lambda argv: argv[0] == "apt-get" and argv[-1] == "update", update)
        return runner

    def ref(self, url: str, tmp_path: Path) -> DebianLockRef:
        return DebianLockRef(
            self.lock_path, (f"deb [trusted=yes] {url} bookworm main",), "rpi4", tmp_path / "apt"
        )


def test_a_lock_whose_files_are_served_is_used_as_it_is(tmp_path: Path) -> None:
    m = MirrorState(tmp_path)
    before = m.lock_path.read_bytes()
    with serve(m.mirror) as server:
        runner = m.runner("")
        assert (
            sync_debian(
                m.ref(server.url, tmp_path),
                store=m.store,
                runner=runner,
                locked=False,
                root=tmp_path / "project",
            )
            == []
        )
        assert runner.calls == [] and server.requests == 2  # no index needed: both files fetched by path
        assert (
            sync_debian(
                m.ref(server.url, tmp_path),
                store=m.store,
                runner=runner,
                locked=False,
                root=tmp_path / "project",
            )
            == []
        )
        assert server.requests == 2  # everything stored: nothing asked
    assert m.lock_path.read_bytes() == before


def test_a_version_the_mirror_dropped_is_re_resolved_alone_and_the_lock_rewritten(tmp_path: Path) -> None:
    m = MirrorState(tmp_path)
    m.drop(m.a1)
    with serve(m.mirror) as server:
        runner = m.runner(stanza(m.a2) + "\n" + stanza(m.b1, depends="liba"))
        drift = sync_debian(
            m.ref(server.url, tmp_path), store=m.store, runner=runner, locked=False, root=tmp_path / "project"
        )
    assert [(d.lock, d.package, d.locked, d.now, d.suite) for d in drift] == [
        ("targets/locks/debian-bookworm-arm64.json", "liba", "1", "2", "bookworm")
    ]
    lock = read_lock(m.lock_path)
    assert {(p.name, p.version, p.sha256) for p in lock.packages} == {
        ("liba", "2", m.a2.sha256),
        ("libb", "1", m.b1.sha256),
    }
    assert lock.roots == ("libb",) and lock.exclude == ("dpkg",) and lock.resolved
    assert all(m.store.has(p.sha256) for p in lock.packages)
    assert [p.read_bytes() for p in fetch_debs(lock, sources=(), runner=runner, store=m.store)] == [
        b"liba two",
        b"libb one",
    ]


def test_locked_refuses_a_dropped_version_naming_it_and_the_command(tmp_path: Path) -> None:
    m = MirrorState(tmp_path)
    m.drop(m.a1)
    before = m.lock_path.read_bytes()
    with serve(m.mirror) as server, pytest.raises(StaleLockError) as info:
        sync_debian(
            m.ref(server.url, tmp_path),
            store=m.store,
            runner=m.runner(""),
            locked=True,
            root=tmp_path / "project",
        )
    assert (
        "targets/locks/debian-bookworm-arm64.json: --locked, and no source serves liba 1"
        in info.value.message
    )
    assert "edgepack lock --target rpi4" in info.value.hint and info.value.exit_code == 2
    assert m.lock_path.read_bytes() == before


def test_locked_takes_the_exact_bytes_from_the_snapshot_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = MirrorState(tmp_path)
    lock = read_lock(m.lock_path)
    write_lock(
        m.lock_path,
        DebianLock(
            lock.suite, lock.arch, lock.roots, lock.exclude, lock.packages, resolved="20261120T000000Z"
        ),
    )
    archive = tmp_path / "snapshot" / "archive" / "mirror" / "20261120T000000Z"
    archive.mkdir(parents=True)
    (m.mirror / "pool").rename(archive / "pool")  # the mirror moved on; the archive has them
    (m.mirror / "pool").mkdir()
    with serve(m.mirror) as server, serve(tmp_path / "snapshot") as snapshot:
        monkeypatch.setenv("EDGEPACK_DEBIAN_SNAPSHOT", snapshot.url + "/archive/{archive}/{resolved}/")
        ref = DebianLockRef(
            m.lock_path, (f"deb [trusted=yes] {server.url}/mirror bookworm main",), "rpi4", tmp_path / "apt"
        )
        (m.mirror / "mirror").mkdir()
        assert sync_debian(ref, store=m.store, runner=m.runner(""), locked=True, root=tmp_path) == []
        assert snapshot.requests == 2
    assert all(m.store.has(p.sha256) for p in read_lock(m.lock_path).packages)


def test_fetch_debs_without_a_source_names_the_refresh_command(tmp_path: Path) -> None:
    m = MirrorState(tmp_path)
    with pytest.raises(InputError) as info:
        fetch_debs(
            read_lock(m.lock_path), sources=(), runner=FakeRunner(echo=False), store=m.store, target="rpi4"
        )
    assert "no source serves liba 1, libb 1" in info.value.message
    assert info.value.hint == "The lock is stale. Refresh it, run: edgepack lock --target rpi4"


def test_the_resolve_time_is_not_part_of_the_digest() -> None:
    a = DebianLock(
        "bookworm", "arm64", ("x",), (), (DebPackage("x", "1", "arm64", "0" * 64, "pool/x.deb", 1),)
    )
    b = DebianLock(a.suite, a.arch, a.roots, a.exclude, a.packages, resolved="20261201T000000Z")
    assert a.digest() == b.digest() and json.dumps(b.to_json()) != json.dumps(a.to_json())


# --- the PyPI wheel lock ------------------------------------------------------------------------


def test_wheel_pins_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(
        "# Locked for linux/arm64.\nnumpy==2.4.6 \\\n    --hash=sha256:" + "a" * 64 + "\n"
        "onnxruntime==1.32.0 \\\n    --hash=sha256:" + "b" * 64 + "\n"
    )
    comments, pins = pypi.read_pins(path)
    assert comments == ["# Locked for linux/arm64."]
    assert [(p.name, p.version, p.hashes) for p in pins] == [
        ("numpy", "2.4.6", ("a" * 64,)),
        ("onnxruntime", "1.32.0", ("b" * 64,)),
    ]
    pypi.write_pins(tmp_path / "again.txt", comments, pins)
    assert (tmp_path / "again.txt").read_text() == path.read_text()


def test_a_wheel_pin_without_a_hash_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("numpy==2.4.6\n")
    with pytest.raises(InputError, match=r"requirements.txt: entry 1 \('numpy==2.4.6'\) is not"):
        pypi.read_pins(path)


def test_a_removed_wheel_is_refused_under_locked_and_re_resolved_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "project" / "requirements-py311-aarch64.txt"
    path.parent.mkdir()
    path.write_text("# Locked.\nsoxr==1.0.0 \\\n    --hash=sha256:" + "c" * 64 + "\n")
    requirements = tmp_path / "requirements.in"
    requirements.write_text("soxr>=1.0\n")
    runner = FakeRunner(echo=False)

    def pip_download(argv: list[str]) -> Result:
        if argv[-1] == "soxr==1.0.0":
            return Result(argv, 1, "", "ERROR: No matching distribution found for soxr==1.0.0")
        dest = Path(argv[argv.index("--dest") + 1])
        (dest / "soxr-1.1.0-cp311-cp311-manylinux_2_28_aarch64.whl").write_bytes(b"new wheel")
        return Result(argv, 0, "", "")

    runner.on(lambda argv: "download" in argv, pip_download)
    options = {
        "target": "rpi4",
        "platform": ["--platform", "manylinux_2_28_aarch64"],
        "requirements": requirements,
        "store": Store(tmp_path / "store"),
        "runner": runner,
        "root": tmp_path / "project",
        "say": print,
    }
    with pytest.raises(StaleLockError, match=r"PyPI no longer serves soxr 1\.0\.0") as info:
        pypi.sync_pypi(path, locked=True, **options)  # type: ignore[arg-type]
    assert "edgepack lock --target rpi4" in info.value.hint
    drift = pypi.sync_pypi(path, locked=False, **options)  # type: ignore[arg-type]
    assert [(d.package, d.locked, d.now, d.suite) for d in drift] == [("soxr", "1.0.0", "1.1.0", "pypi")]
    assert runner.calls[-1][-1] == "soxr>=1.0"  # re-resolved within the requirement
    assert "soxr==1.1.0 \\\n    --hash=sha256:" + sha(b"new wheel") in path.read_text()
