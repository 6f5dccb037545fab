"""The one error boundary, applied to every task by ``@command``; typed flags; the ``edgepack`` program.

Exit codes (README, "Errors"):

| code | meaning |
|------|---------|
| 0 | done |
| 1 | an unexpected internal error (a bug: please report it with the traceback) |
| 2 | bad input or configuration: a file, field or flag (and usage errors of the command line) |
| 3 | the host toolchain: docker, buildx, QEMU, binfmt, apt locks |
| 4 | a command edgepack ran failed (its command line, exit code and output tail are shown) |
| 5 | smoke mismatch: the image's outputs differ from the host reference |
| 6 | a board refused or is unreachable |
| 7 | a performance regression against the baseline |
| 8 | the file system: permission denied, no space left, read-only, a folder where a file belongs |
| 9 | the model stage: trace, export or fp32 validation failed |
| 10 | the quantization gate: the quantized model fails its metric, quantized nothing, or fails to load |
| 130 | interrupted (Ctrl-C): finished steps stay cached, no partial output is kept |
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit, ParseError
from invoke.program import Program
from invoke.tasks import Task
from rich.markup import escape

from edgepack.config import Project, find_project
from edgepack.errors import ConfigError, EdgepackError, Reported
from edgepack.runner import Runner
from edgepack.ui import errors

# A task's body: ``(c: Context, **flags)``; invoke reads its flags from the signature.
Body = Callable[..., Any]
T = TypeVar("T")

FILESYSTEM_EXIT = 8
_OS_ADVICE = {
    errno.EACCES: "permission denied: run as a user who may write there, or choose another folder",
    errno.EPERM: "operation not permitted: run as a user who may write there, or choose another folder",
    errno.ENOSPC: "no space left on the device: free some space (docker system prune, build/), then rerun",
    errno.EDQUOT: "disk quota exceeded: free some space, then rerun",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EISDIR: "is a folder where a file was expected: give the file's path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ELOOP: "too many levels of symbolic links (a loop?): check the link",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def render_os_error(exc: OSError) -> str:
    """Two lines: the path and what went wrong; then what to do."""
    where = exc.filename or "a file"
    if exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}"
    advice = _OS_ADVICE.get(exc.errno or 0, f"{exc.strerror or exc}: check the path and the disk")
    what, _, todo = advice.partition(": ")
    return f"{where}: {what} ({exc.strerror or exc}).\n{todo[:1].upper()}{todo[1:]}."


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Foreseeable failures become a short message and an exit code, never a traceback."""
    try:
        yield
    except Reported as exc:  # its table or report said it all
        raise Exit(code=exc.exit_code) from None
    except EdgepackError as exc:
        # escaped: a message quotes commands and paths, whose [brackets] are not rich markup
        errors.print(f"[bold red]error:[/] {escape(exc.render())}", soft_wrap=True, highlight=False)
        raise Exit(code=exc.exit_code) from None
    except BrokenPipeError:  # the reader of our output left (`| head`): not an error; main() exits quietly
        raise
    except OSError as exc:  # the disk, not a stage, is to blame: say which path and why
        if exc.errno is None:
            raise
        errors.print(f"[bold red]error:[/] {escape(render_os_error(exc))}", soft_wrap=True, highlight=False)
        raise Exit(code=FILESYSTEM_EXIT) from None
    except KeyboardInterrupt:
        errors.print("[bold red]interrupted[/]: finished steps stay cached; no partial output was kept.")
        raise Exit(code=130) from None


def command(
    *,
    help: dict[str, str] | None = None,
    iterable: Sequence[str] = (),
    optional: Sequence[str] = (),
    name: str | None = None,
    required: Sequence[str] = (),
    positional: Sequence[str] = (),
) -> Callable[[Body], Task[Body]]:
    """An invoke task run inside the error boundary; no automatic short flags (``-h`` is always help).

    Each flag's default is appended to its help text, so ``--help`` shows it.
    """

    def wrap(body: Body) -> Task[Body]:
        @functools.wraps(body)
        def guarded(c: Context, *args: Any, **kwargs: Any) -> Any:
            with guard():
                for flag in required:  # flags, not positionals: "-h" after the task stays help
                    if kwargs.get(flag) in (None, ""):
                        raise ConfigError(
                            f"--{flag.replace('_', '-')} is required.", hint=_required_hint(flag)
                        )
                return body(c, *args, **kwargs)

        return Task(  # what invoke's @task(...) makes of a function
            guarded,
            auto_shortflags=False,
            help=_with_defaults(body, help or {}),
            iterable=list(iterable),
            optional=list(optional),
            name=name,
            positional=list(positional),
        )

    return wrap


def given(value: T | None) -> T:
    """A flag named in ``@command(required=...)``: the boundary has refused the task without it."""
    assert value is not None, "a required flag reached its task unset"
    return value


def _required_hint(flag: str) -> str:
    if flag == "target":
        try:
            names = project().target_names()
        except OSError:
            names = []
        return (
            f"Known targets: {', '.join(names)}." if names else "No targets/ folder here: see edgepack init."
        )
    return "See --help."


def _with_defaults(body: Callable[..., Any], help: dict[str, str]) -> dict[str, str]:
    out = dict(help)
    for name, param in list(inspect.signature(body).parameters.items())[1:]:
        default = param.default
        if default in (inspect.Parameter.empty, None, False, "", ()) or isinstance(default, list):
            continue
        text = out.get(name, "")
        out[name] = f"{text} (default: {default})" if text else f"default: {default}"
    return out


def project(root: str | None = None) -> Project:
    """The project the command works on: found from the current folder up (edgepack.toml, [tool.edgepack]).

    Its ``python_path`` folders go on sys.path, explicitly: a spec's torch factory or sample callable
    (``package.module:fn``) imports from the project, not from wherever edgepack was started.
    """
    found = find_project(Path(root) if root else None)
    for folder in reversed(found.python_path):
        path = str((found.root / folder).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    return found


def runner(*, dry: bool = False, echo: bool = False) -> Runner:
    return Runner(dry_run=dry, echo=echo or dry)


# -- typed flags: parsed by edgepack, so a bad value is exit 2 naming the flag -------------------


def integer(flag: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``--jobs abc`` / ``--jobs 0``: a ConfigError naming the flag and the accepted range."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(
            f"--{flag} {value}: not a whole number.", hint=_range_hint(minimum, maximum)
        ) from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(f"--{flag} {value}: out of range.", hint=_range_hint(minimum, maximum))
    return number


def number(flag: str, value: object, *, minimum: float | None = None, maximum: float | None = None) -> float:
    try:
        parsed = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"--{flag} {value}: not a number.", hint=_range_hint(minimum, maximum)) from None
    if (
        parsed != parsed
        or (minimum is not None and parsed < minimum)
        or (maximum is not None and parsed > maximum)
    ):
        raise ConfigError(f"--{flag} {value}: out of range.", hint=_range_hint(minimum, maximum))
    return parsed


def _range_hint(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"Give a value from {minimum} to {maximum}."
    if minimum is not None:
        return f"Give a value of {minimum} or more."
    if maximum is not None:
        return f"Give a value of {maximum} or less."
    return "Give a number."


# -- the edgepack program ------------------------------------------------------------------------


class EdgepackProgram(Program):
    """invoke's Program with edgepack's conventions: usage errors exit 2, with a did-you-mean for tasks."""

    def run(self, argv: list[str] | str | None = None, exit: bool = True) -> None:
        argv = self._help_first(list(sys.argv) if argv is None else argv)
        try:
            self.create_config()
            self.parse_core(argv.split() if isinstance(argv, str) else argv)  # as invoke's normalize_argv
            self.parse_collection()
            self.parse_tasks()
            self.parse_cleanup()
            self.update_config()
        except ParseError as exc:
            print(f"error: {self._suggest(str(exc))}", file=sys.stderr)
            print(f"See: {self.binary} --help, or {self.binary} TASK --help", file=sys.stderr)
            if exit:
                sys.exit(2)
            return
        except Exit as exc:  # --help, --list, --version
            if exc.message:
                print(exc.message, file=sys.stderr)
            if exit:
                sys.exit(exc.code)
            return
        try:
            self.execute()
        except Exit as exc:
            if exc.message:
                print(exc.message, file=sys.stderr)
            if exit:
                sys.exit(exc.code)
        except KeyboardInterrupt:
            sys.exit(130)

    def _help_first(self, argv: list[str] | str) -> list[str] | str:
        """``edgepack TASK ... -h``: help for the task, whatever precedes it (no flag value eats -h)."""
        if isinstance(argv, str) or not any(a in ("-h", "--help") for a in argv[1:]):
            return argv
        names = set(self.namespace.task_names) if self.namespace else set()
        task = next((a for a in argv[1:] if a in names), None)
        return [argv[0], "--help", task] if task else argv

    def _suggest(self, message: str) -> str:
        prefix = "No idea what '"
        if message.startswith(prefix) and message.endswith("' is!"):
            given = message[len(prefix) : -len("' is!")]
            names = list(self.collection.task_names) if self.collection else []
            close = difflib.get_close_matches(given, names, n=1)
            tip = f" Did you mean '{close[0]}'?" if close else ""
            return f"'{given}' is not a task or flag of {self.binary}.{tip}"
        return message


def main() -> None:
    """The ``edgepack`` console script: edgepack's tasks (``edgepack.tasks.ns``) as a program."""
    from edgepack import __version__
    from edgepack.tasks import ns

    try:
        EdgepackProgram(namespace=ns, version=__version__, name="edgepack", binary="edgepack").run()
    except BrokenPipeError:  # `edgepack build --help | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
