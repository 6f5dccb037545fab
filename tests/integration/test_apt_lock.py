"""doctor and a real dpkg lock: another process holds /var/lib/dpkg/lock-frontend, as apt would.

The holder takes the same lock dpkg and apt take (an fcntl F_SETLK write lock
on the whole file) and lets go when the test tells it to, so nothing here
depends on timing: the order of what doctor prints is the evidence. The apt
command is ``apt-get install --no-upgrade ca-certificates``: it takes apt's
locks and changes nothing on a host that has the package.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgepack.errors import ToolchainError
from edgepack.host import aptlock
from edgepack.host.checks import Ctx, Host
from edgepack.host.pins import load_pins
from edgepack.runner import Runner

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import fcntl, os, select, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what apt's GetLock does: F_SETLK, F_WRLCK
print("held", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))  # until the test says so, or time is up
fcntl.lockf(fd, fcntl.LOCK_UN)
print("released", flush=True)
"""


@pytest.fixture(scope="session", autouse=True)
def toolchain() -> None:
    """Replaces the docker check of tests/integration/conftest.py: these need root, apt and dpkg only."""
    problem = None
    if os.geteuid() != 0:
        problem = "apt's locks need root"
    elif shutil.which("apt-get") is None or not Path(aptlock.FRONTEND).exists():
        problem = "not a Debian host with apt and dpkg"
    if problem and os.environ.get("CI"):
        pytest.fail(f"apt lock tests unusable in CI: {problem}")
    if problem:
        pytest.skip(problem)


Holder = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def hold() -> Iterator[Holder]:
    """Start a process that holds ``lock``; it lets go on a line on its stdin, or at the end of the test."""
    started: list[subprocess.Popen[str]] = []

    def start(lock: str, *, for_s: float = 120) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, lock, str(for_s)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        return proc

    yield start
    for proc in started:
        if proc.returncode is None:  # not let go by the test
            let_go(proc)


def let_go(holder: subprocess.Popen[str]) -> str:
    """Tell the holder to let go (unless told already); what it printed since "held"."""
    assert holder.stdin is not None and holder.stdout is not None
    if not holder.stdin.closed:
        holder.stdin.close()
    with holder.stdout:
        said = holder.stdout.read()
    holder.wait(timeout=30)
    return said


class Releasing(io.StringIO):
    """doctor's output stream: on the waiting line, it tells the holder to let go."""

    def __init__(self, holder: subprocess.Popen[str]) -> None:
        super().__init__()
        self.holder = holder

    def write(self, text: str) -> int:
        if text.startswith("waiting for ") and self.holder.stdin and not self.holder.stdin.closed:
            self.holder.stdin.close()
        return super().write(text)


def _ctx(stream: io.StringIO, *, bound_s: int) -> Ctx:
    ctx = Ctx(Runner(echo=True, stream=stream), Host(), load_pins(), fix=True)
    ctx.locks = aptlock.LockWait(bound_s)
    ctx.apt_fresh = True  # no apt-get update: it needs the network, and proves nothing more here
    return ctx


def test_doctor_says_it_waits_for_the_holder_and_installs_once_the_lock_is_free(hold: Holder) -> None:
    holder = hold(aptlock.FRONTEND)
    stream = Releasing(holder)

    _ctx(stream, bound_s=120).apt_install("--no-upgrade", "ca-certificates", what="install ca-certificates")

    waiting, command = stream.getvalue().splitlines()
    assert waiting.startswith(
        f"waiting for {aptlock.FRONTEND}, held by pid {holder.pid} ({sys.executable} -c "
    )
    assert command.startswith("+ apt-get install -o DPkg::Lock::Timeout=")  # apt ran after the wait
    assert let_go(holder) == "released\n"


def test_apt_itself_waits_for_a_dpkg_lock_taken_after_doctor_looked(hold: Holder) -> None:
    """The race that ``-o DPkg::Lock::Timeout`` covers: no waiting line, apt's own wait."""
    holder = hold(aptlock.FRONTEND, for_s=3)
    argv = aptlock.apt_argv("install", "-y", "--no-upgrade", "ca-certificates", timeout_s=120)

    Runner(echo=False).run(argv, what="install ca-certificates", env={"DEBIAN_FRONTEND": "noninteractive"})

    assert let_go(holder) == "released\n"  # apt got the lock, which was held when it started


def test_a_lock_held_past_the_bound_is_a_clear_toolchain_error_and_apt_never_runs(hold: Holder) -> None:
    holder = hold(aptlock.FRONTEND)
    stream = io.StringIO()

    with pytest.raises(ToolchainError) as caught:
        _ctx(stream, bound_s=2).apt_install("--no-upgrade", "ca-certificates", what="install ca-certificates")

    message, hint = caught.value.render().splitlines()
    assert message.startswith(
        f"install ca-certificates failed because {aptlock.FRONTEND} is still held by pid {holder.pid} ("
    )
    assert message.endswith("after 2 s of waiting.")
    assert "EDGEPACK_APT_LOCK_TIMEOUT=" in hint
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"waiting for {aptlock.FRONTEND}"]  # and no apt-get


def test_the_edgepack_script_s_wait_names_the_holder_and_gives_up_without_a_traceback(hold: Holder) -> None:
    holder = hold(aptlock.FRONTEND)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "EDGEPACK_APT_LOCK_TIMEOUT": "2"}

    # -S: no site-packages, as before ./edgepack has made its virtual environment.
    done = subprocess.run([sys.executable, "-S", "-m", "edgepack.host.aptlock", "install"], env=env,
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip

    assert done.returncode == ToolchainError.exit_code, done.stderr
    waiting, error, hint = done.stderr.splitlines()
    assert waiting.startswith(f"waiting for {aptlock.FRONTEND}, held by pid {holder.pid} (")
    assert error.startswith(f"error: apt-get install failed because {aptlock.FRONTEND} is still held by pid")
    assert hint.startswith("Let that process finish")
