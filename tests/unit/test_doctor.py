"""doctor against a simulated host: a fake runner plus a fake /etc, /sys, /opt and /proc tree."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console

from edgepack.errors import ConfigError, ToolchainError
from edgepack.host.binfmt import BinfmtMisc, parse_registration
from edgepack.host.checks import FIX_HINT, Check, Host
from edgepack.host.doctor import require_toolchain, run_doctor
from edgepack.host.pins import Pins, load_pins
from edgepack.runner import Result
from edgepack.ui.doctor import render_checks
from tests.conftest import FakeRunner, ok

DEB = b"not really a qemu-user .deb"
QEMU10 = "qemu-{} version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)\nCopyright (c) 2003-2025\n"
QEMU72 = "qemu-{} version 7.2.17 (Debian 1:7.2+dfsg-7+deb12u18)\n"
NO_DAEMON = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
)
# What the maintainer wrote by hand on the reference machine: doctor must write the same bytes.
SOURCES = (
    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n"
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
)
PREFERENCES = "Package: *\nPin: release n=trixie\nPin-Priority: 100\n"
ROWS = [
    "os",
    "root",
    "apt: trixie source",
    "docker engine",
    "dockerd running",
    "docker buildx",
    "qemu user",
    "binfmt_misc",
    "binfmt qemu-aarch64",
    "binfmt qemu-arm",
    "buildx platforms",
    "wheel toolchain",
    "shellcheck (workflow lint)",
    "openssh (device tasks)",
    "sd-card tools (flash)",
]
MUTATING = ("apt-get", "dpkg-deb", "mount")
LOCK_TIMEOUT = ("-o", "DPkg::Lock::Timeout=600")  # apt waits for dpkg's locks (doctor waits for the others)


def _unescape(text: str) -> bytes:
    return text.encode("ascii").decode("unicode_escape").encode("latin-1")


@dataclass(frozen=True)
class FakeKernel(BinfmtMisc):
    """binfmt_misc's semantics on plain files: register creates an entry, -1 removes it."""

    removed: list[str] = field(default_factory=list)

    def remove(self, name: str) -> None:
        self.removed.append(name)
        (self.root / name).unlink()

    def register(self, line: str) -> None:
        _, name, kind, offset, magic, mask, interpreter, flags = line.split(":")
        assert (kind, offset) == ("M", "")
        assert len(_unescape(magic)) == len(_unescape(mask)) == 20
        assert not (self.root / name).exists(), "the kernel refuses a duplicate name (EEXIST)"
        self.add(name, interpreter, flags, magic=_unescape(magic), mask=_unescape(mask))

    def add(self, name: str, interpreter: str, flags: str, *, magic: bytes, mask: bytes) -> None:
        text = f"enabled\ninterpreter {interpreter}\nflags: {flags}\noffset 0\n"
        (self.root / name).write_text(text + f"magic {magic.hex()}\nmask {mask.hex()}\n")


AARCH64_MAGIC = _unescape(r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00")
ARM_MAGIC = _unescape(r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00")
MASK = _unescape(r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff")


@dataclass
class World:
    """The simulated host; its handlers change it the way apt, dockerd and mount would."""

    root: Path
    runner: FakeRunner
    dockerd: bool = True
    daemon: bool = True
    buildx: str = "0.13.1+ds1 0.13.1+ds1-3"
    daemon_starts: bool = True
    cross: bool = True  # crossbuild-essential-* and patch installed
    ssh: bool = True  # openssh-client and openssh-server installed
    shellcheck: bool = True
    unlisted: tuple[str, ...] = ()  # platforms the default builder leaves out, binfmt or not
    sdcard: bool = True  # dosfstools, mtools, e2fsprogs, kmod, qemu-system-arm installed
    spawned: list[list[str]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kernel = FakeKernel(self.root / "proc/sys/fs/binfmt_misc")
        self.pins = load_pins()
        sha = hashlib.sha256(DEB).hexdigest()
        self.pins = dataclasses.replace(
            self.pins, qemu=dataclasses.replace(self.pins.qemu, deb_sha256_amd64=sha)
        )
        self.qemu_dir = self.root / "opt/edgepack/qemu"
        self.debian("12.11")
        self._handlers()
        inner = self.runner.run

        def run(argv, **kwargs):  # type: ignore[no-untyped-def]
            if [str(a) for a in argv][:2] == ["apt-get", "download"]:  # apt-get download writes to cwd
                (kwargs["cwd"] / "qemu-user_1%3a10.0.13+ds-0+deb13u1_amd64.deb").write_bytes(DEB)
            return inner(argv, **kwargs)

        self.runner.run = run  # type: ignore[method-assign]

    # -- state ------------------------------------------------------------------------------------

    def debian(self, version: str, distro: str = "debian") -> None:
        etc = self.root / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        major = version.split(".")[0]
        name = (
            f'PRETTY_NAME="Debian GNU/Linux {major}"' if distro == "debian" else 'PRETTY_NAME="Ubuntu 24.04"'
        )
        (etc / "os-release").write_text(f'{name}\nID={distro}\nVERSION_ID="{major}"\n')
        (etc / "debian_version").write_text(version + "\n")

    def ready(self) -> World:
        for path, text in self.trixie_files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.install_qemu("aarch64", QEMU10)
        self.install_qemu("arm", QEMU10)
        self.mount()
        self.kernel.add(
            "qemu-aarch64", str(self.qemu_dir / "qemu-aarch64"), "POCF", magic=AARCH64_MAGIC, mask=MASK
        )
        self.kernel.add("qemu-arm", str(self.qemu_dir / "qemu-arm"), "POCF", magic=ARM_MAGIC, mask=MASK)
        return self

    def bare(self) -> World:
        self.dockerd, self.daemon, self.buildx, self.cross = False, False, "", False
        self.ssh, self.shellcheck = False, False
        self.ssh, self.sdcard = False, False
        return self

    def trixie_files(self) -> dict[Path, str]:
        return {
            self.root / "etc/apt/sources.list.d/edgepack-trixie.sources": SOURCES,
            self.root / "etc/apt/preferences.d/edgepack-trixie": PREFERENCES,
        }

    def install_qemu(self, arch: str, version_line: str, where: Path | None = None) -> Path:
        path = where or self.qemu_dir / f"qemu-{arch}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(version_line.format(arch))
        return path

    def mount(self) -> None:
        self.kernel.root.mkdir(parents=True, exist_ok=True)
        (self.kernel.root / "register").touch()

    def host(self, *, euid: int = 0) -> Host:
        return Host(
            root=self.root,
            binfmt=self.kernel,
            euid=euid,
            arch="amd64",
            spawn=self.spawn,
            sleep=self.sleeps.append,
        )

    def spawn(self, argv: list[str], log: Path) -> None:
        self.spawned.append(list(argv))
        self.daemon = self.daemon_starts

    def doctor(self, *, fix: bool, euid: int = 0) -> list[Check]:
        self.runner.calls.clear()
        return run_doctor(runner=self.runner, fix=fix, host=self.host(euid=euid), pins=self.pins)

    def mutations(self) -> list[list[str]]:
        return [argv for argv in self.runner.calls if argv[0] in MUTATING]

    # -- the fake tools ---------------------------------------------------------------------------

    def _handlers(self) -> None:
        on = self.runner.on
        # Before the qemu-user handler: qemu-system-aarch64 --version is a probe of the SD-card tools.
        on(lambda a: tuple(a) in self.pins.sdcard.probes, lambda a: self._tool(self.sdcard, ""))
        on(lambda a: a[1:] == ["--version"] and "qemu" in a[0], self._qemu_version)
        on(
            lambda a: a == ["dockerd", "--version"],
            lambda a: self._tool(self.dockerd, "Docker version 26.1.5+dfsg1, build 411e817"),
        )
        on(
            lambda a: a == ["docker", "--version"],
            lambda a: self._tool(self.dockerd, "Docker version 26.1.5+dfsg1, build 411e817"),
        )
        on(lambda a: a[:2] == ["docker", "info"], lambda a: self._daemon("20.10.24+dfsg1\n"))
        on(lambda a: a[:3] == ["docker", "buildx", "version"], self.buildx_version)
        on(lambda a: a[:3] == ["docker", "buildx", "inspect"], lambda a: self._daemon(self._inspect()))
        on(lambda a: a[:2] == ["apt-get", "update"], ok())
        on(lambda a: a[:2] == ["apt-get", "install"], self._apt_install)
        on(lambda a: a[:2] == ["apt-get", "download"], ok())
        on(
            lambda a: a[1:] == ["--version"] and a[0] in self.pins.wheels.tools,
            lambda a: self._tool(self.cross, f"{a[0]} 12.2.0"),
        )
        on(lambda a: a[:2] == ["dpkg-deb", "-x"], self._unpack)
        on(lambda a: a[0] in ("ssh", "sshd") and a[1:] == ["-V"], lambda a: self._tool(self.ssh, ""))
        on(lambda a: a == ["shellcheck", "--version"], lambda a: self._tool(self.shellcheck, "ShellCheck"))
        on(
            lambda a: a[:3] == ["mount", "-t", "binfmt_misc"],
            lambda a: (self.mount(), Result(a, 0, "", ""))[1],
        )

    def _tool(self, installed: bool, stdout: str) -> Result:
        if not installed:
            raise ToolchainError("not installed")
        return Result([], 0, stdout, "")

    def _daemon(self, stdout: str) -> Result:
        if not self.dockerd:
            raise ToolchainError("docker is not installed")
        return Result([], 0, stdout, "") if self.daemon else Result([], 1, "", NO_DAEMON)

    def _qemu_version(self, argv: list[str]) -> Result:
        path = Path(argv[0])
        return self._tool(path.exists(), path.read_text() if path.exists() else "")

    def buildx_version(self, argv: list[str]) -> Result:
        if not self.buildx:
            return Result(argv, 1, "", "docker: 'buildx' is not a docker command.")
        return Result(argv, 0, f"github.com/docker/buildx {self.buildx}\n", "")

    def _inspect(self) -> str:
        listed = ["linux/amd64", "linux/386"]
        listed += ["linux/arm64"] * (self.kernel.read("qemu-aarch64") is not None)
        listed += ["linux/arm/v7", "linux/arm/v6"] * (self.kernel.read("qemu-arm") is not None)
        listed = [p for p in listed if p not in self.unlisted]
        return f"Name:   default\nDriver: docker\n\nNodes:\nName: default\nPlatforms: {', '.join(listed)}\n"

    def _apt_install(self, argv: list[str]) -> Result:
        if "crossbuild-essential-arm64" in argv:
            self.cross = True
        if "shellcheck" in argv:
            self.shellcheck = True
        if "qemu-system-arm" in argv:
            assert "--no-install-recommends" in argv
            self.sdcard = True
        if "docker.io" in argv:
            self.dockerd = True
        if "openssh-server" in argv:
            assert (self.root / "usr/sbin/policy-rc.d").read_text().endswith("exit 101\n")  # never started
            self.ssh = True
        if "docker-buildx=0.13.1+ds1-3" in argv:
            trixie_visible = (self.root / "etc/debian_version").read_text().startswith("13") or all(
                path.exists() for path in self.trixie_files()
            )
            if not trixie_visible:
                return Result(argv, 100, "", "E: Version '0.13.1+ds1-3' for 'docker-buildx' was not found")
            self.buildx = "0.13.1+ds1 0.13.1+ds1-3"
        return Result(argv, 0, "", "")

    def _unpack(self, argv: list[str]) -> Result:
        assert Path(argv[2]).read_bytes() == DEB
        for arch in ("aarch64", "arm"):
            self.install_qemu(arch, QEMU10, Path(argv[3]) / "usr/bin" / f"qemu-{arch}")
        return Result(argv, 0, "", "")


@pytest.fixture
def world(tmp_path: Path, fake_runner: FakeRunner) -> World:
    return World(tmp_path, fake_runner)


def _row(checks: list[Check], name: str) -> Check:
    (row,) = [check for check in checks if check.name == name]
    return row


def _render(checks: list[Check]) -> str:
    console = Console(file=io.StringIO(), width=300, color_system=None)
    render_checks(checks, console)
    return console.file.getvalue()  # type: ignore[attr-defined]


# -- every check ok -------------------------------------------------------------------------------


@pytest.mark.parametrize("fix", [False, True])
def test_a_ready_host_passes_every_check_and_changes_nothing(world: World, fix: bool) -> None:
    checks = world.ready().doctor(fix=fix)

    assert [check.name for check in checks] == ROWS
    assert all(check.ok and not check.fixed and not check.action for check in checks), checks
    assert world.mutations() == []
    assert _render(checks).rstrip().endswith("nothing changed")


# -- fix, then fix again --------------------------------------------------------------------------


def test_fix_sets_up_a_bare_debian_12_host_and_a_second_run_changes_nothing(world: World) -> None:
    first = world.bare().doctor(fix=True)

    assert all(check.ok for check in first), first
    assert {check.name for check in first if check.fixed} == set(ROWS) - {"os", "root", "buildx platforms"}
    for path, text in world.trixie_files().items():
        assert path.read_text() == text
        assert path.stat().st_mode & 0o777 == 0o644
    assert world.runner.calls.count(["apt-get", "update", *LOCK_TIMEOUT]) == 1
    assert [
        "apt-get",
        "install",
        *LOCK_TIMEOUT,
        "-y",
        "--no-install-recommends",
        "docker-buildx=0.13.1+ds1-3",
    ] in world.mutations()
    assert world.spawned == [["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false"]]
    for name in ("qemu-aarch64", "qemu-arm"):
        assert (world.qemu_dir / name).stat().st_mode & 0o777 == 0o755
        entry = world.kernel.read(name)
        assert entry is not None and entry.interpreter == str(world.qemu_dir / name) and "F" in entry.flags
    assert "changed: apt: trixie source, docker engine" in _render(first)

    second = world.doctor(fix=True)

    assert all(check.ok and not check.fixed for check in second), second
    assert world.mutations() == [] and len(world.spawned) == 1
    assert _render(second).rstrip().endswith("nothing changed")


def test_debian_13_needs_no_extra_source_and_installs_the_separate_cli(world: World) -> None:
    world.debian("13.1")
    checks = world.bare().doctor(fix=True)

    assert all(check.ok for check in checks), checks
    assert "apt: trixie source" not in [check.name for check in checks]
    assert not (world.root / "etc/apt").exists()
    assert ["apt-get", "install", *LOCK_TIMEOUT, "-y", "docker.io", "docker-cli"] in world.mutations()


# -- each failure says what to do -----------------------------------------------------------------


def _drop_f_flag(world: World) -> None:
    world.kernel.remove("qemu-aarch64")
    world.kernel.add(
        "qemu-aarch64", str(world.qemu_dir / "qemu-aarch64"), "P", magic=AARCH64_MAGIC, mask=MASK
    )


def _disable_arm(world: World) -> None:
    entry = world.kernel.root / "qemu-arm"
    entry.write_text(entry.read_text().replace("enabled", "disabled", 1))


def _drop_shellcheck(w: World) -> None:
    w.shellcheck = False


FAILURES = {
    "trixie source differs": (
        lambda w: next(iter(w.trixie_files())).write_text("Suites: trixie-backports\n"),
        "apt: trixie source",
        "write ",
    ),
    "no docker": (lambda w: setattr(w, "dockerd", False), "docker engine", "apt-get install -y docker.io"),
    "engine down": (lambda w: setattr(w, "daemon", False), "dockerd running", "start dockerd --bridge=none"),
    "old buildx": (
        lambda w: setattr(w, "buildx", "v0.10.4 c513d34"),
        "docker buildx",
        "docker-buildx=0.13.1+ds1-3",
    ),
    "no qemu-arm": (
        lambda w: (w.qemu_dir / "qemu-arm").unlink(),
        "qemu user",
        "install qemu-arm from qemu-user=",
    ),
    "not mounted": (lambda w: (w.kernel.root / "register").unlink(), "binfmt_misc", "mount "),
    "arm not registered": (lambda w: w.kernel.remove("qemu-arm"), "binfmt qemu-arm", "register "),
    "no F flag": (_drop_f_flag, "binfmt qemu-aarch64", "without flag F"),
    "disabled": (_disable_arm, "binfmt qemu-arm", "entry is disabled"),
    "no shellcheck": (_drop_shellcheck, "shellcheck (workflow lint)", "apt-get install -y shellcheck"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_each_failure_names_the_fix(world: World, case: str) -> None:
    breakage, row, says = FAILURES[case]
    breakage(world.ready())

    check = _row(world.doctor(fix=False), row)

    assert not check.ok and not check.fixed
    assert says in check.action and check.action.endswith(FIX_HINT)
    assert world.mutations() == []


def test_qemu_7_2_is_refused_with_the_reason_and_replaced_by_fix(world: World) -> None:
    world.ready().kernel.remove("qemu-aarch64")
    old = world.install_qemu("aarch64", QEMU72, world.root / "usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    world.kernel.add("qemu-aarch64", str(old), "PF", magic=AARCH64_MAGIC, mask=MASK)

    refused = _row(world.doctor(fix=False), "binfmt qemu-aarch64")
    assert not refused.ok
    assert "QEMU 7.2.17" in refused.found
    assert "onnxruntime crashes under QEMU 7.2 (qemu: uncaught target signal 11)" in refused.action
    with pytest.raises(
        ToolchainError, match=r"QEMU 7.2.17 is registered for arm64; edgepack needs QEMU >= 8"
    ):
        require_toolchain(runner=world.runner, platform="linux/arm64", host=world.host(), pins=world.pins)

    fixed = _row(world.doctor(fix=True), "binfmt qemu-aarch64")
    assert fixed.ok and fixed.fixed and "QEMU 10.0.13" in fixed.found
    assert world.kernel.removed[-1] == "qemu-aarch64"


def test_replacing_a_registered_qemu_registers_it_again(world: World) -> None:
    # With flag F the kernel keeps the old file open: a new binary needs a new registration.
    world.ready().install_qemu("aarch64", "qemu-aarch64 version 10.0.2 (Debian 1:10.0.2+ds-1)\n")

    checks = world.doctor(fix=True)

    assert _row(checks, "qemu user").fixed and _row(checks, "binfmt qemu-aarch64").fixed
    assert not _row(checks, "binfmt qemu-arm").fixed
    assert world.kernel.removed == ["qemu-aarch64"]


# -- what doctor refuses to do --------------------------------------------------------------------


def test_not_root_refuses_to_fix_with_a_hint(world: World) -> None:
    world.ready().buildx = ""

    checks = world.doctor(fix=True, euid=1000)

    root = _row(checks, "root")
    assert not root.ok and "Run as root" in root.action
    assert _row(checks, "docker buildx").action.endswith("Run as root: edgepack doctor --fix")
    assert world.mutations() == [] and world.spawned == []
    assert _row(world.doctor(fix=False, euid=1000), "root").ok


def test_an_engine_with_a_docker0_bridge_is_never_touched(world: World) -> None:
    (world.ready().root / "sys/class/net/docker0").mkdir(parents=True)

    check = _row(world.doctor(fix=True), "dockerd running")

    assert not check.ok and not check.fixed
    assert "ip link delete docker0" in check.action and "--bridge=none" in check.action
    assert world.spawned == []


def test_a_host_other_than_debian_12_or_13_is_not_fixed(world: World) -> None:
    world.debian("24.04", distro="ubuntu")

    checks = world.bare().doctor(fix=True)

    assert not _row(checks, "os").ok
    assert "do it by hand" in _row(checks, "docker engine").action
    assert world.mutations() == [] and world.spawned == []


def test_a_dry_run_changes_nothing(world: World) -> None:
    world.bare().runner.dry_run = True

    checks = world.doctor(fix=True)

    assert not any(check.fixed for check in checks)
    assert world.mutations() == [] and world.spawned == []


def test_a_wrong_deb_hash_installs_nothing(world: World) -> None:
    world.ready()
    world.pins = dataclasses.replace(
        world.pins, qemu=dataclasses.replace(world.pins.qemu, deb_sha256_amd64="0" * 64)
    )
    (world.qemu_dir / "qemu-arm").unlink()

    check = _row(world.doctor(fix=True), "qemu user")

    assert not check.ok and "not the pinned 0000" in check.action
    assert not (world.qemu_dir / "qemu-arm").exists()


def test_a_dockerd_that_never_answers_points_to_its_log(world: World) -> None:
    world.ready().daemon, world.daemon_starts = False, False

    check = _row(world.doctor(fix=True), "dockerd running")

    assert not check.ok
    assert "did not answer within 30 s" in check.action and "edgepack-dockerd.log" in check.action
    assert world.sleeps == [1.0] * 30


# -- require_toolchain ----------------------------------------------------------------------------


def _require(world: World, platform: str) -> None:
    require_toolchain(runner=world.runner, platform=platform, host=world.host(), pins=world.pins)


def test_require_toolchain_passes_on_a_ready_host(world: World) -> None:
    world.ready()
    for platform in ("linux/arm64", "linux/arm/v7", "linux/amd64"):
        _require(world, platform)
    assert world.mutations() == []


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda w: setattr(w, "daemon", False), "docker engine is not running"),
        (lambda w: setattr(w, "buildx", ""), "docker buildx >= 0.13 is needed, found none"),
        (lambda w: w.kernel.remove("qemu-aarch64"), "binfmt: no QEMU registered for linux/arm64"),
    ],
)
def test_require_toolchain_names_the_tool_and_the_fix(world: World, breakage, message: str) -> None:  # type: ignore[no-untyped-def]
    breakage(world.ready())

    with pytest.raises(ToolchainError) as caught:
        _require(world, "linux/arm64")

    assert message in caught.value.message and caught.value.hint == FIX_HINT
    assert len(caught.value.render().splitlines()) == 2


def test_require_toolchain_skips_binfmt_for_the_native_platform(world: World) -> None:
    world.ready()
    (world.kernel.root / "qemu-aarch64").unlink()
    _require(world, "linux/amd64")
    with pytest.raises(ToolchainError, match="no QEMU emulator is known for linux/riscv64"):
        _require(world, "linux/riscv64")


# -- parsing and pins -----------------------------------------------------------------------------


def test_parse_a_registration_as_the_kernel_shows_it() -> None:
    text = (
        "enabled\ninterpreter /opt/edgepack/qemu/qemu-aarch64\nflags: POCF\noffset 0\n"
        "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
    )
    entry = parse_registration(text)
    assert entry.enabled and entry.interpreter == "/opt/edgepack/qemu/qemu-aarch64" and entry.flags == "POCF"
    assert entry.magic == AARCH64_MAGIC and entry.mask == MASK


def test_the_shipped_pins_load_and_a_misspelled_key_is_rejected(tmp_path: Path) -> None:
    pins = load_pins()
    assert isinstance(pins, Pins) and pins.qemu.min_major == 8 and pins.buildx.version == "0.13.1+ds1-3"

    broken = tmp_path / "toolchain.yaml"
    shipped = Path(__file__).parents[2] / "src/edgepack/resources/toolchain.yaml"
    broken.write_text(shipped.read_text().replace("min_version:", "min_verison:"))
    with pytest.raises(ConfigError, match=r"Did you mean 'buildx\.min_version'"):
        load_pins(broken)


def test_a_target_whose_platform_has_no_registration_is_named(world: World) -> None:
    world.ready().kernel.remove("qemu-arm")
    with pytest.raises(ToolchainError) as caught:
        require_toolchain(runner=world.runner, platform="linux/arm/v7", target="rpi-zero2w",
                          host=world.host(), pins=world.pins)  # fmt: skip
    expected = "target 'rpi-zero2w' (linux/arm/v7): binfmt: no QEMU registered for linux/arm/v7."
    assert caught.value.message == expected
    assert caught.value.hint == "Run: edgepack doctor --fix"
    assert world.mutations() == []  # a preflight: the host's registrations stay as they are


def test_a_target_whose_platform_the_builder_lacks_is_named(world: World) -> None:
    world.ready().unlisted = ("linux/arm/v7",)
    with pytest.raises(ToolchainError) as caught:
        require_toolchain(runner=world.runner, platform="linux/arm/v7", target="rpi-zero2w",
                          host=world.host(), pins=world.pins)  # fmt: skip
    assert caught.value.message.startswith(
        "target 'rpi-zero2w' (linux/arm/v7): the default buildx builder does not list linux/arm/v7"
    )
    assert caught.value.hint == "Run: edgepack doctor --fix"
