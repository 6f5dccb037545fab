from __future__ import annotations

from pathlib import Path

from edgepack.pipeline.docker import BuildxOptions, Push, buildx_argv, buildx_create_argv, run_argv, save_argv


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


def test_buildx_argv_with_builder_and_github_cache() -> None:
    options = BuildxOptions("builder-1", ("type=gha,scope=rpi4",), ("type=gha,scope=rpi4,mode=max",))
    argv = buildx_argv(
        context=Path("/b/ctx"), dockerfile=Path("/d"), platform="linux/arm64", tags=["i:t"], labels={},
        build_args={}, iidfile=Path("/b/iid"), options=options,
    )  # fmt: skip
    assert argv == [
        "docker", "buildx", "build", "--builder", "builder-1", "--platform", "linux/arm64",
        "--network", "none", "--pull=false", "--load", "--file", "/d", "--iidfile", "/b/iid",
        "--cache-from", "type=gha,scope=rpi4", "--cache-to", "type=gha,scope=rpi4,mode=max",
        "--tag", "i:t", "/b/ctx",
    ]  # fmt: skip


def test_buildx_argv_push_with_attestations() -> None:
    argv = buildx_argv(
        context=Path("/b/ctx"), dockerfile=Path("/d"), platform="linux/arm64", tags=["ghcr.io/o/e:v1"],
        labels={}, build_args={}, iidfile=None, options=BuildxOptions("ci", ("type=gha,scope=rpi4",)),
        push=Push(metadata_file=Path("/b/meta.json")),
    )  # fmt: skip
    assert argv == [
        "docker", "buildx", "build", "--builder", "ci", "--platform", "linux/arm64",
        "--network", "none", "--pull=false", "--push", "--sbom=true", "--provenance=mode=max", "--file", "/d",
        "--metadata-file", "/b/meta.json", "--cache-from", "type=gha,scope=rpi4", "--tag", "ghcr.io/o/e:v1",
        "/b/ctx",
    ]  # fmt: skip


def test_buildx_create_argv_first_node_and_appended() -> None:
    first = buildx_create_argv(builder="edgepack", node="local0", platforms=["linux/amd64"],
                               endpoint="unix:///var/run/docker.sock", append=False)  # fmt: skip
    assert first == ["docker", "buildx", "create", "--driver", "docker-container", "--name", "edgepack",
                     "--node", "local0", "--platform", "linux/amd64",
                     "unix:///var/run/docker.sock"]  # fmt: skip
    appended = buildx_create_argv(builder="edgepack", node="pi5", platforms=["linux/arm64", "linux/arm/v7"],
                                  endpoint="ssh://pi@pi5.lan", append=True)  # fmt: skip
    assert appended == ["docker", "buildx", "create", "--append", "--name", "edgepack", "--node", "pi5",
                        "--platform", "linux/arm64,linux/arm/v7", "ssh://pi@pi5.lan"]  # fmt: skip
