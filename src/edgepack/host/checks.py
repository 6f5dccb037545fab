"""The toolchain checks, one function each, and their fixes (``fix=True``): docker, buildx, QEMU, binfmt.

Supported hosts are Debian 12 (bookworm) and 13 (trixie), as root. Every fix
is idempotent: a check that passes changes nothing, so a second ``--fix``
reports "nothing changed". Versions are pinned in resources/toolchain.yaml.
doctor never restarts or reconfigures a docker engine it did not start.
"""

from __future__ import annotations

import os
import platform as platform_module
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgepack.errors import CommandError, EdgepackError, ToolchainError
from edgepack.fsutil import atomic_path, sha256_file
from edgepack.host import aptlock
from edgepack.host.binfmt import (
    BINFMT_FLAGS,
    BinfmtMisc,
    Emulator,
    Registration,
    magic_matches,
    register_line,
)
from edgepack.host.pins import Pins
from edgepack.runner import Result, Runner

CODENAMES = {"12": "bookworm", "13": "trixie"}
FIX_HINT = "Run: edgepack doctor --fix"
QEMU_REASON = "onnxruntime crashes under QEMU 7.2 (qemu: uncaught target signal 11)"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
BRIDGE_ADVICE = (
    "edgepack needs an engine without a bridge network (dockerd --bridge=none --iptables=false "
    "--ip-masq=false), and doctor does not touch an engine it did not start. Stop that engine "
    "(systemctl stop docker docker.socket, or kill its dockerd), run: ip link delete docker0; "
    "then: edgepack doctor --fix"
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    found: str
    action: str  # what to do, or what was done ("" when ok)
    fixed: bool = False  # True when fix=True changed something


# -- pins (resources/toolchain.yaml) -------------------------------------------------------------


# -- emulators and binfmt_misc -------------------------------------------------------------------


# The values Debian's qemu-user-binfmt uses.


# -- the host and the check context ---------------------------------------------------------------


def _host_arch() -> str:
    machine = platform_module.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class Host:
    """Where doctor looks and acts; unit tests point it at a fake tree."""

    root: Path = Path("/")
    binfmt: BinfmtMisc = field(default_factory=BinfmtMisc)
    euid: int = field(default_factory=os.geteuid)
    arch: str = field(default_factory=_host_arch)
    # How a daemon is started (dockerd): by the doctor's runner, unless a test replaces it.
    spawn: Callable[[Sequence[str], Path], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


@dataclass(frozen=True)
class State:
    ok: bool
    found: str
    todo: str = ""  # what fixing does, in the imperative


@dataclass
class Ctx:
    runner: Runner
    host: Host
    pins: Pins
    fix: bool
    refusal: str = ""  # why doctor cannot fix this host ("" when it can)
    codename: str = ""
    apt_fresh: bool = False
    replaced: set[str] = field(default_factory=set)  # qemu binaries installed by this run
    locks: aptlock.LockWait = field(default_factory=aptlock.LockWait)  # one bound for the whole run

    def advice(self, todo: str) -> str:
        return f"{todo}. {self.refusal or FIX_HINT}"

    def probe(self, argv: Sequence[str | Path]) -> Result | None:
        """A read-only query; None when the tool is not installed."""
        try:
            return self.runner.run(argv, check=False, mutates=False, timeout=60)
        except ToolchainError:
            return None
        except CommandError as exc:  # timed out
            return Result(exc.argv, exc.returncode, "", exc.message)

    def apt_update(self) -> None:
        """``apt-get update`` once per run, and again after a source was written."""
        if not self.apt_fresh:
            self.apt("update", what="apt-get update")
            self.apt_fresh = True

    def apt_install(self, *args: str, what: str) -> None:
        self.apt_update()
        self.apt("install", "-y", *args, what=what)

    def apt(self, command: str, *args: str, what: str, cwd: Path | None = None) -> None:
        """``apt-get``, once apt's locks are free (another apt, e.g. unattended-upgrades, may hold them)."""
        self.locks.wait(aptlock.COMMAND_LOCKS[command], what=what, say=self.say)
        argv = aptlock.apt_argv(command, *args, timeout_s=self.locks.left_s())
        try:
            self.runner.run(argv, what=what, cwd=cwd, env=APT_ENV)
        except CommandError as exc:
            error = self.locks.explain(exc.output, what=what)
            if error is None:
                raise
            raise error from exc

    def echo(self, text: str) -> None:
        if self.runner.echo:
            print(f"+ {text}", file=self.runner.stream)

    def say(self, text: str) -> None:
        """A line for the user even when commands are not echoed: a wait must not look like a hang."""
        print(text, file=self.runner.stream, flush=True)

    def qemu_path(self, name: str) -> Path:
        return self.host.path(self.pins.qemu.install_dir) / name


def _resolve(ctx: Ctx, name: str, probe: Callable[[], State], apply: Callable[[], object]) -> Check:
    """Probe; when it fails and fixing is on, apply the fix and probe again."""
    state = probe()
    if state.ok:
        return Check(name, True, state.found, "")
    if not ctx.fix:
        return Check(name, False, state.found, ctx.advice(state.todo))
    try:
        apply()
    except EdgepackError as exc:
        return Check(name, False, state.found, f"{state.todo} failed: {_brief(exc)}")
    after = probe()
    action = state.todo if after.ok else f"{state.todo}, but still: {after.found}"
    return Check(name, after.ok, after.found, action, fixed=True)


def _brief(exc: EdgepackError) -> str:
    parts = [exc.message]
    if isinstance(exc, CommandError):
        lines = [line for line in exc.output.splitlines() if line.strip()]
        parts += lines[-1:]
    if exc.hint:
        parts.append(exc.hint)
    return " ".join(parts)


def _why(result: Result | None) -> str:
    if result is None:
        return "docker is not installed"
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    return (lines[-1] if lines else f"exit code {result.returncode}")[:120]


def _version_in(text: str) -> str:
    match = re.search(r"\bv?(\d+\.\d+(?:\.\d+)?\S*)", text)
    return match.group(1).rstrip(",") if match else ""


def vtuple(version: str) -> tuple[int, ...]:
    match = re.match(r"v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


# -- the checks -----------------------------------------------------------------------------------


def check_os(host: Host) -> tuple[Check, str]:
    info: dict[str, str] = {}
    for line in (_read(host.path("/etc/os-release")) or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key] = " ".join(shlex.split(value))
    debian_version = (_read(host.path("/etc/debian_version")) or "").strip()
    major = info.get("VERSION_ID") or debian_version.split(".")[0]
    is_debian = info.get("ID", "debian" if debian_version else "") == "debian"
    codename = CODENAMES.get(major, "") if is_debian else ""
    found = info.get("PRETTY_NAME", "unknown OS") + (f", {debian_version}" if debian_version else "")
    if codename:
        return Check("os", True, found, ""), codename
    todo = (
        "doctor sets up Debian 12 (bookworm) and 13 (trixie) only; elsewhere install docker, "
        "buildx >= 0.13 and QEMU >= 8 with binfmt flag F by hand"
    )
    return Check("os", False, found, todo), ""


def check_root(host: Host, *, fix: bool) -> Check:
    if host.euid == 0:
        return Check("root", True, "uid 0", "")
    if not fix:
        return Check("root", True, f"uid {host.euid} (root is needed only to fix)", "")
    todo = "fixing needs root (apt, dockerd, binfmt_misc). Run as root: edgepack doctor --fix"
    return Check("root", False, f"uid {host.euid}", todo)


def _trixie_files(ctx: Ctx) -> dict[Path, str]:
    s = ctx.pins.trixie_source
    sources = (
        f"Types: deb\nURIs: {s.uris}\nSuites: {s.suite}\n"
        f"Components: {s.components}\nSigned-By: {s.signed_by}\n"
    )
    preferences = f"Package: *\nPin: release n={s.suite}\nPin-Priority: {s.pin_priority}\n"
    return {ctx.host.path(s.sources_file): sources, ctx.host.path(s.preferences_file): preferences}


def check_trixie_source(ctx: Ctx) -> Check:
    files = _trixie_files(ctx)
    priority = ctx.pins.trixie_source.pin_priority

    def probe() -> State:
        stale = [path for path, text in files.items() if _read(path) != text]
        found = "missing or different: " + ", ".join(p.name for p in stale)
        todo = f"write {' and '.join(map(str, stale))} (trixie pinned at {priority})"
        return State(not stale, found if stale else f"present, pinned at {priority}", todo)

    def apply() -> None:
        for path, text in files.items():
            if _read(path) != text:
                ctx.echo(f"write {path}")
                with atomic_path(path) as tmp:
                    tmp.write_text(text, encoding="utf-8")
                    tmp.chmod(0o644)
        ctx.apt_fresh = False

    return _resolve(ctx, "apt: trixie source", probe, apply)


def _first_line(result: Result | None) -> str:
    if result is None or result.returncode != 0:
        return ""
    return next((line.strip() for line in result.stdout.splitlines() if line.strip()), "")


def check_engine(ctx: Ctx) -> Check:
    packages = getattr(ctx.pins.docker, f"packages_{ctx.codename or 'bookworm'}")

    def probe() -> State:
        daemon = _version_in(_first_line(ctx.probe(["dockerd", "--version"])))
        cli = _version_in(_first_line(ctx.probe(["docker", "--version"])))
        found = f"dockerd {daemon or 'missing'}, docker CLI {cli or 'missing'}"
        return State(bool(daemon and cli), found, f"apt-get install -y {' '.join(packages)}")

    return _resolve(ctx, "docker engine", probe, lambda: ctx.apt_install(*packages, what="install docker"))


def daemon_state(ctx: Ctx) -> State:
    result = ctx.probe(["docker", "info", "--format", "{{.ServerVersion}}"])
    version = _first_line(result)
    if version:
        return State(True, f"engine {version} answers")
    return State(False, _why(result), f"start dockerd {' '.join(ctx.pins.docker.dockerd_args)}")


def check_daemon(ctx: Ctx) -> Check:
    name = "dockerd running"
    if ctx.host.path("/sys/class/net/docker0").exists():
        # An engine with a bridge network was started by someone else: never restart it.
        return Check(name, False, f"{daemon_state(ctx).found}; a docker0 bridge exists", BRIDGE_ADVICE)
    return _resolve(ctx, name, lambda: daemon_state(ctx), lambda: _start_dockerd(ctx))


def _start_dockerd(ctx: Ctx) -> None:
    pins = ctx.pins.docker
    argv = ["dockerd", *pins.dockerd_args]
    log = ctx.host.path(pins.log)
    ctx.echo(f"{shlex.join(argv)} >>{log} 2>&1 &")
    try:
        if ctx.host.spawn is not None:
            ctx.host.spawn(argv, log)
        else:
            ctx.runner.spawn(argv, log=log, what="starting dockerd")
    except OSError as exc:
        raise ToolchainError(f"starting dockerd failed because {exc.strerror}.") from exc
    for _ in range(pins.start_timeout_s):
        if daemon_state(ctx).ok:
            return
        ctx.host.sleep(1.0)
    last = ((_read(log) or "").strip().splitlines() or ["(empty)"])[-1]
    raise ToolchainError(
        f"dockerd did not answer within {pins.start_timeout_s} s.", hint=f"See {log}; last line: {last}"
    )


def buildx_version(ctx: Ctx) -> str:
    # "github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3" (Debian) or "... v0.10.4 c513d34".
    words = _first_line(ctx.probe(["docker", "buildx", "version"])).split()
    return words[1].lstrip("v") if len(words) > 1 else ""


def check_buildx(ctx: Ctx) -> Check:
    pins = ctx.pins.buildx
    # --no-install-recommends: docker-buildx recommends docker-cli, which Breaks docker.io << 26.1.4,
    # so on Debian 12 apt would upgrade the whole engine from trixie. No "-t trixie" either: it
    # raises every trixie package to priority 990 for the transaction; the explicit =version
    # selects trixie's build despite the pin at 100, and dependencies come from bookworm.
    args = ("--no-install-recommends", f"{pins.package}={pins.version}")

    def probe() -> State:
        version = buildx_version(ctx)
        ok = bool(version) and vtuple(version) >= vtuple(pins.min_version)
        found = f"buildx {version}" if version else "no buildx plugin"
        return State(ok, found, f"apt-get install -y {' '.join(args)}")

    return _resolve(ctx, "docker buildx", probe, lambda: ctx.apt_install(*args, what="install docker buildx"))


def _qemu_version(ctx: Ctx, path: Path | str) -> tuple[str, str]:
    """(version, the whole first line of ``--version``); ("", "") when it does not run."""
    line = _first_line(ctx.probe([path, "--version"]))
    match = re.search(r"version (\d+(?:\.\d+)*)", line)
    return (match.group(1), line) if match else ("", "")


def _stale_qemu(ctx: Ctx, lines: dict[str, str]) -> list[str]:
    """The binaries whose ``--version`` line is not the pinned Debian build."""
    pinned = f"(Debian {ctx.pins.qemu.version})"
    return [name for name, line in lines.items() if pinned not in line]


def check_qemu(ctx: Ctx, names: Sequence[str]) -> Check:
    pins = ctx.pins.qemu

    def versions() -> dict[str, tuple[str, str]]:
        return {name: _qemu_version(ctx, ctx.qemu_path(name)) for name in names}

    def probe() -> State:
        found = versions()
        stale = _stale_qemu(ctx, {name: line for name, (_, line) in found.items()})
        todo = f"install {', '.join(stale)} from {pins.package}={pins.version} into {pins.install_dir}"
        summary = ", ".join(f"{name} {version or 'missing'}" for name, (version, _) in found.items())
        return State(not stale, summary, todo)

    def apply() -> None:
        _install_qemu(ctx, _stale_qemu(ctx, {name: line for name, (_, line) in versions().items()}))

    return _resolve(ctx, "qemu user", probe, apply)


def _install_qemu(ctx: Ctx, names: Sequence[str]) -> None:
    pins = ctx.pins.qemu
    expected = {"amd64": pins.deb_sha256_amd64}.get(ctx.host.arch)
    if not expected:
        raise ToolchainError(f"no pinned sha256 of {pins.package} for {ctx.host.arch} hosts.")
    ctx.apt_update()  # on Debian 12, trixie's qemu-user is visible only after the trixie source
    with tempfile.TemporaryDirectory(prefix="edgepack-qemu-") as tmp:
        work = Path(tmp)
        spec = f"{pins.package}={pins.version}"
        ctx.apt("download", spec, what=f"download {spec}", cwd=work)
        debs = sorted(work.glob("*.deb"))
        if len(debs) != 1:
            raise ToolchainError(f"apt-get download {spec} left {len(debs)} .deb files, not one.")
        digest = sha256_file(debs[0])
        if digest != expected:
            raise ToolchainError(
                f"{debs[0].name} has sha256 {digest}, not the pinned {expected}.",
                hint="If Debian rebuilt the package, update resources/toolchain.yaml.",
            )
        ctx.runner.run(["dpkg-deb", "-x", debs[0], work / "root"], what=f"unpack {debs[0].name}")
        for name in names:
            with atomic_path(ctx.qemu_path(name)) as staged:
                shutil.copyfile(work / "root" / "usr" / "bin" / name, staged)
                staged.chmod(0o755)
            ctx.replaced.add(name)


def check_binfmt_mount(ctx: Ctx) -> Check:
    root = ctx.host.binfmt.root

    def probe() -> State:
        mounted = ctx.host.binfmt.mounted()
        return State(mounted, f"{root} {'mounted' if mounted else 'not mounted'}", f"mount {root}")

    argv = ["mount", "-t", "binfmt_misc", "binfmt_misc", str(root)]
    return _resolve(ctx, "binfmt_misc", probe, lambda: ctx.runner.run(argv, what="mount binfmt_misc"))


def inspect_registration(ctx: Ctx, emulator: Emulator) -> tuple[str, str]:
    """(problem, found) for a binfmt entry; problem is "" when the entry is usable."""
    reg = ctx.host.binfmt.read(emulator.name)
    if reg is None:
        return f"binfmt: no QEMU registered for {emulator.platform}", "not registered"
    version = _qemu_version(ctx, reg.interpreter)[0]
    found = f"{reg.interpreter} (QEMU {version or '?'}), flags {reg.flags or '-'}"
    found += "" if reg.enabled else ", disabled"
    return _registration_fault(ctx, emulator, reg, version), found


def _registration_fault(ctx: Ctx, emulator: Emulator, reg: Registration, version: str) -> str:
    name, minimum = emulator.name, ctx.pins.qemu.min_major
    if not reg.enabled:
        return f"binfmt: the {name} entry is disabled"
    if "F" not in reg.flags:
        return f"binfmt: {name} is registered without flag F, so containers cannot load {reg.interpreter}"
    if not version:
        return f"binfmt: {name} points to {reg.interpreter}, which does not run"
    if vtuple(version)[0] < minimum:
        return (
            f"QEMU {version} is registered for {emulator.arch}; edgepack needs QEMU >= {minimum} "
            f"because {QEMU_REASON}"
        )
    if not magic_matches(reg, emulator):
        return f"binfmt: {name}'s magic does not match {emulator.arch} ELF binaries"
    if name in ctx.replaced and Path(reg.interpreter) == ctx.qemu_path(name):
        # With flag F the kernel keeps the file it opened at registration, i.e. the replaced one.
        return f"binfmt: {name} still holds the replaced {reg.interpreter} open (flag F)"
    return ""


def check_registration(ctx: Ctx, emulator: Emulator) -> Check:
    ours = ctx.qemu_path(emulator.name)
    binfmt = ctx.host.binfmt

    def probe() -> State:
        problem, found = inspect_registration(ctx, emulator)
        todo = f"register {ours} (flags {BINFMT_FLAGS})"
        if binfmt.read(emulator.name) is not None:
            todo = f"{problem}: replace it with {ours} (flags {BINFMT_FLAGS})"
        return State(not problem, found, todo)

    def apply() -> None:
        if binfmt.read(emulator.name) is not None:
            ctx.echo(f"echo -1 > {binfmt.root / emulator.name}")
            binfmt.remove(emulator.name)
        line = register_line(emulator, ours)
        ctx.echo(f"echo {shlex.quote(line)} > {binfmt.root / 'register'}")
        binfmt.register(line)
        ctx.replaced.discard(emulator.name)  # the new entry holds the new file

    return _resolve(ctx, f"binfmt {emulator.name}", probe, apply)


def buildx_platforms(ctx: Ctx) -> list[str] | None:
    result = ctx.probe(["docker", "buildx", "inspect", "default"])
    if result is None or result.returncode != 0:
        return None
    listed: list[str] = []
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Platforms":
            listed += [p.strip().rstrip("*") for p in value.split(",") if p.strip()]
    return listed


def check_platforms(ctx: Ctx, platforms: Sequence[str]) -> Check:
    # The docker driver asks binfmt_misc again each time the builder is inspected, so a
    # platform registered after dockerd started shows up without a restart (verified on
    # engine 20.10). The list only grows: it is no proof that binfmt is still registered.
    def probe() -> State:
        listed = buildx_platforms(ctx)
        missing = [p for p in platforms if p not in (listed or [])]
        found = ", ".join(listed) if listed else "default builder not available"
        todo = f"docker buildx inspect --bootstrap default (to list {', '.join(missing)})"
        return State(listed is not None and not missing, found, todo)

    argv = ["docker", "buildx", "inspect", "--bootstrap", "default"]
    return _resolve(ctx, "buildx platforms", probe, lambda: ctx.runner.run(argv, what="bootstrap buildx"))


# -- the API --------------------------------------------------------------------------------------


def check_wheel_tools(ctx: Ctx) -> Check:
    """`edgepack wheels`: Debian's cross compilers (crossbuild-essential-*) and patch(1) for recipes."""
    pins = ctx.pins.wheels

    def probe() -> State:
        missing = [tool for tool in pins.tools if not _first_line(ctx.probe([tool, "--version"]))]
        found = f"missing: {', '.join(missing)}" if missing else f"{len(pins.tools)} tools"
        return State(not missing, found, f"apt-get install -y {' '.join(pins.packages)}")

    return _resolve(
        ctx, "wheel toolchain", probe, lambda: ctx.apt_install(*pins.packages, what="install cross compilers")
    )


def check_ci_tools(ctx: Ctx) -> Check:
    """The workflow lint's shellcheck (actionlint skips `run:` scripts without it)."""
    pins = ctx.pins.ci

    def probe() -> State:
        missing = [tool for tool in pins.tools if not _first_line(ctx.probe([tool, "--version"]))]
        found = f"missing: {', '.join(missing)}" if missing else ", ".join(pins.tools)
        return State(not missing, found, f"apt-get install -y {' '.join(pins.packages)}")

    return _resolve(ctx, "shellcheck (workflow lint)", probe,
                    lambda: ctx.apt_install(*pins.packages, what="install shellcheck"))  # fmt: skip


def check_ssh(ctx: Ctx) -> Check:
    """`edgepack device.*` and their tests: OpenSSH client and server (``ssh -V`` / ``sshd -V``)."""
    pins = ctx.pins.ssh

    def probe() -> State:
        missing = [t for t in pins.tools if (r := ctx.probe([t, "-V"])) is None or r.returncode != 0]
        found = f"missing: {', '.join(missing)}" if missing else "ssh and sshd"
        return State(not missing, found, f"apt-get install -y {' '.join(pins.packages)}")

    def apply() -> None:
        # Keep the package's postinst from starting sshd on 0.0.0.0:22: policy-rc.d exit 101
        # ("action forbidden") is what invoke-rc.d and deb-systemd-invoke obey.
        policy = ctx.host.path(pins.policy_rc_d)
        ours = not policy.exists()
        if ours:
            policy.parent.mkdir(parents=True, exist_ok=True)
            policy.write_text(
                "#!/bin/sh\n# edgepack doctor: installing openssh-server without starting it\nexit 101\n"
            )
            policy.chmod(0o755)
        try:
            ctx.apt_install(*pins.packages, what="install OpenSSH")
        finally:
            if ours:
                policy.unlink()

    return _resolve(ctx, "openssh (device tasks)", probe, apply)


def check_sdcard_tools(ctx: Ctx) -> Check:
    """`edgepack flash.*`: mkfs.vfat, mtools, mkfs.ext4/debugfs, depmod, qemu-system-aarch64."""
    pins = ctx.pins.sdcard

    def probe() -> State:
        missing = [a[0] for a in pins.probes if (r := ctx.probe(list(a))) is None or r.returncode != 0]
        found = f"missing: {', '.join(missing)}" if missing else f"{len(pins.probes)} tools"
        todo = f"apt-get install -y --no-install-recommends {' '.join(pins.packages)}"
        return State(not missing, found, todo)

    def apply() -> None:
        # Without recommends: qemu-system-arm would bring a desktop's worth (GTK, SDL, audio).
        ctx.apt_install("--no-install-recommends", *pins.packages, what="install the SD-card tools")

    return _resolve(ctx, "sd-card tools (flash)", probe, apply)
