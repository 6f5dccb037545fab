"""Targets: ``targets/<name>.yaml`` over ``targets/defaults.yaml``, as frozen models.

Defaults live in data (targets/defaults.yaml), not in code. Unknown keys,
wrong types and missing fields are rejected with file:line and a suggestion.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgepack.errors import ConfigError
from edgepack.yamlconf import Located, build, json_schema, load_yaml

Platform = Literal["linux/arm64", "linux/arm/v7", "linux/amd64"]

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
class SdcardConfig:
    """A flashable SD-card image of the target (invoke flash.image); see src/edgepack/flash/."""

    card_mb: int = field(metadata={"doc": "declared card size in MiB: a larger image is refused"})
    boot_mb: int = field(metadata={"doc": "size of the FAT boot partition in MiB"})
    root_headroom_mb: int = field(metadata={"doc": "free MiB left in the ext4 root filesystem"})
    image_name: str = field(metadata={"doc": "file name stem of build/<target>/sdcard/<name>.img"})
    hostname: str = field(metadata={"doc": "hostname until the boot partition's edgepack.conf sets one"})
    sources: tuple[str, ...] = field(metadata={"doc": "apt source lines (with the firmware component)"})
    packages: tuple[str, ...] = field(metadata={"doc": "root packages: kernel, firmware, systemd, Python"})
    exclude: tuple[str, ...] = field(
        metadata={"doc": "never installed: package tools whose scripts never run"}
    )
    drop: tuple[str, ...] = field(metadata={"doc": "globs of rootfs paths left out (docs, foreign drivers)"})
    device_trees: tuple[str, ...] = field(metadata={"doc": "device trees copied to the boot partition"})
    initramfs_modules: tuple[str, ...] = field(metadata={"doc": "kernel modules the initramfs loads"})
    config_txt: tuple[str, ...] = field(metadata={"doc": "lines of the firmware's config.txt"})
    cmdline: str = field(metadata={"doc": "kernel command line (cmdline.txt) without root="})
    xz_preset: int = field(
        metadata={"doc": "xz preset of the .img.xz (0-9): 3 is ~1.5x as fast as 6, ~12% larger"}
    )
    boot_timeout_s: int = field(metadata={"doc": "limit of the QEMU boot test (invoke flash.boot)"})


@dataclass(frozen=True)
class Target:
    name: str = field(metadata={"doc": "target name: the file name without .yaml"})
    description: str = field(metadata={"doc": "the board and OS, for humans"})
    platform: Platform = field(metadata={"doc": "OCI platform of the image"})
    qemu_cpu: str = field(metadata={"doc": "QEMU_CPU emulating the board's CPU (its real core)"})
    python: Literal["3.11"] = field(metadata={"doc": "Python of the Debian base (bookworm: 3.11)"})
    runtime: Literal["onnxruntime"] = field(metadata={"doc": "inference runtime in the image"})
    threads: int = field(metadata={"doc": "intra-op threads: the board's core count"})
    image: str = field(metadata={"doc": "local image name (no registry)"})
    model: str = field(
        metadata={"doc": "bundled model name (silero-vad), an .onnx file, or a model spec (models/NAME.yaml)"}
    )
    requirements: str = field(metadata={"doc": "runtime requirements file, relative to the project root"})
    prune: tuple[str, ...] = field(
        metadata={"doc": "globs under site-packages left out of the image (tests, build-time tools)"}
    )
    wheels: tuple[str, ...] = field(
        metadata={"doc": "packages built for the board from wheels/<name>.yaml recipes (invoke wheels)"}
    )
    debian: DebianConfig
    smoke: SmokeConfig
    sdcard: SdcardConfig | None = None

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

    def lock_path(self, target: Target, kind: Literal["debian", "requirements", "sdcard"]) -> Path:
        if kind == "sdcard":
            return (
                self.targets_dir / "locks" / f"sdcard-{target.name}-{target.debian.suite}-{target.arch}.json"
            )
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
    return target


def target_schema() -> dict[str, object]:
    return json_schema(Target, title="edgepack target (targets/<name>.yaml merged over defaults.yaml)")
