"""The interface every wheel-building strategy implements (cross, emulated).

Like cibuildwheel's ``PlatformModule``: a strategy knows how to turn one
recipe's sources into an *unrepaired* wheel for the target; fetching the
sources, fixing tags, auditwheel repair and the wheelhouse are shared.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from edgepack.errors import CommandError
from edgepack.wheels.recipes import Recipe

StrategyName = Literal["cross", "emulated"]
STRATEGIES: tuple[StrategyName, ...] = ("cross", "emulated")

# Debian architecture -> GNU triplet of its cross toolchain (crossbuild-essential-<arch>).
TRIPLETS = {"arm64": "aarch64-linux-gnu", "armhf": "arm-linux-gnueabihf", "amd64": "x86_64-linux-gnu"}


@dataclass(frozen=True)
class Sources:
    """What a build needs, all on the host: nothing is downloaded during a build."""

    source: Path  # the sdist (.tar.gz) or a source folder
    deps: Path  # a folder of the recipe's pinned build-requirement wheels


class Strategy(Protocol):
    name: StrategyName

    def toolchain_id(self) -> str:
        """Everything about the toolchain that changes the wheel: part of the wheelhouse key."""
        ...

    def prepare(self, recipes: Sequence[Recipe]) -> None:
        """Set up what all builds share (sysroot, builder image); idempotent."""
        ...

    def build(self, recipe: Recipe, sources: Sources, *, out_dir: Path) -> Path:
        """Build one unrepaired wheel into ``out_dir`` and return its path."""
        ...

    def ldpaths(self) -> list[Path]:
        """Where auditwheel finds the target libraries the wheel links (on the host)."""
        ...


class BuildError(CommandError):
    """A package failed to compile: carries the compiler's first error and its command."""


# gcc's "file:line:col: [fatal] error: ..." (not pip's own "error: subprocess-exited-with-error").
_ERROR = re.compile(r"^(?P<where>\S+?:\d+(?::\d+)?: )(?:fatal )?error: (?P<what>.+)$")
_LD_MISSING = re.compile(r"cannot find -l(?P<lib>\S+)")
_HEADER_MISSING = re.compile(r"fatal error: (?P<header>[^:]+\.h): No such file or directory")


def compile_failure(recipe: Recipe, strategy: str, exc: CommandError) -> BuildError:
    """Turn a failed build's output into "<first compiler error> / <its command>"."""
    lines = exc.output.splitlines()
    first = next(
        (i for i, line in enumerate(lines) if _ERROR.match(line.strip()) or _LD_MISSING.search(line)), None
    )
    what = f"building {recipe.name} {recipe.version} ({strategy}) failed"
    if first is None:
        return BuildError(
            f"{what}.", argv=exc.argv, returncode=exc.returncode, output=exc.output, hint=exc.hint
        )
    error = lines[first].strip()
    command = next((line.strip() for line in reversed(lines[:first]) if _is_compiler_line(line)), "")
    parts = [f"{what} because the compiler stopped: {error}"]
    if command:
        parts.append(f"  compiler command: {command}")
    return BuildError(
        "\n".join(parts),
        argv=exc.argv,
        returncode=exc.returncode,
        output="",
        hint=missing_library_hint(recipe, error),
    )


def _is_compiler_line(line: str) -> bool:
    words = line.strip().split()
    return bool(words) and re.search(r"(gcc|g\+\+|cc|c\+\+|clang)(-\d+)?$", words[0]) is not None


def missing_library_hint(recipe: Recipe, error: str) -> str:
    """Name the Debian -dev package a missing header or library most likely comes from."""
    header = _HEADER_MISSING.search(error)
    library = _LD_MISSING.search(error)
    if header is not None:
        missing = header["header"]
    elif library is not None:
        missing = f"lib{library['lib']}.so"
    else:
        return ""
    stem = re.sub(r"\d+$", "", Path(missing).stem.removeprefix("lib"))
    guess = {"portaudio": "portaudio19-dev", "asound": "libasound2-dev", "ffi": "libffi-dev"}.get(
        stem, f"lib{stem}-dev"
    )
    return (
        f"The target sysroot has no {missing}: add the target's Debian -dev package that ships it "
        f"(likely {guess}) to 'system:' in {recipe.origin}, then run: edgepack lock --only sysroot,builder"
    )


def single_wheel(out_dir: Path, *, what: str) -> Path:
    """The one wheel a build left in ``out_dir``; anything else is a failed build."""
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise CommandError(f"{what} left {len(wheels)} wheels, not one.", argv=[], returncode=1, output="")
    return wheels[0]
