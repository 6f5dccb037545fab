"""Every subprocess goes through here: argument lists, echo, dry run.

Modelled on cibuildwheel's ``util/cmd.call`` and pypa/build's
``run_subprocess``: the binary is resolved first (a missing tool says what to
install), the command is echoed as ``+ argv``, output is kept quiet on success
and its tail is shown on failure.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from edgepack.errors import CommandError, ToolchainError

# Which Debian package provides a tool, for "install X" hints.
TOOL_PACKAGES: dict[str, str] = {
    "docker": "docker.io (then start dockerd: edgepack doctor --fix)",
    "dockerd": "docker.io",
    "apt-get": "apt (edgepack needs a Debian host)",
    "dpkg-deb": "dpkg",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
}


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Runner:
    """Runs commands; ``dry_run`` echoes them without running anything."""

    dry_run: bool = False
    echo: bool = True
    stream: TextIO = field(default=sys.stderr, repr=False)
    # Every command runs here unless told otherwise, never in the process's current folder: a step on
    # another thread may hold a chdir (onnxruntime's quant_pre_process writes into the cwd) when a
    # command starts, and a scratch cwd deleted under a running pip breaks it.
    home: Path = field(default_factory=Path.cwd, repr=False)

    def which(self, tool: str, *, hint: str = "") -> str:
        path = shutil.which(tool)
        if path is None:
            package = TOOL_PACKAGES.get(tool, tool)
            raise ToolchainError(
                f"'{tool}' was not found on PATH.",
                hint=hint or f"Install it (Debian package: {package}), or run: edgepack doctor --fix",
            )
        return path

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        what: str = "",
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        hint: str = "",
        mutates: bool = True,
        stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None,
    ) -> Result:
        """Run ``argv``; on failure raise CommandError naming ``what``.

        ``mutates=False`` marks a read-only query that still runs in a dry run
        (``docker info``), so that a plan can be computed without side effects.
        ``stdin``/``stdout`` stream from/to open files (large transfers, never
        held in memory); the child reads ``stdin`` from its current offset.
        """
        args = [os.fspath(a) for a in argv]
        if self.echo:
            print(f"+ {shlex.join(args)}", file=self.stream)
        if self.dry_run and mutates:
            return Result(args, 0, "", "")
        full_env = None if env is None else {**os.environ, **env}
        try:
            proc = subprocess.run(
                args,
                cwd=cwd or self.home,
                env=full_env,
                input=input,
                stdin=stdin,
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ToolchainError(
                f"{what or args[0]} failed because '{args[0]}' is not installed.",
                hint=hint or f"Install it (Debian package: {TOOL_PACKAGES.get(args[0], args[0])}).",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandError(
                f"{what or args[0]} failed because it took longer than {timeout:.0f} s.",
                argv=args,
                returncode=-1,
                output=_decode(exc.stdout) + _decode(exc.stderr),
                hint=hint,
            ) from exc
        result = Result(args, proc.returncode, _decode(proc.stdout), _decode(proc.stderr))
        if check and proc.returncode != 0:
            raise CommandError(
                f"{what or args[0]} failed.",
                argv=args,
                returncode=proc.returncode,
                output=result.stdout + "\n" + result.stderr,
                hint=hint,
            )
        return result

    def spawn(self, argv: Sequence[str | os.PathLike[str]], *, log: Path, what: str = "") -> None:
        """Start a daemon that outlives edgepack (dockerd), its output appended to ``log``; not waited for.

        The caller says what it starts (the doctor prints it as a shell line with the redirection).
        """
        args = [os.fspath(a) for a in argv]
        if self.dry_run:
            return
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            try:
                subprocess.Popen(args, cwd=self.home, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
            except FileNotFoundError as exc:
                missing = f"'{args[0]}' is not installed"
                raise ToolchainError(f"{what or args[0]} failed because {missing}.") from exc

    @contextlib.contextmanager
    def streaming(
        self, argv: Sequence[str | os.PathLike[str]], *, what: str = ""
    ) -> Iterator[subprocess.Popen[bytes]]:
        """A running command whose output the caller reads as it comes (QEMU's console); killed after."""
        args = [os.fspath(a) for a in argv]
        if self.echo:
            print(f"+ {shlex.join(args)}", file=self.stream)
        try:
            proc = subprocess.Popen(args, cwd=self.home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        except FileNotFoundError as exc:
            raise ToolchainError(f"{what or args[0]} failed because '{args[0]}' is not installed.") from exc
        try:
            yield proc
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
