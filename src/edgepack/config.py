"""Targets: ``targets/<name>.yaml`` over ``targets/defaults.yaml``, as frozen models.

Defaults live in data (targets/defaults.yaml), not in code. Unknown keys,
wrong types and missing fields are rejected with file:line and a suggestion.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

from edgepack.errors import ConfigError
from edgepack.yamlconf import Located, build, json_schema, load_yaml

Platform = Literal["linux/arm64", "linux/arm/v7", "linux/amd64"]
# Where the runtime's Python packages come from: locked PyPI wheels, or the
# board's Debian release (for boards PyPI has no wheels for: 32-bit ARM).
DepsSource = Literal["wheels", "debian"]
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

# docker platform -> (Debian architecture, wheel platform tag suffix, binfmt name)
PLATFORM_ARCH: dict[str, tuple[str, str, str]] = {
    "linux/arm64": ("arm64", "aarch64", "qemu-aarch64"),
    "linux/arm/v7": ("armhf", "armv7l", "qemu-arm"),
    "linux/amd64": ("amd64", "x86_64", ""),
}


@dataclass(frozen=True)
class DebianConfig:
    suite: str = field(metadata={"doc": "Debian release of the board's base, e.g. bookworm"})
    glibc: str = field(metadata={"doc": "glibc version of that release: sets the manylinux tags accepted"})
    sources: tuple[str, ...] = field(metadata={"doc": "apt source lines the base packages come from"})
    packages: tuple[str, ...] = field(metadata={"doc": "root packages of the base rootfs"})
    exclude: tuple[str, ...] = field(metadata={"doc": "never installed, even when depended on"})


@dataclass(frozen=True)
class SmokeConfig:
    atol: float = field(metadata={"doc": "absolute tolerance, emulated output vs host reference"})
    rtol: float = field(metadata={"doc": "relative tolerance, emulated output vs host reference"})
    runs: int = field(metadata={"doc": "timed repetitions of the smoke inference"})
    timeout_s: int = field(metadata={"doc": "wall-clock limit of the emulated smoke run"})
    audio: str = field(metadata={"doc": "smoke input audio, relative to the project root"})


@dataclass(frozen=True)
class Target:
    name: str = field(metadata={"doc": "target name: the file name without .yaml"})
    description: str = field(metadata={"doc": "the board and OS, for humans"})
    platform: Platform = field(metadata={"doc": "OCI platform of the image"})
    qemu_cpu: str = field(metadata={"doc": "QEMU_CPU emulating the board's CPU (its real core)"})
    python: Literal["3.11", "3.13"] = field(
        metadata={"doc": "Python of the Debian base (bookworm: 3.11, trixie: 3.13)"}
    )
    runtime: Literal["onnxruntime"] = field(metadata={"doc": "inference runtime in the image"})
    threads: int = field(metadata={"doc": "intra-op threads: the board's core count"})
    image: str = field(metadata={"doc": "local image name (no registry)"})
    model: str = field(
        metadata={"doc": "bundled model name (silero-vad), an .onnx file, or a model spec (models/NAME.yaml)"}
    )
    requirements: str = field(metadata={"doc": "runtime requirements file, relative to the project root"})
    deps: DepsSource = field(
        metadata={
            "doc": "where the requirements come from: 'wheels' (PyPI, hash-locked in targets/locks/"
            "requirements-*.txt) or 'debian' (python3-<name> packages listed in debian.packages)"
        }
    )
    prune: tuple[str, ...] = field(
        metadata={"doc": "globs under site-packages left out of the image (tests, build-time tools)"}
    )
    wheels: tuple[str, ...] = field(
        metadata={"doc": "packages built for the board from wheels/<name>.yaml recipes (invoke wheels)"}
    )
    memory_mb: int | None = field(
        metadata={"doc": "the board's RAM: the smoke container's memory limit (null: no limit)"}
    )
    debian: DebianConfig
    smoke: SmokeConfig

    @property
    def arch(self) -> str:
        return PLATFORM_ARCH[self.platform][0]

    @property
    def wheel_arch(self) -> str:
        return PLATFORM_ARCH[self.platform][1]

    @property
    def binfmt(self) -> str:
        return PLATFORM_ARCH[self.platform][2]

    @property
    def emulated(self) -> bool:
        return self.binfmt != ""


@dataclass(frozen=True)
class Project:
    """The folder holding targets/, docker/, runtime/ and build/."""

    root: Path

    @property
    def targets_dir(self) -> Path:
        return self.root / "targets"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    def target_names(self) -> list[str]:
        return sorted(
            p.stem
            for p in self.targets_dir.glob("*.yaml")
            if p.stem != "defaults" and p.parent.name == "targets"
        )

    def lock_path(self, target: Target, kind: Literal["debian", "requirements"]) -> Path:
        if kind == "debian":
            return self.targets_dir / "locks" / f"debian-{target.debian.suite}-{target.arch}.json"
        tag = target.python.replace(".", "")
        return self.targets_dir / "locks" / f"requirements-py{tag}-{target.wheel_arch}.txt"


def load_target(project: Project, name: str) -> Target:
    path = project.targets_dir / f"{name}.yaml"
    if not path.is_file():
        known = project.target_names()
        close = difflib.get_close_matches(name, known, n=1)
        tip = f"Did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown target '{name}' (no {path}).",
            hint=f"{tip}Known targets: {', '.join(known) or 'none'}.",
        )
    doc = load_yaml(path)
    if doc.data in ({}, None) or not isinstance(doc.data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of target settings.")
    defaults = load_yaml(project.targets_dir / "defaults.yaml")
    merged: Located = doc.over(defaults)
    merged.data.setdefault("name", name)
    target = build(Target, merged.data, where=merged)
    if target.name != name:
        raise ConfigError(
            f"{path}:{merged.lines[('name',)][1]}: name '{target.name}' must match the file name."
        )
    _check_deps(target, project=project, where=merged)
    return target


def debian_package_for(requirement: str) -> str:
    """Debian's name for a Python distribution: python3-<lowercase name, '_' and '.' as '-'>."""
    return "python3-" + re.sub(r"[._]+", "-", requirement.lower())


def requirement_names(path: Path) -> list[str]:
    """The distribution names of a requirements file (versions, markers and comments dropped)."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _REQUIREMENT.match(line.split("#", 1)[0])
        if match:
            names.append(match[1])
    return names


def _check_deps(target: Target, *, project: Project, where: Located) -> None:
    """deps: debian takes every requirement from a python3-<name> package, and builds no wheels."""
    if target.memory_mb is not None and target.memory_mb < 64:
        _fail_at(where, ("memory_mb",), f"memory_mb {target.memory_mb} is below what Linux boots in (64).")
    if target.deps != "debian":
        return
    if target.wheels:
        _fail_at(where, ("wheels",), "deps: debian installs no PyPI wheels, so 'wheels' must be [].",
                 hint="List the Debian package (python3-<name>) in debian.packages instead.")  # fmt: skip
    requirements = project.root / target.requirements
    if not requirements.is_file():
        _fail_at(where, ("requirements",), f"{requirements}: requirements file not found.")
    missing = [debian_package_for(n) for n in requirement_names(requirements)
               if debian_package_for(n) not in target.debian.packages]  # fmt: skip
    if missing:
        close = difflib.get_close_matches(missing[0], target.debian.packages, n=1)
        tip = f"Did you mean '{close[0]}'? " if close else ""
        _fail_at(where, ("debian", "packages"),
                 f"deps: debian, but debian.packages lacks {', '.join(missing)} "
                 f"(required by {target.requirements}).",
                 hint=f"{tip}Add them, then: invoke lock.base --target {target.name}")  # fmt: skip


def _fail_at(where: Located, at: tuple[str, ...], message: str, *, hint: str = "") -> NoReturn:
    path, line = where.lines.get(at) or where.lines.get(at[:-1]) or (where.path, 1)
    raise ConfigError(f"{path}:{line}: {message}", hint=hint)


def target_schema() -> dict[str, object]:
    return json_schema(Target, title="edgepack target (targets/<name>.yaml merged over defaults.yaml)")
