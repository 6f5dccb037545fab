"""Deploy a smoke-tested image to a board: docker load, or a rootfs bundle run with chroot.

The order is what makes it safe:
1. probe the board (one SSH command): CPU architecture, Docker, free space,
   what runs now; a board of another architecture, without Docker (docker
   mode) or without the room is refused here, before any byte is sent;
2. copy the compressed artifact to ``<dir>/incoming/<sha>.tar.gz`` through a
   ``.part`` file: a dropped connection leaves only that partial file, and
   the next deploy resumes it; the copy is checked by sha256;
3. switch: ``docker load`` then retag ``<image>:current`` (the old one becomes
   ``:previous``), or unpack into ``releases/<id>.tmp``, rename, and swap the
   ``current`` symlink with a rename. Until this step the previous
   deployment is what runs, and an interrupted load tags nothing.
"""

from __future__ import annotations

import gzip
import json
import shlex
import shutil
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgepack.config import PLATFORM_ARCH, Project, Target
from edgepack.device.errors import BoardDiskFullError, BoardIncompatibleError
from edgepack.device.inventory import BoardSpec, Mode
from edgepack.device.ssh import Board, Transfer
from edgepack.errors import InputError
from edgepack.fsutil import atomic_path, sha256_file, write_json
from edgepack.runner import Runner

# `uname -m` of boards that run a platform's binaries natively.
MACHINES: dict[str, tuple[str, ...]] = {
    "linux/arm64": ("aarch64", "arm64"),
    "linux/arm/v7": ("armv7l", "armv8l"),
    "linux/amd64": ("x86_64",),
}
SPACE_MARGIN = 1.10  # a loaded image takes about its uncompressed size; keep 10% spare
KEEP_RELEASES = 2  # current and previous


@dataclass(frozen=True)
class Artifact:
    mode: Mode
    path: Path  # .tar.gz on the host
    sha256: str
    bytes: int
    image_id: str  # sha256:...
    image_bytes: int  # unpacked size: what the board must have room for
    image: str  # repository (edgepack/rpi4), tagged :current on the board
    run: str  # bundle mode: the board's `run` script

    @property
    def short_id(self) -> str:
        return self.image_id.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class BoardFacts:
    machine: str
    kernel: str
    docker: str  # server version, "" without docker
    current: str  # image id (docker) or release (bundle) deployed now, "" when none
    free: dict[str, tuple[int, str]]  # label -> (free bytes, filesystem id)


@dataclass(frozen=True)
class DeployResult:
    board: str
    mode: Mode
    image_id: str
    previous: str
    changed: bool
    transfer: Transfer | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["transfer"] = asdict(self.transfer) if self.transfer else None
        return data


def target_dir(spec: BoardSpec, target: Target) -> str:
    return f"{spec.dir}/{target.name}"


# -- the artifact (host side) -------------------------------------------------------------------


def built_image(project: Project, target: Target) -> dict[str, Any]:
    """The smoke-tested image of the last build: build/<target>/report.json and image.tar."""
    report_path = project.build_dir / target.name / "report.json"
    tar = project.build_dir / target.name / "image.tar"
    if not report_path.is_file() or not tar.is_file():
        raise InputError(
            f"deploying failed because there is no smoke-tested build of {target.name} ({tar} is missing).",
            hint=f"Build it first: edgepack build --target {target.name}",
        )
    report = json.loads(report_path.read_text())
    return {**report["image"], "tar": str(tar), "model": report.get("model", {})}


def prepare_artifact(project: Project, target: Target, *, mode: Mode, runner: Runner) -> Artifact:
    """The compressed image (docker) or rootfs (bundle), made once per image under build/<target>/deploy/."""
    image = built_image(project, target)
    short = image["id"].removeprefix("sha256:")[:12]
    out = project.build_dir / target.name / "deploy" / f"{mode}-{short}.tar.gz"
    meta_path = out.with_suffix(".json")
    if not (out.is_file() and meta_path.is_file()):
        with atomic_path(out) as tmp:
            if mode == "docker":
                _gzip(Path(image["tar"]), tmp)
            else:
                _export_rootfs(image["tag"], tmp, runner=runner)
        write_json(meta_path, {"sha256": sha256_file(out), "config": _image_config(image["tag"], runner)})
    meta = json.loads(meta_path.read_text())
    return Artifact(
        mode=mode,
        path=out,
        sha256=meta["sha256"],
        bytes=out.stat().st_size,
        image_id=image["id"],
        image_bytes=int(image["bytes"]),
        image=target.image,
        run=run_script(meta["config"], image_id=image["id"]),
    )


def _gzip(src: Path, dest: Path) -> None:
    """Deterministic gzip (no name, mtime 0): the same image gives the same bytes and sha256."""
    with (
        src.open("rb") as fin,
        dest.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as fout,
    ):
        shutil.copyfileobj(fin, fout, 1 << 20)


def _export_rootfs(tag: str, dest: Path, *, runner: Runner) -> None:
    """The image's filesystem, flattened (docker create + docker export), gzipped."""
    cid = runner.run(
        ["docker", "create", "--network", "none", "--pull=never", tag], what=f"docker create {tag}"
    ).stdout.strip()
    try:
        raw = dest.with_name(dest.name + ".tar")
        runner.run(["docker", "export", "--output", str(raw), cid], what=f"docker export of {tag}")
        _gzip(raw, dest)
        raw.unlink()
    finally:
        runner.run(["docker", "rm", "--force", cid], what="docker rm", check=False)


def _image_config(tag: str, runner: Runner) -> dict[str, Any]:
    out = runner.run(
        ["docker", "image", "inspect", "--format", "{{json .Config}}", tag],
        what=f"docker image inspect {tag}",
        mutates=False,
    ).stdout
    config: dict[str, Any] = json.loads(out or "{}")
    return config


def run_script(config: dict[str, Any], *, image_id: str) -> str:
    """What ``docker run`` would do with the image's config, as a chroot (bundle mode).

    Like a container: the environment is only the image's, the user is the
    image's, and (where the board has util-linux's unshare) the process gets
    its own /proc and the board's /sys and /dev in a private mount namespace.
    """
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    env += [e for e in config.get("Env") or [] if not e.startswith("PATH=")]
    user = config.get("User") or "0:0"
    entry = [
        *(config.get("Entrypoint") or []),
        *([] if config.get("Entrypoint") else config.get("Cmd") or []),
    ]
    mounts = 'mount --rbind /sys "$0/sys" && mount --rbind /dev "$0/dev" && exec "$@"'
    return "\n".join(
        [
            "#!/bin/sh",
            f"# edgepack bundle of image {image_id}: its entrypoint, chrooted into ./rootfs.",
            "# QEMU_CPU passes through when set (boards emulated for tests); a real board has none.",
            'root=$(cd "$(dirname "$0")" && pwd -P)/rootfs',
            f"set -- env -i {' '.join(shlex.quote(e) for e in env)} ${{QEMU_CPU:+QEMU_CPU=$QEMU_CPU}} \\",
            f'  chroot --userspec={shlex.quote(user)} "$root" {shlex.join(entry)} "$@"',
            "if command -v unshare >/dev/null 2>&1; then",
            '  exec unshare --mount --pid --fork --mount-proc="$root/proc" \\',
            f'    sh -c {shlex.quote(mounts)} "$root" "$@"',
            "fi",
            'exec "$@"',
            "",
        ]
    )


# -- probing the board ---------------------------------------------------------------------------


def probe_script(spec: BoardSpec, target: Target) -> str:
    """One round trip, read-only: key=value lines."""
    tdir = shlex.quote(target_dir(spec, target))
    sudo = "sudo -n " if spec.sudo else ""
    image = shlex.quote(f"{target.image}:current")
    return "\n".join(
        [
            'echo "machine=$(uname -m)"',
            'echo "kernel=$(uname -r)"',
            'free() { d=$2; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; '
            'echo "free_$1=$(stat -f -c "%a %S %i" "$d")"; }',
            f"free dir {shlex.quote(spec.dir)}",
            f'if [ -L {tdir}/current ]; then echo "release=$(readlink {tdir}/current)"; fi',
            "if command -v docker >/dev/null 2>&1; then",
            f'  echo "docker=$({sudo}docker version --format "{{{{.Server.Version}}}}" 2>/dev/null)"',
            f'  echo "image=$({sudo}docker image inspect --format "{{{{.Id}}}}" {image} 2>/dev/null)"',
            f'  root=$({sudo}docker info --format "{{{{.DockerRootDir}}}}" 2>/dev/null)',
            '  if [ -d "$root" ]; then free docker "$root"; fi',
            "fi",
        ]
    )


def parse_probe(text: str, *, mode: Mode) -> BoardFacts:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    free = {}
    for key, value in values.items():
        words = value.split()
        if key.startswith("free_") and len(words) == 3 and words[0].isdigit():
            free[key.removeprefix("free_")] = (int(words[0]) * int(words[1]), words[2])
    current = values.get("image", "") if mode == "docker" else values.get("release", "")
    return BoardFacts(
        machine=values.get("machine", ""),
        kernel=values.get("kernel", ""),
        docker=values.get("docker", ""),
        current=current.strip(),
        free=free,
    )


def probe(board: Board, target: Target) -> BoardFacts:
    out = board.sh(probe_script(board.spec, target), what=f"probing board {board.spec.name}").stdout
    return parse_probe(out, mode=board.spec.mode)


def check_board(facts: BoardFacts, spec: BoardSpec, target: Target, artifact: Artifact | None) -> None:
    """Refuse, before any transfer, a board that cannot take this target."""
    machines = MACHINES.get(target.platform, (PLATFORM_ARCH[target.platform][1],))
    if facts.machine not in machines:
        raise BoardIncompatibleError(
            f"board {spec.name} is {facts.machine or 'of an unknown architecture'} (uname -m) but target "
            f"{target.name} is {target.platform}: nothing was sent.",
            hint=f"Check 'target:' of this board in the inventory (a {target.platform} board reports "
            f"{' or '.join(machines)}).",
        )
    if spec.mode == "docker" and not facts.docker:
        raise BoardIncompatibleError(
            f"board {spec.name} has no working Docker (docker version failed or docker is not installed).",
            hint="Install and start Docker on the board, or deploy a rootfs bundle: mode: bundle "
            "(inventory) or --mode bundle.",
        )
    if artifact is not None:
        check_space(facts, spec, artifact)


def check_space(facts: BoardFacts, spec: BoardSpec, artifact: Artifact) -> None:
    """The compressed copy lands in ``dir``; the unpacked image in ``dir`` (bundle) or the docker root.

    When the docker root's filesystem is unknown or the same, both count against ``dir``.
    """
    unpacked = int(artifact.image_bytes * SPACE_MARGIN)
    needs = {"dir": artifact.bytes + unpacked}
    docker = facts.free.get("docker")
    if spec.mode == "docker" and docker is not None and docker[1] != facts.free.get("dir", (0, ""))[1]:
        needs = {"dir": artifact.bytes, "docker": unpacked}
    for label, need in needs.items():
        have = facts.free.get(label, (None, ""))[0]
        if have is not None and have < need:
            where = spec.dir if label == "dir" else "the docker root"
            raise BoardDiskFullError(
                f"board {spec.name} has {have / 1e6:.0f} MB free in {where} but the deployment needs "
                f"{need / 1e6:.0f} MB: nothing was sent.",
                hint="Free space on the board (docker image prune; old files), or set a larger 'dir:'.",
            )


# -- deploying ----------------------------------------------------------------------------------


def deploy(board: Board, target: Target, artifact: Artifact) -> DeployResult:
    t0 = time.perf_counter()
    spec = board.spec
    facts = probe(board, target)
    check_board(facts, spec, target, None)
    deployed = facts.current == (
        artifact.image_id if spec.mode == "docker" else f"releases/{artifact.short_id}"
    )
    if deployed:
        return DeployResult(
            spec.name,
            spec.mode,
            artifact.image_id,
            facts.current,
            False,
            None,
            round(time.perf_counter() - t0, 3),
        )
    check_space(facts, spec, artifact)
    remote = f"{spec.dir}/incoming/{artifact.sha256[:16]}.tar.gz"
    transfer = board.copy_in(artifact.path, remote, sha256=artifact.sha256)
    script = (
        _switch_docker(spec, artifact, remote)
        if spec.mode == "docker"
        else _switch_bundle(spec, target, artifact, remote)
    )
    board.sh(script, what=f"switching board {spec.name} to {artifact.short_id}")
    return DeployResult(
        spec.name,
        spec.mode,
        artifact.image_id,
        facts.current,
        True,
        transfer,
        round(time.perf_counter() - t0, 3),
    )


def _switch_docker(spec: BoardSpec, artifact: Artifact, remote: str) -> str:
    sudo = "sudo -n " if spec.sudo else ""
    current, previous = (shlex.quote(f"{artifact.image}:{t}") for t in ("current", "previous"))
    image_id = shlex.quote(artifact.image_id)
    return "\n".join(
        [
            "set -e",
            f"{sudo}docker load --quiet --input {shlex.quote(remote)} >/dev/null",
            f"{sudo}docker image inspect --format '{{{{.Id}}}}' {image_id} >/dev/null",
            f"old=$({sudo}docker image inspect --format '{{{{.Id}}}}' {current} 2>/dev/null || true)",
            f'if [ -n "$old" ] && [ "$old" != {image_id} ]; then {sudo}docker tag "$old" {previous}; fi',
            f"{sudo}docker tag {image_id} {current}",
            f"rm -f {shlex.quote(remote)}",
        ]
    )


def _switch_bundle(spec: BoardSpec, target: Target, artifact: Artifact, remote: str) -> str:
    sudo = "sudo -n " if spec.sudo else ""
    tdir = shlex.quote(target_dir(spec, target))
    rel = f"releases/{artifact.short_id}"
    return "\n".join(
        [
            "set -e",
            f"cd {tdir} 2>/dev/null || {{ mkdir -p {tdir}/releases && cd {tdir}; }}",
            "mkdir -p releases",
            f"if [ ! -d {rel} ]; then",
            f"  rm -rf {rel}.tmp && mkdir -p {rel}.tmp/rootfs",
            f"  {sudo}tar -xzf {shlex.quote(remote)} -C {rel}.tmp/rootfs --numeric-owner",
            f"  printf '%s' {shlex.quote(artifact.run)} > {rel}.tmp/run && chmod 755 {rel}.tmp/run",
            f"  mv {rel}.tmp {rel}",
            "fi",
            "old=$(readlink current 2>/dev/null || true)",
            f"ln -sfn {rel} current.new && mv -T current.new current",
            f'if [ -n "$old" ] && [ "$old" != {rel} ]; then',
            '  ln -sfn "$old" previous.new && mv -T previous.new previous',
            "fi",
            # Keep current and previous; older releases go.
            'keep="$(readlink current) $(readlink previous 2>/dev/null || true)"',
            f'for r in releases/*; do case " $keep " in *" $r "*) ;; *) {sudo}rm -rf "$r" ;; esac; done',
            f"rm -f {shlex.quote(remote)}",
        ]
    )


def runtime_argv(
    spec: BoardSpec, target: Target, command: list[str], *, mounts: dict[str, str] | None = None
) -> list[str]:
    """The deployed runtime on the board, running ``command`` (smoke, bench, serve)."""
    sudo = ["sudo", "-n"] if spec.sudo else []
    if spec.mode == "bundle":
        return [*sudo, f"{target_dir(spec, target)}/current/run", *command]
    argv = [
        *sudo,
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        target.platform,
        "--pull=never",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        # passed through only when set: QEMU-emulated test boards set it, real boards do not
        "--env",
        "QEMU_CPU",
    ]
    for host, inside in sorted((mounts or {}).items()):
        argv += ["--volume", f"{host}:{inside}"]
    return [*argv, f"{target.image}:current", *command]


def image_tar_id(tar: Path) -> str:
    """The image id recorded in a `docker save` tar (its config blob's name)."""
    with tarfile.open(tar) as tf:
        member = tf.extractfile("manifest.json")
        manifest = json.loads(member.read()) if member else []
    config = manifest[0]["Config"]
    return "sha256:" + Path(config).name.removesuffix(".json")
