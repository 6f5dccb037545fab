"""Pinned versions and packages of the host toolchain (resources/toolchain.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgepack.yamlconf import build, load_yaml

TOOLCHAIN_YAML = Path(__file__).parents[1] / "resources" / "toolchain.yaml"


@dataclass(frozen=True)
class DockerPins:
    packages_bookworm: tuple[str, ...]
    packages_trixie: tuple[str, ...]
    dockerd_args: tuple[str, ...]
    log: str
    start_timeout_s: int


@dataclass(frozen=True)
class BuildxPins:
    package: str
    version: str
    min_version: str


@dataclass(frozen=True)
class QemuPins:
    package: str
    version: str
    deb_sha256_amd64: str
    min_major: int
    install_dir: str


@dataclass(frozen=True)
class TrixieSource:
    sources_file: str
    preferences_file: str
    uris: str
    suite: str
    components: str
    signed_by: str
    pin_priority: int


@dataclass(frozen=True)
class WheelToolPins:
    packages: tuple[str, ...]
    tools: tuple[str, ...]


@dataclass(frozen=True)
class CiToolPins:
    packages: tuple[str, ...]
    tools: tuple[str, ...]


@dataclass(frozen=True)
class SshPins:
    packages: tuple[str, ...]
    tools: tuple[str, ...]
    policy_rc_d: str


@dataclass(frozen=True)
class SdcardToolPins:
    packages: tuple[str, ...]
    probes: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Pins:
    docker: DockerPins
    buildx: BuildxPins
    qemu: QemuPins
    trixie_source: TrixieSource
    wheels: WheelToolPins
    ci: CiToolPins
    ssh: SshPins
    sdcard: SdcardToolPins


def load_pins(path: Path = TOOLCHAIN_YAML) -> Pins:
    located = load_yaml(path)
    return build(Pins, located.data, where=located)
