"""doctor and apt's locks: the bound on apt's argv, who holds a lock, the bounded wait (a fake /proc)."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgepack.errors import CommandError, ConfigError, ToolchainError
from edgepack.host import aptlock
from edgepack.host.checks import Ctx, Host
from edgepack.host.doctor import run_doctor
from edgepack.host.pins import load_pins
from edgepack.runner import Result
from tests.conftest import FakeRunner, ok

U_U = "/usr/bin/python3\0/usr/bin/unattended-upgrade\0--download-only\0"


@dataclass
class FakeHost:
    """A root with apt's lock files and a /proc whose /proc/locks says who holds them."""

    root: Path
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    release_after: int | None = None  # sleeps until the holder lets go; None: never
    held: dict[str, int] = field(default_factory=dict)  # lock -> pid

    def __post_init__(self) -> None:
        for lock in (aptlock.FRONTEND, aptlock.DPKG, aptlock.LISTS, aptlock.ARCHIVES):
            path = self.root / lock.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        self.write_locks()

    def hold(self, lock: str, pid: int, cmdline: str = U_U) -> None:
        (self.root / "proc" / str(pid)).mkdir(parents=True, exist_ok=True)
        (self.root / "proc" / str(pid) / "cmdline").write_text(cmdline)
        self.held[lock] = pid
        self.write_locks()

    def write_locks(self) -> None:
        lines = ["1: FLOCK  ADVISORY  WRITE 77 00:1a:12 0 EOF"]  # another file's lock
        for n, (lock, pid) in enumerate(self.held.items(), start=2):
            st = (self.root / lock.lstrip("/")).stat()
            where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
            lines.append(f"{n}: POSIX  ADVISORY  WRITE {pid} {where} 0 EOF")
            lines.append(f"{n}: -> POSIX  ADVISORY  WRITE 999 {where} 0 EOF")  # a waiter, not a holder
        (self.root / "proc").mkdir(exist_ok=True)
        (self.root / "proc" / "locks").write_text("\n".join(lines) + "\n")

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.release_after is not None and len(self.sleeps) >= self.release_after:
            self.held.clear()
            self.write_locks()

    def host(self) -> Host:
        return Host(root=self.root, euid=0, arch="amd64", sleep=self.sleep, clock=lambda: self.now)


@pytest.fixture
def fake(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def _ctx(fake: FakeHost, runner: FakeRunner, *, bound_s: int = 600) -> tuple[Ctx, io.StringIO]:
    out = io.StringIO()
    runner.stream = out
    host = fake.host()
    ctx = Ctx(runner, host, load_pins(), fix=True)
    ctx.locks = aptlock.LockWait(bound_s, root=host.root, sleep=host.sleep, clock=host.clock)
    return ctx, out


def _apt_runner(order: list[str]) -> FakeRunner:
    runner = FakeRunner(echo=False)
    runner.on(lambda a: a[0] == "apt-get", lambda a: (order.append(" ".join(a)), Result(a, 0, "", ""))[1])
    return runner


# -- apt's argv -----------------------------------------------------------------------------------


def test_every_apt_command_of_doctor_carries_apt_s_own_lock_timeout(fake: FakeHost) -> None:
    runner = FakeRunner(echo=False)
    runner.on(lambda a: a[0] == "apt-get", ok())
    ctx, _ = _ctx(fake, runner)

    ctx.apt_install("--no-install-recommends", "shellcheck", what="install shellcheck")
    ctx.apt("download", "qemu-user=1:10.0.13+ds-0+deb13u1", what="download qemu-user", cwd=fake.root)

    bound = ["-o", "DPkg::Lock::Timeout=600"]
    assert runner.calls == [
        ["apt-get", "update", *bound],
        ["apt-get", "install", *bound, "-y", "--no-install-recommends", "shellcheck"],
        ["apt-get", "download", *bound, "qemu-user=1:10.0.13+ds-0+deb13u1"],
    ]


def test_the_bound_comes_from_edgepack_apt_lock_timeout() -> None:
    assert aptlock.lock_timeout({}) == 600
    assert aptlock.lock_timeout({"EDGEPACK_APT_LOCK_TIMEOUT": "45"}) == 45
    assert aptlock.apt_argv("update", timeout_s=45) == ["apt-get", "update", "-o", "DPkg::Lock::Timeout=45"]
    with pytest.raises(ConfigError, match="EDGEPACK_APT_LOCK_TIMEOUT='ten'"):
        aptlock.lock_timeout({"EDGEPACK_APT_LOCK_TIMEOUT": "ten"})


def test_run_doctor_reads_the_bound_from_the_environment(
    fake: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPACK_APT_LOCK_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="whole number of seconds"):
        run_doctor(runner=FakeRunner(echo=False), fix=True, host=fake.host())


# -- who holds a lock -----------------------------------------------------------------------------


def test_the_holder_is_read_from_proc_locks_skipping_waiters_and_other_files() -> None:
    text = (
        "1: POSIX  ADVISORY  WRITE 4321 fe:00:399286 0 EOF\n"
        "1: -> POSIX  ADVISORY  WRITE 5555 fe:00:399286 0 EOF\n"
        "2: FLOCK  ADVISORY  WRITE 6666 fe:00:399286 0 EOF\n"
        "3: POSIX  ADVISORY  WRITE 7777 fe:00:399287 0 EOF\n"
        "4: OFDLCK ADVISORY  READ  -1 00:06:3 0 EOF\n"
    )

    assert aptlock.lock_owners(text, major=0xFE, minor=0, inode=399286) == [4321]
    assert aptlock.lock_owners(text, major=0, minor=6, inode=3) == [-1]
    assert aptlock.lock_owners(text, major=0xFE, minor=1, inode=399286) == []


def test_the_holder_is_named_by_pid_and_command_line(fake: FakeHost) -> None:
    fake.hold(aptlock.FRONTEND, 4321)

    assert aptlock.holders(fake.root, aptlock.FRONTEND) == (
        aptlock.Holder(4321, "/usr/bin/python3 /usr/bin/unattended-upgrade --download-only"),
    )
    assert aptlock.holders(fake.root, aptlock.DPKG) == ()
    assert aptlock.Holder(-1, "").describe() == "a process that /proc/locks does not name"


# -- the bounded wait -----------------------------------------------------------------------------


def test_doctor_says_who_holds_the_lock_then_runs_apt_once_it_is_free(fake: FakeHost) -> None:
    fake.hold(aptlock.FRONTEND, 4321)
    fake.release_after = 3
    order: list[str] = []
    ctx, out = _ctx(fake, _apt_runner(order))
    ctx.apt_fresh = True

    ctx.apt_install("shellcheck", what="install shellcheck")

    assert out.getvalue().splitlines() == [
        "waiting for /var/lib/dpkg/lock-frontend, held by pid 4321 (/usr/bin/python3 "
        "/usr/bin/unattended-upgrade --download-only): up to 600 s more (EDGEPACK_APT_LOCK_TIMEOUT)"
    ]
    assert order == ["apt-get install -o DPkg::Lock::Timeout=597 -y shellcheck"]  # what is left of the bound


def test_apt_get_update_waits_for_the_lists_lock_that_apt_itself_does_not_wait_for(fake: FakeHost) -> None:
    fake.hold(aptlock.LISTS, 4321)
    fake.release_after = 1
    order: list[str] = []
    ctx, out = _ctx(fake, _apt_runner(order))

    ctx.apt_update()

    assert out.getvalue().startswith("waiting for /var/lib/apt/lists/lock, held by pid 4321 ")
    assert order == ["apt-get update -o DPkg::Lock::Timeout=599"]


def test_a_lock_held_past_the_bound_is_a_toolchain_error_naming_lock_holder_and_remedy(
    fake: FakeHost,
) -> None:
    fake.hold(aptlock.FRONTEND, 4321)
    order: list[str] = []
    ctx, out = _ctx(fake, _apt_runner(order), bound_s=5)
    ctx.apt_fresh = True

    with pytest.raises(ToolchainError) as caught:
        ctx.apt_install("shellcheck", what="install shellcheck")

    assert order == []
    assert len(out.getvalue().splitlines()) == 1
    message, hint = caught.value.render().splitlines()
    assert message == (
        "install shellcheck failed because /var/lib/dpkg/lock-frontend is still held by pid 4321 "
        "(/usr/bin/python3 /usr/bin/unattended-upgrade --download-only) after 5 s of waiting."
    )
    assert "EDGEPACK_APT_LOCK_TIMEOUT=" in hint and "Do not delete the lock file" in hint


def test_once_the_bound_is_spent_later_apt_commands_fail_without_waiting_again(fake: FakeHost) -> None:
    fake.hold(aptlock.FRONTEND, 4321)
    ctx, out = _ctx(fake, _apt_runner([]), bound_s=5)
    ctx.apt_fresh = True
    with pytest.raises(ToolchainError):
        ctx.apt_install("docker.io", what="install docker")
    sleeps, lines = len(fake.sleeps), len(out.getvalue().splitlines())

    with pytest.raises(ToolchainError, match="install shellcheck failed because"):
        ctx.apt_install("shellcheck", what="install shellcheck")

    assert (len(fake.sleeps), len(out.getvalue().splitlines())) == (sleeps, lines)


def test_a_lock_taken_after_the_wait_makes_apt_fail_with_the_same_clear_error(fake: FakeHost) -> None:
    runner = FakeRunner(echo=False)
    apt_says = (
        "E: Could not get lock /var/cache/apt/archives/lock. It is held by process 4321 (unattended-upgr)\n"
        "E: Unable to lock directory /var/cache/apt/archives/\n"
    )
    runner.on(lambda a: a[0] == "apt-get", ok(stderr=apt_says, code=100))
    ctx, _ = _ctx(fake, runner)
    ctx.apt_fresh = True

    with pytest.raises(ToolchainError) as caught:
        ctx.apt_install("shellcheck", what="install shellcheck")

    assert caught.value.message == (
        "install shellcheck failed because apt could not get /var/cache/apt/archives/lock, "
        "held by pid 4321 (unattended-upgr)."
    )


def test_apt_failing_for_another_reason_stays_a_command_error(fake: FakeHost) -> None:
    runner = FakeRunner(echo=False)
    runner.on(lambda a: a[0] == "apt-get", ok(stderr="E: Unable to locate package shellchek\n", code=100))
    ctx, _ = _ctx(fake, runner)
    ctx.apt_fresh = True

    with pytest.raises(CommandError, match="install shellcheck failed"):
        ctx.apt_install("shellchek", what="install shellcheck")
