"""A real distroless arm64 rootfs: Debian index and .debs from the network, run under QEMU."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

from edgepack.debian import build_rootfs_tar, fetch_debs, read_lock, resolve_lock, write_lock
from edgepack.locks.store import Store
from edgepack.runner import Runner

SOURCES = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
# What onnxruntime and numpy wheels need besides Python: libstdc++, libgcc_s, libc, libm.
ROOTS = ["python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1", "libc6"]
EXCLUDE = [
    "apt",
    "base-files",
    "base-passwd",
    "bash",
    "coreutils",
    "dash",
    "debconf",
    "debconf-2.0",
    "debianutils",
    "dpkg",
    "init-system-helpers",
    "install-info",
    "perl-base",
    "sensible-utils",
    "tar",
    "usr-is-merged",
    "usrmerge",
]
IMAGE = "edgepack-test/rootfs:it"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("debian")
    runner = Runner(echo=False)
    started = time.monotonic()
    lock = resolve_lock(
        suite="bookworm",
        arch="arm64",
        roots=ROOTS,
        exclude=EXCLUDE,
        sources=SOURCES,
        runner=runner,
        workdir=work / "apt",
    )
    write_lock(work / "lock.json", lock)
    lock = read_lock(work / "lock.json")
    resolved = time.monotonic()
    debs = fetch_debs(lock, sources=SOURCES, runner=runner, store=Store(work / "store"))
    fetched = time.monotonic()
    out = work / "rootfs.tar"
    build_rootfs_tar(lock, debs, out=out, python="3.11", runner=runner)
    print(
        f"{len(lock.packages)} packages; resolve {resolved - started:.1f} s, "
        f"fetch {fetched - resolved:.1f} s, build {time.monotonic() - fetched:.1f} s; "
        f"{out.stat().st_size / 1e6:.1f} MB"
    )
    return out


def test_rootfs_has_python_and_no_shell_perl_or_dpkg(rootfs: Path) -> None:
    with tarfile.open(rootfs) as tar:
        names = set(tar.getnames())
    for absent in (
        "usr/bin/sh",
        "usr/bin/bash",
        "usr/bin/dash",
        "usr/bin/perl",
        "usr/bin/dpkg",
        "usr/bin/apt",
    ):
        assert absent not in names
    assert not any(name.startswith("usr/share/perl") for name in names)
    assert {"bin", "lib", "usr/bin/python3.11", "usr/bin/python3", "usr/lib/ld-linux-aarch64.so.1"} <= names
    assert "usr/lib/python3.11/__pycache__/os.cpython-311.pyc" in names
    assert rootfs.stat().st_size < 60e6


def test_rootfs_runs_python_under_qemu(rootfs: Path) -> None:
    runner = Runner(echo=False)
    context = rootfs.parent / "image"
    context.mkdir()
    rootfs.rename(context / "rootfs.tar")
    (context / "Dockerfile").write_text("FROM scratch\nADD rootfs.tar /\n")
    build = ["docker", "buildx", "build", "--platform", "linux/arm64", "--network", "none"]
    runner.run([*build, "--load", "-t", IMAGE, str(context)], what="importing the rootfs")
    try:
        run = ["docker", "run", "--rm", "--network", "none", "--platform", "linux/arm64"]
        code = "import platform,ssl,sqlite3,json; print(platform.machine())"
        result = runner.run([*run, "-e", "QEMU_CPU=cortex-a72", IMAGE, "/usr/bin/python3.11", "-c", code])
        assert result.stdout.strip() == "aarch64"
        as_user = runner.run(
            [*run, "--user", "1000", IMAGE, "/usr/bin/python3", "-c", "import os; print(os.getcwd())"]
        )
        assert as_user.stdout.strip() == "/"
        no_shell = runner.run([*run, IMAGE, "/bin/sh", "-c", "true"], check=False)
        assert no_shell.returncode != 0
    finally:
        runner.run(["docker", "image", "rm", "-f", IMAGE], check=False)
