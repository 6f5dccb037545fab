"""A fresh clone on a machine that has built before: rpi4's host steps (the Debian base, the locked and
cross-built wheels, the model chain, the app folder) taken from the machine, not run again, each in
the clone's own folder with the same bytes; with EDGEPACK_BUILT=off, run again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepack.config import load_target
from edgepack.fsutil import sha256_file
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import StepRecord, execute
from edgepack.runner import Runner
from tests.integration.test_build import copy_project


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPACK_BUILT", str(folder))
        yield folder


def host_steps(root: Path) -> tuple[Build, dict[str, StepRecord]]:
    project = copy_project(root)
    target = load_target(project, "rpi4")
    b = Build(target=target, project=project, runner=Runner(echo=False), model=target.model)
    steps = [s for s in plan(b) if s.phase == "host"]
    return b, {r.name: r for r in execute(steps, b.cache)}


def test_a_fresh_clone_takes_the_host_steps_from_the_machine(machine: Path, tmp_path: Path) -> None:
    _, made = host_steps(tmp_path / "first")
    assert not any(r.cached for r in made.values())
    second, taken = host_steps(tmp_path / "second")
    assert set(taken) == set(made) >= {"base", "deps", "model", "export", "quantize", "validate", "app"}
    assert all(r.cached for r in taken.values()) and [r.key for r in taken.values()] == [
        r.key for r in made.values()
    ]
    rootfs = Path(taken["base"].outputs["rootfs"])
    assert rootfs.is_relative_to(second.project.cache_root) and rootfs.is_file()
    assert sha256_file(rootfs) == made["base"].outputs["sha256"]
    site = Path(taken["deps"].outputs["site_packages"])
    assert site.is_relative_to(second.project.cache_root) and (site / "numpy").is_dir()
    app = taken["app"].outputs
    assert (
        Path(app["root"]).is_relative_to(second.project.cache_root)
        and app["model"] == made["app"].outputs["model"]
    )


def test_without_the_machine_cache_a_clone_runs_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPACK_BUILT", "off")
    _, records = host_steps(tmp_path / "third")
    assert not any(r.cached for r in records.values())
