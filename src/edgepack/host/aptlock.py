"""The host's apt and dpkg locks: who holds them, and a bounded wait until they are free.

dpkg and apt lock with fcntl(F_SETLK) write locks on a few files. ``-o
DPkg::Lock::Timeout=N`` makes apt wait up to N s for dpkg's two locks, but apt
2.6 (Debian 12) does not wait for the lists lock (``apt-get update``) or the
archives lock (``apt-get install``, even with nothing to download): it fails at
once with "Could not get lock /var/lib/apt/lists/lock" (checked with a held
lock). So the caller polls for every lock a command takes, says who holds it,
and passes what is left of its bound to apt for a lock taken in between, as
unattended-upgrades does on a fresh machine: it takes and releases these
locks several times over a few minutes.

Stdlib only: ``./edgepack`` runs ``python3 -m edgepack.host.aptlock`` before the
virtual environment exists.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgepack.errors import ConfigError, EdgepackError, ToolchainError

FRONTEND = "/var/lib/dpkg/lock-frontend"
DPKG = "/var/lib/dpkg/lock"
LISTS = "/var/lib/apt/lists/lock"
ARCHIVES = "/var/cache/apt/archives/lock"
# What each apt-get command locks (apt 2.6; `apt-get download` writes to its cwd and locks nothing).
COMMAND_LOCKS: dict[str, tuple[str, ...]] = {
    "update": (LISTS,),
    "install": (FRONTEND, DPKG, ARCHIVES),
    "download": (),
}
TIMEOUT_ENV = "EDGEPACK_APT_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_S = 600
# "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 6846 (python3)"
_APT_LOCK_FAILURE = re.compile(
    r"Could not get lock (/\S+?)\.?(?:\s+It is held by process (\d+)(?: \(([^)]*)\))?|\s|$)"
)


def lock_timeout(environ: Mapping[str, str]) -> int:
    """The bound in seconds: EDGEPACK_APT_LOCK_TIMEOUT, else 600."""
    text = environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    if not text.isdigit():
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: expected a whole number of seconds, such as 600.")
    return int(text)


def apt_argv(command: str, *args: str, timeout_s: int) -> list[str]:
    """``apt-get <command>``, waiting up to ``timeout_s`` for dpkg's locks."""
    return ["apt-get", command, "-o", f"DPkg::Lock::Timeout={timeout_s}", *args]


# -- who holds a lock -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    pid: int  # <= 0: an open file description lock, or a process in another pid namespace
    command: str  # its command line; "" when it is gone or unreadable

    def describe(self) -> str:
        if self.pid <= 0:
            return "a process that /proc/locks does not name"
        return f"pid {self.pid} ({self.command or 'command line unknown'})"


@dataclass(frozen=True)
class Busy:
    lock: str  # the absolute path, as apt names it
    holders: tuple[Holder, ...]

    def by(self) -> str:
        return ", ".join(holder.describe() for holder in self.holders)

    def describe(self) -> str:
        return f"{self.lock}, held by {self.by()}"


def lock_owners(text: str, *, major: int, minor: int, inode: int) -> list[int]:
    """The pids holding a POSIX or OFD lock on one file, from the text of /proc/locks.

    A line reads ``1: POSIX  ADVISORY  WRITE 6846 fe:00:399286 0 EOF`` (device
    major:minor in hex, inode in decimal); ``1: -> POSIX ...`` is a process
    blocked waiting, not a holder. FLOCK locks do not conflict with fcntl ones.
    """
    owners: list[int] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] not in ("POSIX", "OFDLCK"):
            continue
        dev_major, dev_minor, ino = fields[5].split(":")
        if (int(dev_major, 16), int(dev_minor, 16), int(ino)) == (major, minor, inode):
            owners.append(int(fields[4]))
    return sorted(set(owners))


def command_line(proc: Path, pid: int) -> str:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    # One line however the process was started (``python3 -c`` with a script, say): split() also
    # splits at newlines, and NULs separate the arguments.
    words = raw.replace(b"\0", b" ").decode("utf-8", errors="replace").split()
    return " ".join(words)[:160]


def holders(root: Path, lock: str) -> tuple[Holder, ...]:
    """Who holds ``lock`` on the host whose ``/`` is ``root``; () when nobody does."""
    proc = root / "proc"
    try:
        st = (root / lock.lstrip("/")).stat()
        text = (proc / "locks").read_text(encoding="ascii", errors="replace")
    except OSError:  # no lock file (apt never ran) or no /proc (a fake root): nobody holds it
        return ()
    owners = lock_owners(text, major=os.major(st.st_dev), minor=os.minor(st.st_dev), inode=st.st_ino)
    return tuple(Holder(pid, command_line(proc, pid) if pid > 0 else "") for pid in owners)


def waiting_line(busy: Sequence[Busy], *, left_s: int) -> str:
    return f"waiting for {'; '.join(b.describe() for b in busy)}: up to {left_s} s more ({TIMEOUT_ENV})"


def failed_lock(output: str) -> Busy | None:
    """The lock that apt says it could not get, and its holder; None when apt failed otherwise."""
    match = _APT_LOCK_FAILURE.search(output)
    if not match:
        return None
    lock, pid, name = match.groups()
    return Busy(lock, (Holder(int(pid or 0), name or ""),))


def lock_error(cause: str, *, what: str) -> ToolchainError:
    return ToolchainError(
        f"{what} failed because {cause}.",
        hint=(
            "Let that process finish (on a fresh machine unattended-upgrades can take minutes) and run "
            f"again, or wait longer: {TIMEOUT_ENV}=1800. Do not delete the lock file."
        ),
    )


# -- the bounded wait -----------------------------------------------------------------------------


@dataclass
class LockWait:
    """A bound on the time spent waiting for apt's locks, over all the apt commands of one run."""

    bound_s: int = DEFAULT_TIMEOUT_S
    root: Path = Path("/")
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_s: float = 1.0
    waited_s: float = field(default=0.0, init=False)

    def left_s(self) -> int:
        return max(0, math.ceil(self.bound_s - self.waited_s))

    def busy(self, locks: Sequence[str]) -> list[Busy]:
        found = ((lock, holders(self.root, lock)) for lock in locks)
        return [Busy(lock, owners) for lock, owners in found if owners]

    def wait(self, locks: Sequence[str], *, what: str, say: Callable[[str], None]) -> None:
        """Return once none of ``locks`` is held; say who holds one, again when that changes.

        Raises ToolchainError once the bound is spent.
        """
        start, said = self.clock(), None
        try:
            while busy := self.busy(locks):
                if self.waited_s + self.clock() - start >= self.bound_s:
                    first = busy[0]
                    cause = f"{first.lock} is still held by {first.by()} after {self.bound_s} s of waiting"
                    raise lock_error(cause, what=what)
                if busy != said:
                    say(waiting_line(busy, left_s=math.ceil(self.bound_s - self.waited_s)))
                    said = busy
                self.sleep(self.poll_s)
        finally:
            self.waited_s += self.clock() - start

    def explain(self, output: str, *, what: str) -> ToolchainError | None:
        """The error for apt's own failure on a lock (taken after the wait); None for other failures."""
        busy = failed_lock(output)
        if busy is None:
            return None
        live = Busy(busy.lock, holders(self.root, busy.lock) or busy.holders)
        return lock_error(f"apt could not get {live.describe()}", what=what)


# -- ./edgepack's wait, before the virtual environment exists --------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m edgepack.host.aptlock",
        description=f"Wait until the locks of an apt-get command are free ({TIMEOUT_ENV} bounds the wait).",
    )
    parser.add_argument("command", choices=sorted(COMMAND_LOCKS))
    args = parser.parse_args(argv)
    try:
        wait = LockWait(lock_timeout(os.environ))
        wait.wait(COMMAND_LOCKS[args.command], what=f"apt-get {args.command}", say=_say)
    except EdgepackError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
