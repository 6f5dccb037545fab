"""docker and buildx command lines, as pure functions unit-tested on their exact output.

The network rule of this project: builds and containers get ``--network
none`` (dockerd runs without a bridge), and nothing is ever pulled: every
base is built locally.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import CommandError
from edgepack.runner import Runner


@dataclass(frozen=True)
class BuildxOptions:
    """Where a build runs and which layer cache it shares; none of it changes the image.

    ``builder`` is a buildx builder: ``default`` (the local engine), the
    ``edgepack`` builder of native nodes (invoke builders.add), or CI's
    docker-container builder. ``cache_from``/``cache_to`` are buildx cache
    specs, e.g. ``type=gha,scope=rpi4`` in GitHub Actions.
    """

    builder: str = "default"
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Push:
    """Push to a registry instead of loading into the engine, with attestations.

    SBOM and provenance attestations need a docker-container (or remote)
    builder: the ``docker`` driver refuses them.
    """

    metadata_file: Path  # buildx writes the pushed digest here (containerimage.digest)


def buildx_argv(
    *,
    context: Path,
    dockerfile: Path,
    platform: str,
    tags: Sequence[str],
    labels: Mapping[str, str],
    build_args: Mapping[str, str],
    iidfile: Path | None,
    options: BuildxOptions | None = None,
    push: Push | None = None,
) -> list[str]:
    options = options or BuildxOptions()
    argv = ["docker", "buildx", "build", "--builder", options.builder, "--platform", platform]
    output = ["--load"] if push is None else ["--push", "--sbom=true", "--provenance=mode=max"]
    argv += ["--network", "none", "--pull=false", *output, "--file", str(dockerfile)]
    argv += ["--iidfile", str(iidfile)] if iidfile else []
    argv += ["--metadata-file", str(push.metadata_file)] if push else []
    for spec in options.cache_from:
        argv += ["--cache-from", spec]
    for spec in options.cache_to:
        argv += ["--cache-to", spec]
    for tag in tags:
        argv += ["--tag", tag]
    for key in sorted(labels):
        argv += ["--label", f"{key}={labels[key]}"]
    for key in sorted(build_args):
        argv += ["--build-arg", f"{key}={build_args[key]}"]
    return [*argv, str(context)]


def buildx_create_argv(
    *, builder: str, node: str, platforms: Sequence[str], endpoint: str, append: bool
) -> list[str]:
    """A BuildKit node on ``endpoint``; ``--platform`` says what it builds natively (buildx prefers it)."""
    first = ["--append"] if append else ["--driver", "docker-container"]
    argv = ["docker", "buildx", "create", *first, "--name", builder, "--node", node]
    return [*argv, "--platform", ",".join(platforms), endpoint]


def run_argv(
    *,
    image: str,
    platform: str,
    qemu_cpu: str | None,
    command: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    memory_mb: int | None = None,
) -> list[str]:
    """A locked-down, throw-away container: no network, read-only, no capabilities.

    ``memory_mb``: the board's RAM, as a hard limit with no swap on top
    (--memory-swap equal to --memory). Under QEMU the emulator's own memory
    counts too, so the container is held tighter than the board.
    """
    argv = ["docker", "run", "--rm", "--network", "none", "--platform", platform, "--pull=never"]
    argv += ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    if memory_mb is not None:
        argv += ["--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m"]
    if qemu_cpu:
        # The binfmt F flag makes the kernel start QEMU for the container's
        # binaries; QEMU reads QEMU_CPU from their environment.
        argv += ["--env", f"QEMU_CPU={qemu_cpu}"]
    for key in sorted(env or {}):
        argv += ["--env", f"{key}={(env or {})[key]}"]
    return [*argv, image, *command]


def save_argv(*, image: str, output: Path) -> list[str]:
    return ["docker", "save", "--output", str(output), image]


@dataclass(frozen=True)
class ImageInfo:
    id: str
    size: int
    architecture: str
    labels: dict[str, str]


def inspect_image(image: str, *, runner: Runner) -> ImageInfo | None:
    """The engine's view of an image, or None when it does not have it."""
    try:
        result = runner.run(["docker", "image", "inspect", image], what="docker image inspect", mutates=False)
    except CommandError:
        return None
    if not result.stdout:  # dry run
        return None
    data = json.loads(result.stdout)[0]
    return ImageInfo(
        id=data["Id"],
        size=int(data["Size"]),
        architecture=data.get("Architecture", ""),
        labels=dict((data.get("Config") or {}).get("Labels") or {}),
    )
