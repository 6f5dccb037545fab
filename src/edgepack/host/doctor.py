"""The doctor: every toolchain check in order (``edgepack doctor [--fix]``), and a build's fast preflight.

Supported hosts are Debian 12 (bookworm) and 13 (trixie), as root. Every fix
is idempotent: a check that passes changes nothing, so a second ``--fix``
reports "nothing changed". doctor never restarts or reconfigures a docker
engine it did not start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from edgepack.errors import ConfigError, ToolchainError
from edgepack.host import aptlock
from edgepack.host.binfmt import EMULATORS, NATIVE_PLATFORM, Emulator
from edgepack.host.checks import (
    FIX_HINT,
    Check,
    Ctx,
    Host,
    buildx_platforms,
    buildx_version,
    check_binfmt_mount,
    check_buildx,
    check_ci_tools,
    check_daemon,
    check_engine,
    check_os,
    check_platforms,
    check_qemu,
    check_registration,
    check_root,
    check_sdcard_tools,
    check_ssh,
    check_trixie_source,
    check_wheel_tools,
    daemon_state,
    inspect_registration,
    vtuple,
)
from edgepack.host.pins import Pins, load_pins
from edgepack.runner import Runner


def _emulators_for(platforms: Sequence[str], arch: str) -> list[Emulator]:
    emulators: dict[str, Emulator] = {}
    for wanted in platforms:
        if wanted == NATIVE_PLATFORM.get(arch):
            continue
        if wanted not in EMULATORS:
            raise ConfigError(
                f"doctor: no QEMU emulator is known for platform '{wanted}'.",
                hint=f"Known platforms: {', '.join(EMULATORS)}.",
            )
        emulators.setdefault(EMULATORS[wanted].name, EMULATORS[wanted])
    return list(emulators.values())


def _refusal(host: Host, codename: str) -> str:
    if not codename:
        return "doctor cannot fix this host (not Debian 12 or 13): do it by hand"
    if host.euid != 0:
        return "Run as root: edgepack doctor --fix"
    return ""


def run_doctor(
    *,
    runner: Runner,
    fix: bool,
    platforms: Sequence[str] = ("linux/arm64", "linux/arm/v7"),
    host: Host | None = None,
    pins: Pins | None = None,
) -> list[Check]:
    """Check the host toolchain; with ``fix``, install and start what is missing."""
    host = host or Host()
    emulators = _emulators_for(platforms, host.arch)
    os_check, codename = check_os(host)
    refusal = _refusal(host, codename)
    ctx = Ctx(runner, host, pins or load_pins(), fix=fix and not refusal and not runner.dry_run)
    ctx.refusal, ctx.codename = refusal, codename
    bound = aptlock.lock_timeout(os.environ)
    ctx.locks = aptlock.LockWait(bound, root=host.root, sleep=host.sleep, clock=host.clock)
    checks = [os_check, check_root(host, fix=fix)]
    if codename == "bookworm":
        checks.append(check_trixie_source(ctx))
    checks += [check_engine(ctx), check_daemon(ctx), check_buildx(ctx)]
    if emulators:
        checks += [check_qemu(ctx, [e.name for e in emulators]), check_binfmt_mount(ctx)]
        checks += [check_registration(ctx, emulator) for emulator in emulators]
    checks.append(check_platforms(ctx, platforms))
    checks.append(check_wheel_tools(ctx))
    checks.append(check_ci_tools(ctx))
    checks.append(check_ssh(ctx))
    checks.append(check_sdcard_tools(ctx))
    return checks


def require_toolchain(
    *, runner: Runner, platform: str, target: str = "", host: Host | None = None, pins: Pins | None = None
) -> None:
    """Fast read-only preflight before a build; raises ToolchainError naming what to do.

    With ``target``, a platform problem names the target: in a build of
    several targets, it says which one cannot be built.
    """
    host = host or Host()
    ctx = Ctx(runner, host, pins or load_pins(), fix=False)
    daemon = daemon_state(ctx)
    if not daemon.ok:
        raise ToolchainError(f"docker engine is not running ({daemon.found}).", hint=FIX_HINT)
    version, minimum = buildx_version(ctx), ctx.pins.buildx.min_version
    if not version or vtuple(version) < vtuple(minimum):
        found = version or "none"
        raise ToolchainError(f"docker buildx >= {minimum} is needed, found {found}.", hint=FIX_HINT)
    who = f"target '{target}' ({platform}): " if target else ""
    if platform != NATIVE_PLATFORM.get(host.arch) and platform not in EMULATORS:
        raise ToolchainError(
            f"{who}no QEMU emulator is known for {platform}, and this {host.arch} host cannot run it.",
            hint=f"Build it on a {platform} host, or drop the target. Emulated: {', '.join(EMULATORS)}.",
        )
    for emulator in _emulators_for([platform], host.arch):
        problem = inspect_registration(ctx, emulator)[0]
        if problem:
            raise ToolchainError(f"{who}{problem}.", hint=FIX_HINT)
    listed = buildx_platforms(ctx) or []
    if platform not in listed:
        found = ", ".join(listed) or "none"
        raise ToolchainError(
            f"{who}the default buildx builder does not list {platform} (it lists {found}).", hint=FIX_HINT
        )
