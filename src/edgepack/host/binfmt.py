"""QEMU user emulation in binfmt_misc: the registrations edgepack needs and how to read them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import ToolchainError

BINFMT_FLAGS = "FPC"  # F: opened at registration, so it works inside containers


@dataclass(frozen=True)
class Emulator:
    name: str  # binfmt entry and binary name
    arch: str
    platform: str
    magic: str  # as written to binfmt_misc/register: the kernel parses the \xNN escapes
    mask: str


_ELF_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"


AARCH64 = Emulator(
    "qemu-aarch64",
    "arm64",
    "linux/arm64",
    r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
    _ELF_MASK,
)


ARM = Emulator(
    "qemu-arm",
    "arm",
    "linux/arm/v7",
    r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
    _ELF_MASK,
)


EMULATORS = {"linux/arm64": AARCH64, "linux/arm/v7": ARM, "linux/arm/v6": ARM}


NATIVE_PLATFORM = {"amd64": "linux/amd64", "arm64": "linux/arm64"}


@dataclass(frozen=True)
class Registration:
    enabled: bool
    interpreter: str
    flags: str
    magic: bytes
    mask: bytes


@dataclass(frozen=True)
class BinfmtMisc:
    """The kernel's binfmt_misc files; unit tests point ``root`` at a fake tree."""

    root: Path = Path("/proc/sys/fs/binfmt_misc")

    def mounted(self) -> bool:
        return (self.root / "register").exists()

    def read(self, name: str) -> Registration | None:
        try:
            text = (self.root / name).read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        return parse_registration(text)

    def remove(self, name: str) -> None:
        _kernel_write(self.root / name, "-1")

    def register(self, line: str) -> None:
        _kernel_write(self.root / "register", line)


def parse_registration(text: str) -> Registration:
    lines = text.splitlines()
    values: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        values[key.rstrip(":")] = value.strip()
    return Registration(
        enabled=bool(lines) and lines[0] == "enabled",
        interpreter=values.get("interpreter", ""),
        flags=values.get("flags", ""),
        magic=bytes.fromhex(values.get("magic", "")),
        mask=bytes.fromhex(values.get("mask", "")),
    )


def register_line(emulator: Emulator, interpreter: Path) -> str:
    return f":{emulator.name}:M::{emulator.magic}:{emulator.mask}:{interpreter}:{BINFMT_FLAGS}"


def _kernel_write(path: Path, text: str) -> None:
    """One write(2): binfmt_misc takes each write as one whole command."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode("ascii"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise ToolchainError(f"writing {path} failed because {exc.strerror}.") from exc


def _unescape(escaped: str) -> bytes:
    return escaped.encode("ascii").decode("unicode_escape").encode("latin-1")


def magic_matches(registration: Registration, emulator: Emulator) -> bool:
    want, mask = _unescape(emulator.magic), _unescape(emulator.mask)
    got = registration.magic
    return len(got) == len(want) and all(g & m == w & m for g, w, m in zip(got, want, mask, strict=True))
