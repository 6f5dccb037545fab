"""A capture target's base gets ALSA's configuration at its PyAudio's libasound version; others do not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgepack import debian
from edgepack.config import Project, load_target
from edgepack.pipeline import base
from edgepack.pipeline.context import Build
from edgepack.wheels import sysroot
from tests.conftest import FakeRunner

REPO = Path(__file__).resolve().parents[2]


def build(name: str) -> Build:
    target = load_target(Project(REPO), name)
    return Build(target=target, project=Project(REPO), runner=FakeRunner(), model=target.model)


def test_a_capture_target_carries_libasound2_data_of_its_pyaudios_sysroot() -> None:
    b = build("rpi4")
    assert "capture" in b.target.features and "pyaudio" in b.target.wheels
    plain = debian.read_lock(Project(REPO).lock_path(b.target, "debian"))
    lock = base.with_capture_data(plain, b)
    (alsa,) = [p for p in lock.packages if p.name == "libasound2-data"]
    grafted = debian.read_lock(sysroot.lock_path(b.project, b.target, "sysroot")).packages
    (lib,) = [p for p in grafted if p.name == "libasound2"]
    assert alsa.version == lib.version.split("+b")[0]  # the data of the library the wheel carries
    assert lock.digest() != plain.digest()  # so the base step's key follows it


def test_a_target_without_capture_gets_no_alsa_data() -> None:
    b = build("jetson-orin-nano")
    assert "capture" not in b.target.features
    plain = debian.read_lock(Project(REPO).lock_path(b.target, "debian"))
    assert base.with_capture_data(plain, b) == plain
    no_pyaudio = dataclasses.replace(
        build("rpi4"), target=dataclasses.replace(b.target, features=("capture",))
    )
    assert base.capture_data(no_pyaudio) is None  # capture without PyAudio built: nothing to match
