"""Builder nodes: which buildx node builds a target's platform natively, and where each target builds.

Outgrowing one machine: ``edgepack builders.add`` appends a native node (an
arm64 box reached over SSH) to the ``edgepack`` builder with ``docker buildx
create --append``. edgepack reads ``docker buildx inspect`` to learn which
platforms each node builds natively, and per target picks

1. a node that builds the target's platform natively (edgepack's builder
   first, then the local engine, which builds its own platform natively);
2. otherwise the local engine under QEMU, which needs the binfmt_misc entry;
3. otherwise neither: an error naming the target, the platform and the fix.

A node's native platforms are the ones given with ``--platform`` when it was
created (buildx marks them with ``*``), else the first one it lists: BuildKit
lists the worker's own platform first and appends the ones binfmt_misc
emulates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from edgepack.config import Target
from edgepack.errors import CommandError, ConfigError, ToolchainError
from edgepack.host.binfmt import EMULATORS, BinfmtMisc
from edgepack.pipeline.docker import buildx_create_argv
from edgepack.runner import Runner

BUILDER = "edgepack"  # the builder `edgepack builders.add` appends native nodes to
LOCAL = "default"  # the local engine's builder (docker driver)
UNUSABLE = ("error", "stopped")  # node states buildx cannot build on without help


@dataclass(frozen=True)
class Node:
    name: str
    endpoint: str
    status: str  # running, inactive (never booted), stopped, error
    platforms: tuple[str, ...]  # everything it builds, native and emulated, as buildx lists them
    declared: tuple[str, ...]  # given with --platform at create time (buildx marks them with *)

    @property
    def native(self) -> tuple[str, ...]:
        return self.declared or self.platforms[:1]


@dataclass(frozen=True)
class Builder:
    name: str
    driver: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Choice:
    builder: str
    node: str
    platform: str
    native: bool  # False: built (and smoke-tested) under QEMU on the local engine
    note: str = ""  # why a native node that exists was not taken

    def describe(self) -> str:
        how = "native" if self.native else "under QEMU"
        return f"{self.builder}/{self.node} ({self.platform} {how})" + (f"; {self.note}" if self.note else "")


# -- docker buildx output --------------------------------------------------------------------------


def parse_inspect(text: str) -> Builder:
    """``docker buildx inspect NAME``: a header, then ``Nodes:`` and one block per node."""
    header, _, body = text.partition("\nNodes:\n")
    head = _fields(header.splitlines())
    blocks: list[list[str]] = []
    for line in body.splitlines():
        if line.startswith("Name:"):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
    return Builder(head.get("Name", ""), head.get("Driver", ""), tuple(_node(_fields(b)) for b in blocks))


def _fields(lines: Sequence[str]) -> dict[str, str]:
    """``Key: value`` lines; indented lines (labels, GC policy) belong to the key above and are skipped."""
    out: dict[str, str] = {}
    for line in lines:
        if line[:1].isspace() or ":" not in line:
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def _node(fields: dict[str, str]) -> Node:
    listed = [p.strip() for p in fields.get("Platforms", "").split(",") if p.strip()]
    return Node(
        name=fields.get("Name", ""),
        endpoint=fields.get("Endpoint", ""),
        status=fields.get("Status", "") or ("error" if "Error" in fields else "unknown"),
        platforms=tuple(p.rstrip("*") for p in listed),
        declared=tuple(p.rstrip("*") for p in listed if p.endswith("*")),
    )


def parse_ls_names(text: str) -> list[str]:
    """Builder names from ``docker buildx ls --format json`` (one object a line; buildx 0.13 repeats some)."""
    names: list[str] = []
    for line in text.splitlines():
        if line.strip():
            name = json.loads(line)["Name"]
            names += [] if name in names else [name]
    return names


def inspect(name: str, *, runner: Runner) -> Builder | None:
    """The builder called ``name``, or None when buildx has none by that name."""
    result = runner.run(["docker", "buildx", "inspect", name], what=f"docker buildx inspect {name}",
                        check=False, mutates=False)  # fmt: skip
    if result.returncode != 0:
        if "no builder" in result.stderr:
            return None
        raise CommandError(f"docker buildx inspect {name} failed.", argv=result.argv,
                           returncode=result.returncode, output=result.stderr)  # fmt: skip
    return parse_inspect(result.stdout)


def list_builders(*, runner: Runner) -> list[Builder]:
    result = runner.run(
        ["docker", "buildx", "ls", "--format", "json"], what="docker buildx ls", mutates=False
    )
    found = [inspect(name, runner=runner) for name in parse_ls_names(result.stdout)]
    return [b for b in found if b is not None]


# -- the choice per target -------------------------------------------------------------------------


def choose(
    target: Target, *, builders: Sequence[Builder], binfmt: BinfmtMisc, named: str | None = None
) -> Choice:
    """Where ``target`` builds: a native node, else the local engine under QEMU, else an error.

    ``builders`` come in order of preference (edgepack's first). ``named``
    (``--builder``, e.g. CI's docker-container builder) restricts the choice
    to that builder, which may still emulate.
    """
    platform = target.platform
    pool = [b for b in builders if named is None or b.name == named]
    if named is not None and not pool:
        raise ConfigError(f"--builder {named}: buildx has no builder by that name.",
                          hint="See: edgepack builders.ls (or docker buildx ls).")  # fmt: skip
    skipped = [f"node {n.name} of {b.name} is {n.status}" for b in pool for n in b.nodes
               if n.status in UNUSABLE and platform in n.native]  # fmt: skip
    for builder in pool:
        for node in builder.nodes:
            if platform in node.native and node.status not in UNUSABLE:
                return Choice(builder.name, node.name, platform, native=True)
    note = "; ".join(skipped)
    emulator = EMULATORS.get(platform)
    registered = emulator is not None and (reg := binfmt.read(emulator.name)) is not None and reg.enabled
    local = named or LOCAL
    for builder in pool:
        for node in builder.nodes:
            if builder.name == local and platform in node.platforms and registered:
                return Choice(builder.name, node.name, platform, native=False, note=note)
    raise _no_builder(target, emulator=emulator.name if emulator else "", note=note, named=named)


def _no_builder(target: Target, *, emulator: str, note: str, named: str | None) -> ToolchainError:
    where = f"builder {named} does not build it natively" if named else "no builder node builds it natively"
    qemu = f"QEMU is not registered for it (binfmt_misc {emulator})" if emulator else "nothing emulates it"
    add = f"edgepack builders.add --node NAME --platform {target.platform} --endpoint ssh://user@host"
    return ToolchainError(
        f"target '{target.name}' needs {target.platform}: {where} and {qemu}"
        + (f" ({note})." if note else "."),
        hint=(
            f"Run: edgepack doctor --fix (QEMU, which the smoke test needs anyway); a native node takes "
            f"the image step off QEMU: {add}"
            if emulator
            else f"Add a native node: {add}"
        ),
    )


def choose_for(target: Target, *, runner: Runner, named: str | None = None) -> Choice:
    """``choose`` with what this host's buildx and binfmt_misc say now."""
    names = [named] if named else [BUILDER, LOCAL]
    found = [b for b in (inspect(n, runner=runner) for n in names) if b is not None]
    return choose(target, builders=found, binfmt=BinfmtMisc(), named=named)


# -- adding a native node --------------------------------------------------------------------------


def add(
    node: str, *, endpoint: str, platforms: Sequence[str], runner: Runner, bootstrap: bool = True
) -> Builder:
    """Append ``node`` (``ssh://user@host`` or a docker context) to edgepack's builder; boot it.

    The first node creates the builder (docker-container driver: BuildKit in
    a container on that host); later ones are appended. Booting pulls
    moby/buildkit on the node's own engine.
    """
    exists = inspect(BUILDER, runner=runner) is not None
    argv = buildx_create_argv(
        builder=BUILDER, node=node, platforms=platforms, endpoint=endpoint, append=exists
    )
    runner.run(argv, what=f"adding node {node} ({endpoint}) to builder {BUILDER}",
               hint="The endpoint must run Docker and accept this host's SSH key (BatchMode).")  # fmt: skip
    if bootstrap:
        runner.run(
            ["docker", "buildx", "inspect", "--bootstrap", BUILDER],
            what=f"booting builder {BUILDER}",
            hint=f"Nodes pull moby/buildkit. Undo: docker buildx rm --node {node} {BUILDER}",
        )
    return inspect(BUILDER, runner=runner) or Builder(BUILDER, "", ())
