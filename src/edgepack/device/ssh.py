"""A board over SSH: a context manager with verbs run, sh, copy_in, copy_out.

Everything goes through the system ``ssh`` binary via the Runner, with key
authentication only (BatchMode: never a password prompt) and strict host key
checking against the inventory's known_hosts: an unknown or changed host key
is refused, with the fingerprint the host offers now and the command to run
once it is verified out-of-band. ssh's failures (exit 255) become one-line
errors: unreachable, wrong user or key, host key, connection lost.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from edgepack.device.errors import (
    BoardAuthError,
    BoardError,
    BoardUnreachableError,
    ConnectionLostError,
    HostKeyError,
)
from edgepack.device.inventory import BoardSpec
from edgepack.errors import CommandError, EdgepackError
from edgepack.fsutil import sha256_file
from edgepack.runner import Result, Runner

_UNREACHABLE = (
    "Connection refused",
    "Connection timed out",
    "No route to host",
    "Could not resolve hostname",
    "Network is unreachable",
    "kex_exchange_identification",
    "Connection closed by",
)
_LOST = ("Broken pipe", "Connection reset", "closed by remote host", "client_loop", "Timeout, server")


def ssh_argv(spec: BoardSpec, remote: str) -> list[str]:
    """The ssh command line running ``remote`` (one string, for the board's shell)."""
    argv = ["ssh", "-T", "-p", str(spec.port), "-l", spec.user]
    options = {
        "BatchMode": "yes",  # keys only: a prompt would hang a fleet run
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": spec.known_hosts,
        "GlobalKnownHostsFile": "/dev/null",
        "UpdateHostKeys": "no",  # never write the inventory's known_hosts behind the user's back
        "ConnectTimeout": str(spec.connect_timeout_s),
        "ServerAliveInterval": "5",  # a dropped link ends the command within ~15 s
        "ServerAliveCountMax": "3",
    }
    if spec.key:
        options["IdentitiesOnly"] = "yes"
        argv += ["-i", spec.key]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    return [*argv, "--", spec.address, remote]


def keyscan_argv(spec: BoardSpec) -> list[str]:
    return ["ssh-keyscan", "-T", "5", "-p", str(spec.port), "--", spec.address]


def known_host_pattern(spec: BoardSpec) -> str:
    """How known_hosts names the board: ``address`` on port 22, else ``[address]:port``."""
    return spec.address if spec.port == 22 else f"[{spec.address}]:{spec.port}"


@dataclass(frozen=True)
class Transfer:
    bytes: int  # the file's size
    sent: int  # sent in this call (less than bytes when a partial copy was resumed)
    resumed_from: int
    seconds: float


class Board:
    """``with Board(spec, runner=r) as b: b.run([...])``: one board, reached over SSH."""

    def __init__(self, spec: BoardSpec, *, runner: Runner) -> None:
        self.spec = spec
        self.runner = runner

    def __enter__(self) -> Board:
        if self.spec.key and not Path(self.spec.key).is_file():
            raise BoardAuthError(
                f"board {self.spec.name}: key file {self.spec.key} not found.",
                hint="Set 'key:' in the inventory (or --key) to the board's private key.",
            )
        if not Path(self.spec.known_hosts).is_file():
            raise self._unknown_host_key(f"{self.spec.known_hosts} does not exist")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None  # one connection per command: nothing stays open

    # -- verbs -------------------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        input: bytes | None = None,
        stdin: BinaryIO | None = None,
        check: bool = True,
        timeout: float | None = None,
        privileged: bool = False,
    ) -> Result:
        """Run ``argv`` on the board (quoted for its shell); ``privileged`` adds sudo -n when configured."""
        if privileged and self.spec.sudo:
            argv = ["sudo", "-n", *argv]
        return self._ssh(shlex.join(argv), what=what, input=input, stdin=stdin, check=check, timeout=timeout)

    def sh(
        self,
        script: str,
        *,
        what: str,
        input: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> Result:
        """Run a POSIX sh script on the board."""
        return self.run(["sh", "-c", script], what=what, input=input, check=check, timeout=timeout)

    def copy_in(self, local: Path, remote: str, *, sha256: str | None = None) -> Transfer:
        """Copy ``local`` to ``remote``, resuming a partial copy; verified by sha256, then renamed.

        The bytes go to ``remote.part`` first: a dropped connection leaves only
        that file, and the next call sends what is missing.
        """
        size = local.stat().st_size
        digest = sha256 or sha256_file(local)
        part = f"{remote}.part"
        have = self._remote_size(part)
        offset = have if 0 < have <= size else 0
        t0 = time.perf_counter()
        with local.open("rb") as fh:
            fh.seek(offset)
            redirect = ">>" if offset else ">"
            script = f"mkdir -p {shlex.quote(str(Path(remote).parent))} && cat {redirect} {shlex.quote(part)}"
            try:
                what = f"copying {local.name} to {self.spec.name}"
                self._ssh(shlex.join(["sh", "-c", script]), what=what, stdin=fh)
            except ConnectionLostError as exc:
                done = self._remote_size(part, quiet=True)
                exc.message = (
                    f"copying {local.name} to board {self.spec.name} failed because the connection dropped "
                    f"after {done if done >= 0 else '?'} of {size} bytes."
                )
                exc.hint = "The board keeps the partial file; run the same command again to resume."
                raise
        seconds = time.perf_counter() - t0
        check = f"sha256sum {shlex.quote(part)}"
        got = self.sh(check, what=f"checking {part} on {self.spec.name}").stdout.split()
        if not got or got[0] != digest:
            self.run(["rm", "-f", part], what="removing a corrupt partial copy")
            raise BoardError(
                f"copying {local.name} to board {self.spec.name} failed because its sha256 on the board "
                f"({got[0] if got else 'none'}) is not the file's ({digest}).",
                hint="The partial copy was removed; run the same command again.",
            )
        self.run(["mv", "-f", part, remote], what=f"renaming {part}")
        return Transfer(bytes=size, sent=size - offset, resumed_from=offset, seconds=round(seconds, 3))

    def copy_out(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.part")
        with tmp.open("wb") as fh:
            self._ssh(shlex.join(["cat", remote]), what=f"copying {remote} from {self.spec.name}", stdout=fh)
        tmp.replace(local)

    # -- ssh and its failures -------------------------------------------------------------------------

    def _remote_size(self, path: str, *, quiet: bool = False) -> int:
        script = f"stat -c %s {shlex.quote(path)} 2>/dev/null || echo -1"
        try:
            out = self.sh(script, what=f"size of {path} on {self.spec.name}").stdout.split()
        except EdgepackError:
            if quiet:
                return -1
            raise
        return int(out[-1]) if out and out[-1].lstrip("-").isdigit() else -1

    def _ssh(
        self,
        remote: str,
        *,
        what: str,
        input: bytes | None = None,
        stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> Result:
        argv = ssh_argv(self.spec, remote)
        try:
            result = self.runner.run(
                argv,
                what=f"{what} (ssh {self.spec.destination})",
                input=input,
                stdin=stdin,
                stdout=stdout,
                check=False,
                timeout=timeout,
            )
        except CommandError as exc:  # timed out
            raise ConnectionLostError(f"{what} on board {self.spec.name} failed: {exc.message}") from None
        if result.returncode == 255:
            raise self._ssh_failure(result, what=what)
        if check and result.returncode != 0:
            output = result.stdout + "\n" + result.stderr
            message = f"{what} on board {self.spec.name} failed."
            raise CommandError(message, argv=argv, returncode=result.returncode, output=output)
        return result

    def _ssh_failure(self, result: Result, *, what: str) -> EdgepackError:
        err = result.stderr
        name, dest = self.spec.name, self.spec.destination
        if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            if "HAS CHANGED" in err:
                return self._changed_host_key(err)
            return self._unknown_host_key(
                f"{self.spec.known_hosts} has no key for {known_host_pattern(self.spec)}"
            )
        if "Permission denied" in err or "Too many authentication failures" in err:
            key = self.spec.key or "ssh's default keys"
            return BoardAuthError(
                f"board {name} ({dest}) refused user '{self.spec.user}' with {key}.",
                hint="Check 'user:' and 'key:' of this board: its authorized_keys must hold the public key.",
            )
        if "UNPROTECTED PRIVATE KEY FILE" in err or "bad permissions" in err:
            return BoardAuthError(
                f"ssh refused key {self.spec.key}: its permissions are too open.",
                hint=f"Run: chmod 600 {self.spec.key}",
            )
        if any(s in err for s in _UNREACHABLE) and not any(s in err for s in _LOST):
            cause = next(line for line in err.splitlines() if any(s in line for s in _UNREACHABLE))
            return BoardUnreachableError(
                f"board {name} ({dest}) is unreachable: {cause.strip()}.",
                hint="Check that it is powered, on the network, and that sshd listens on that port.",
            )
        tail = err.strip().splitlines()[-1] if err.strip() else "no message"
        return ConnectionLostError(
            f"{what} on board {name} failed because the connection was lost ({tail}).",
            hint="Run the same command again.",
        )

    def _offered_keys(self) -> list[str]:
        """The host's keys as ``TYPE SHA256:...`` lines (for display: this trusts nothing)."""
        scan = self.runner.run(
            keyscan_argv(self.spec), what="ssh-keyscan", check=False, timeout=15, mutates=False
        )
        if not scan.stdout.strip():
            return []
        prints = self.runner.run(
            ["ssh-keygen", "-l", "-f", "-"],
            what="ssh-keygen -l",
            input=scan.stdout.encode(),
            check=False,
            mutates=False,
        )
        # "256 SHA256:abc [127.0.0.1]:2222 (ED25519)" -> "ED25519 SHA256:abc"
        rows = [line.split() for line in prints.stdout.splitlines()]
        return [f"{w[-1].strip('()')} {w[1]}" for w in rows if len(w) >= 4]

    def _unknown_host_key(self, why: str) -> HostKeyError:
        offered = self._offered_keys()
        shown = "\n".join(f"  {line}" for line in offered) or "  (ssh-keyscan got no key: is the board up?)"
        pattern = known_host_pattern(self.spec)
        scan = f"ssh-keyscan -p {self.spec.port} {self.spec.address} | grep -v '^#'"
        return HostKeyError(
            f"board {self.spec.name}: host key refused because it is unknown ({why}). "
            f"The host offers:\n{shown}",
            hint=(
                "Compare with the board's own fingerprint, read out-of-band (on its console: "
                "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); only if it matches, run:\n"
                f"  {scan} >> {self.spec.known_hosts}"
                f"   # records {pattern}"
            ),
        )

    def _changed_host_key(self, err: str) -> HostKeyError:
        offending = re.search(r"Offending \S+ key in (\S+:\d+)", err)
        new = re.search(r"(SHA256:[A-Za-z0-9+/=]+)", err)
        pattern = known_host_pattern(self.spec)
        scan = f"ssh-keyscan -p {self.spec.port} {self.spec.address} | grep -v '^#'"
        return HostKeyError(
            f"board {self.spec.name}: host key refused because it CHANGED "
            f"(known: {offending.group(1) if offending else self.spec.known_hosts}; "
            f"offered now: {new.group(1) if new else 'unknown'}). "
            "Someone may be intercepting the connection, or the board was reinstalled.",
            hint=(
                "Verify the new fingerprint out-of-band (on the board's console: "
                "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); only if it matches, run:\n"
                f"  ssh-keygen -R '{pattern}' -f {self.spec.known_hosts}\n"
                f"  {scan} >> {self.spec.known_hosts}"
            ),
        )
