"""docker and buildx command lines, as pure functions unit-tested on their exact output.

The network rule of this project: builds and containers get ``--network
none`` (dockerd runs without a bridge), and nothing is ever pulled: every
base is built locally.

Also the one place that knows the ``docker save`` format: ``reproducible_save``
rewrites a saved image so that the same layers give the same image ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from edgepack.errors import CommandError, InputError
from edgepack.runner import Runner


@dataclass(frozen=True)
class BuildxOptions:
    """Where a build runs and which layer cache it shares; none of it changes the image.

    ``builder`` is a buildx builder: ``default`` (the local engine), the
    ``edgepack`` builder of native nodes (edgepack builders.add), or CI's
    docker-container builder. ``cache_from``/``cache_to`` are buildx cache
    specs, e.g. ``type=gha,scope=rpi4`` in GitHub Actions. ``no_cache``
    builds every layer afresh: BuildKit keys a layer by its files' contents,
    not their times, so a cached layer can hide a build that is not
    reproducible (the test that builds twice uses it).
    """

    builder: str = "default"
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    no_cache: bool = False


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
    argv += ["--no-cache"] if options.no_cache else []
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
    volumes: Mapping[Path, str] | None = None,
    entrypoint: str | None = None,
) -> list[str]:
    """A locked-down, throw-away container: no network, read-only, no capabilities.

    ``memory_mb``: the board's RAM, as a hard limit with no swap on top
    (--memory-swap equal to --memory). Under QEMU the emulator's own memory
    counts too, so the container is held tighter than the board.
    ``volumes``: host folders mounted read-only at the given paths;
    ``entrypoint``: in place of the image's (e.g. /usr/bin/python3).
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
    for host, where in (volumes or {}).items():
        argv += ["-v", f"{host}:{where}:ro"]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    return [*argv, image, *command]


def save_argv(*, image: str, output: Path) -> list[str]:
    return ["docker", "save", "--output", str(output), image]


def load_argv(*, archive: Path) -> list[str]:
    return ["docker", "load", "--quiet", "--input", str(archive)]


def remove_image_argv(image: str) -> list[str]:
    return ["docker", "image", "rm", image]


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pinned_config(config: Mapping[str, Any], *, epoch: int) -> dict[str, Any]:
    """The image config with its ``created`` time and every history entry's set to ``epoch``.

    BuildKit writes the time of the build there; only BuildKit >= 0.11 takes
    SOURCE_DATE_EPOCH instead, and the Debian 12 engine's built-in one is 0.8.
    """
    created = rfc3339(epoch)
    out = dict(config)
    out["created"] = created
    out["history"] = [{**entry, "created": created} for entry in config.get("history") or []]
    return out


def config_bytes(config: Mapping[str, Any]) -> bytes:
    """One serialisation of a config (sorted keys, no spaces): the image ID is its sha256."""
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain ID of each layer (its own digest and all below it): unique per position."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else _sha256(f"{chain[-1]} {diff_id}".encode()))
    return chain


def reproducible_save(saved: Path, out: Path, *, epoch: int, tags: Sequence[str]) -> str:
    """Rewrite a ``docker save`` tar: config times at ``epoch``, the same layers; returns the image ID.

    ``out`` is itself a ``docker save`` tar (one ``<chain id>/layer.tar`` per
    layer, the config, manifest.json) whose names, times and owners are fixed:
    the same layers and config give the same bytes, and ``docker load`` of it
    makes an image whose ID is the sha256 of the config written.
    """
    with tarfile.open(saved) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        (manifest,) = json.loads(_open(src, "manifest.json").read())
        config = pinned_config(json.loads(_open(src, manifest["Config"]).read()), epoch=epoch)
        layers = [f"{c.removeprefix('sha256:')}/layer.tar" for c in chain_ids(config["rootfs"]["diff_ids"])]
        if len(layers) != len(manifest["Layers"]):
            raise InputError(
                f"{saved} holds {len(manifest['Layers'])} layers; its config names {len(layers)}."
            )
        for name, layer in zip(layers, manifest["Layers"], strict=True):
            dst.addfile(_entry(name.split("/")[0], epoch, directory=True))
            _add(dst, name, _open(src, layer), epoch)
        data = config_bytes(config)
        image_id = _sha256(data)
        config_name = f"{image_id.removeprefix('sha256:')}.json"
        entry = {"Config": config_name, "RepoTags": list(tags), "Layers": layers}
        _add(dst, config_name, io.BytesIO(data), epoch)
        _add(dst, "manifest.json", io.BytesIO(json.dumps([entry], sort_keys=True).encode()), epoch)
    return image_id


def _open(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = tar.extractfile(name)  # follows a link to another member
    if handle is None:
        raise InputError(f"{name} is not a file in {tar.name!s}.")
    return handle


def _add(tar: tarfile.TarFile, name: str, handle: IO[bytes], epoch: int) -> None:
    size = handle.seek(0, io.SEEK_END)
    handle.seek(0)
    tar.addfile(_entry(name, epoch, size=size), handle)


def _entry(name: str, epoch: int, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode, info.size, info.mtime = (0o755 if directory else 0o644), size, epoch
    return info


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
