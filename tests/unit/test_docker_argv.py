from __future__ import annotations

from pathlib import Path

from edgepack.docker import buildx_argv, run_argv, save_argv


def test_buildx_argv_exact() -> None:
    argv = buildx_argv(
        context=Path("/b/ctx"), dockerfile=Path("/p/docker/runtime.Dockerfile"), platform="linux/arm64",
        tags=["edgepack/rpi4:abc", "edgepack/rpi4:latest"], labels={"z": "1", "a": "x y"},
        build_args={"THREADS": "4", "PYTHON": "3.11"}, iidfile=Path("/b/iid"),
    )  # fmt: skip
    assert argv == [
        "docker", "buildx", "build", "--builder", "default", "--platform", "linux/arm64",
        "--network", "none", "--pull=false", "--load", "--file", "/p/docker/runtime.Dockerfile",
        "--iidfile", "/b/iid", "--tag", "edgepack/rpi4:abc", "--tag", "edgepack/rpi4:latest",
        "--label", "a=x y", "--label", "z=1", "--build-arg", "PYTHON=3.11", "--build-arg", "THREADS=4",
        "/b/ctx",
    ]  # fmt: skip


def test_run_argv_is_locked_down_and_sets_qemu_cpu() -> None:
    argv = run_argv(image="i:t", platform="linux/arm64", qemu_cpu="cortex-a72", command=["smoke"])
    assert argv == [
        "docker", "run", "--rm", "--network", "none", "--platform", "linux/arm64", "--pull=never",
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--env", "QEMU_CPU=cortex-a72", "i:t", "smoke",
    ]  # fmt: skip


def test_run_argv_native_has_no_qemu_cpu() -> None:
    assert not any("QEMU_CPU" in a for a in run_argv(image="i", platform="linux/amd64", qemu_cpu=None))


def test_save_argv() -> None:
    assert save_argv(image="i:t", output=Path("/o.tar")) == ["docker", "save", "--output", "/o.tar", "i:t"]
