"""Integration tests use the real docker engine, buildx and QEMU.

Locally a missing tool skips them with the reason; in CI (CI=1) it fails
them, so a broken toolchain can never pass as a green run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _problem() -> str | None:
    if shutil.which("docker") is None:
        return "docker CLI not found (run: edgepack doctor --fix)"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return "docker engine not running (run: edgepack doctor --fix)"
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, check=False)
    if buildx.returncode != 0:
        return "docker buildx plugin missing (run: edgepack doctor --fix)"
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        return "QEMU not registered for arm64 in binfmt_misc (run: edgepack doctor --fix)"
    return None


@pytest.fixture(scope="session", autouse=True)
def each_build_its_own() -> Iterator[None]:
    """No machine-wide sharing of built wheels and steps (EDGEPACK_BUILT) unless a test asks for it:
    each test's fresh project builds what it asserts was built. test_shared_steps.py and
    test_wheels.py turn it on, in folders of their own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPACK_BUILT", "off")
        yield


@pytest.fixture(scope="session", autouse=True)
def toolchain() -> None:
    problem = _problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"integration toolchain unusable in CI: {problem}")
    pytest.skip(problem)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(REPO / "tests" / "integration"):
            item.add_marker(pytest.mark.integration)
