"""Test boards in miniature: a real OpenSSH server on 127.0.0.1 whose sessions run in an arm64 rootfs.

Each board is
- an arm64 Debian userland (dash, coreutils, tar, gzip, the docker CLI) unpacked
  from the locked .debs in board/debian-bookworm-arm64.json, cached under build/;
- ``/usr/sbin/sshd -D`` on 127.0.0.1:<free port> with generated host and user
  keys, key authentication only, and a ForceCommand that runs every session
  ``chroot``ed in that rootfs (private mount and pid namespaces, /proc and /dev
  mounted): ``uname -m`` says aarch64 and every binary runs under QEMU with
  QEMU_CPU=cortex-a72, as on a Raspberry Pi 4;
- optionally its own docker engine (a second dockerd, no bridge, its socket at
  the rootfs's /run/docker.sock), the engine a board with Docker would have.
The only thing faked is the hardware's sensors: a thermal zone file and a
``vcgencmd`` script that prints fixed values, so that the probes have something
to read on an x86 host.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgepack.debian import fetch_debs, read_lock
from edgepack.debian.debfile import PathFilter, extract_deb, read_deb
from edgepack.device.inventory import BoardSpec, parse_host
from edgepack.fsutil import atomic_path
from edgepack.locks.drift import DebianLockRef, sync_debian
from edgepack.locks.store import Store
from edgepack.runner import Runner

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BOARD_LOCK = HERE / "board" / "debian-bookworm-arm64.json"
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# Of docker.io only the CLI is wanted: the board's engine is a second dockerd on the host.
DROP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "usr/sbin/dockerd",
    "usr/bin/docker-proxy",
    "usr/sbin/docker-init",
    "usr/share/docker.io",
    "usr/lib/systemd",
    "etc/init.d",
    "etc/init",
)
VCGENCMD = """#!/bin/sh
# Test board: a Raspberry Pi's firmware tool, with fixed answers.
case "$1" in
  measure_temp) echo "temp=51.5'C" ;;
  get_throttled) echo "throttled=0x50000" ;;
  *) echo "vcgencmd: $1: not in the test board" >&2; exit 1 ;;
esac
"""
SESSION = """#!/bin/sh
# Every SSH session of test board {name}: inside its arm64 rootfs, under QEMU (cortex-a72).
cmd=${{SSH_ORIGINAL_COMMAND:-/bin/sh}}
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root QEMU_CPU=cortex-a72 {docker_env} \\
  unshare --mount --pid --fork --mount-proc={root}/proc \\
  sh -c 'mount --rbind "$0" "$0" && mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" \\
  && mount -t sysfs sysfs "$0/sys" && mount --bind "$0/../thermal" "$0/sys/class/thermal" \\
  && exec chroot "$0" /bin/sh -c "$1"' {root} "$cmd"
"""
SSHD_CONFIG = """ListenAddress 127.0.0.1
Port {port}
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
ForceCommand {session}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def board_userland(cache: Path) -> Path:
    """The arm64 userland of every test board, unpacked once (hard-link copies per board)."""
    cache = cache.resolve()  # apt runs in another folder
    runner = Runner(echo=False)
    # The test boards' lock follows the product's policy: entries the mirror dropped are re-resolved.
    ref = DebianLockRef(BOARD_LOCK, SOURCES, "test-board", cache / "apt" / "testboard-arm64")
    sync_debian(ref, store=Store.default(), runner=runner, locked=False, root=HERE)
    lock = read_lock(BOARD_LOCK)
    out = cache / "testboard" / lock.digest()[:16]
    if out.is_dir():
        return out
    debs = fetch_debs(
        lock,
        sources=SOURCES,
        runner=runner,
    )
    with atomic_path(out, is_dir=True) as tmp:
        for name in ("bin", "sbin", "lib"):
            (tmp / "usr" / name).mkdir(parents=True, exist_ok=True)
            (tmp / name).symlink_to(f"usr/{name}")
        for deb in debs:
            extract_deb(read_deb(deb), tmp, paths=PathFilter(drop=DROP))
        for rel in ("proc", "dev", "run", "tmp", "root", "etc", "var/tmp", "var/lib"):
            (tmp / rel).mkdir(parents=True, exist_ok=True)
        (tmp / "etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nedge:x:1000:1000::/home/edge:/bin/sh\n"
        )
        (tmp / "etc/group").write_text("root:x:0:\nedge:x:1000:\n")
        (tmp / "bin/sh").unlink(missing_ok=True)
        (tmp / "usr/bin/sh").symlink_to("dash")
        (tmp / "sys").mkdir()
        (tmp / "usr/bin/vcgencmd").write_text(VCGENCMD)
        (tmp / "usr/bin/vcgencmd").chmod(0o755)
    return out


@dataclass
class SshBoard:
    name: str
    dir: Path
    port: int
    spec: BoardSpec
    docker: bool
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.dir / "root"

    def docker_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The board's engine, seen from the host (to check what the board holds)."""
        host = f"unix://{self.root}/run/docker.sock"
        return subprocess.run(["docker", "-H", host, *args], capture_output=True, text=True, check=False)

    def start(self) -> None:
        if self.docker and "dockerd" not in self.procs:
            self._start_dockerd()
        argv = ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")]
        with (self.dir / "sshd.log").open("ab") as log:  # the child keeps its own descriptor
            self.procs["sshd"] = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        _wait(lambda: _listening(self.port), what=f"sshd of {self.name}", log=self.dir / "sshd.log")

    def _start_dockerd(self) -> None:
        d = self.dir / "dockerd"
        d.mkdir(exist_ok=True)
        sock = self.root / "run" / "docker.sock"
        argv = [
            "dockerd",
            "--data-root",
            str(self.root / "var/lib/docker"),
            "--exec-root",
            str(d / "exec"),
            "--pidfile",
            str(d / "pid"),
            "--host",
            f"unix://{sock}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
        ]
        with (d / "log").open("ab") as log:
            self.procs["dockerd"] = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        _wait(lambda: self.docker_cli("info").returncode == 0, what=f"dockerd of {self.name}", log=d / "log")

    def kill_sessions(self) -> None:
        """Drop every SSH connection and the listener (the board 'goes away')."""
        sshd = self.procs.pop("sshd", None)
        if sshd is not None:
            os.killpg(sshd.pid, signal.SIGKILL)  # its session children share the group
            sshd.wait()

    def stop(self) -> None:
        self.kill_sessions()
        dockerd = self.procs.pop("dockerd", None)
        if dockerd is not None:
            dockerd.terminate()
            try:
                dockerd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                dockerd.kill()
                dockerd.wait()


def make_board(base: Path, userland: Path, *, name: str, docker: bool, arm64: bool = True) -> SshBoard:
    d = base / name
    root = d / "root"
    shutil.copytree(userland, root, symlinks=True, copy_function=os.link)
    zone = d / "thermal" / "thermal_zone0"  # bound over the board's /sys/class/thermal
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("51540\n")
    port = free_port()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_ed25519")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user_ed25519")], check=True)
    (d / "authorized_keys").write_text((d / "user_ed25519.pub").read_text())
    host_pub = (d / "host_ed25519.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    docker_env = "DOCKER_HOST=unix:///run/docker.sock" if docker else ""
    session = SESSION.format(name=name, root=root, docker_env=docker_env)
    if not arm64:  # a board of another architecture: the host's own x86-64 userland
        session = '#!/bin/sh\nexec /bin/sh -c "${SSH_ORIGINAL_COMMAND:-/bin/sh}"\n'
    (d / "session").write_text(session)
    (d / "session").chmod(0o755)
    (d / "sshd_config").write_text(SSHD_CONFIG.format(port=port, dir=d, session=d / "session"))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    spec = parse_host(
        f"root@127.0.0.1:{port}",
        target="rpi4",
        key=str(d / "user_ed25519"),
        known_hosts=str(d / "known_hosts"),
        mode="docker" if docker else "bundle",
    )
    spec = replace(spec, name=name, dir="/var/lib/edgepack" if arm64 else str(d / "var-lib-edgepack"))
    board = SshBoard(name=name, dir=d, port=port, spec=spec, docker=docker)
    board.start()
    return board


@contextlib.contextmanager
def boards(base: Path, userland: Path, *specs: tuple[str, bool]) -> Iterator[list[SshBoard]]:
    made: list[SshBoard] = []
    try:
        for name, docker in specs:
            made.append(make_board(base, userland, name=name, docker=docker))
        yield made
    finally:
        for board in made:
            board.stop()


class DroppingProxy:
    """A TCP relay on 127.0.0.1 that cuts the connection after ``drop_after`` bytes upstream."""

    def __init__(self, target_port: int, *, drop_after: int) -> None:
        self.target_port = target_port
        self.drop_after = drop_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.dropped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
                threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
                sent += len(data) if counted else 0
                if counted and sent >= self.drop_after:
                    self.dropped.set()
                    break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(ready: object, *, what: str, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {seconds} s: {log.read_text()[-2000:]}")
