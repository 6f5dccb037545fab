"""ci.push pushes only an image whose smoke test the build in the same job ran, with its source label."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from edgepack.ci import commands, release
from edgepack.config import load_target
from edgepack.errors import ConfigError
from edgepack.pipeline import report
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import Step, StepRecord
from tests.conftest import FakeRunner, ok
from tests.unit.test_ci_matrix import make_project

REPO = Path(__file__).resolve().parents[2]
IMAGE_ID = "sha256:" + "1" * 64
SOURCE = "https://github.com/o/edgepack"
LABELS = {release.SOURCE_LABEL: SOURCE}


@pytest.fixture
def build(tmp_path: Path) -> tuple[Build, list[Step]]:
    """A planned build of a board target; the engine (a FakeRunner) holds its image."""
    project = make_project(tmp_path, extra={"plain": "wheels: []"})  # no wheel toolchain asked for a key
    for part in ("assets/audio", "docker"):
        shutil.copytree(REPO / part, tmp_path / part)
    runner = FakeRunner(echo=False)
    runner.on(
        lambda argv: argv[:3] == ["docker", "image", "inspect"], ok(json.dumps([{"Id": IMAGE_ID, "Size": 1}]))
    )
    b = Build(target=load_target(project, "plain"), project=project, runner=runner, model="silero-vad")
    return b, plan(b)


def finish(b: Build, steps: list[Step], *, smoke_cached: bool, labels: dict[str, str] = LABELS) -> None:
    """What `edgepack build` leaves behind: the image step's stamp and tar, and report.json."""
    tar = b.cache_dir("image", "k") / "image.tar"
    tar.parent.mkdir(parents=True)
    tar.write_bytes(b"tar")
    image = {"tag": "t", "id": IMAGE_ID, "bytes": 1, "architecture": "arm64", "tar": str(tar), "tar_bytes": 3,
             "labels": labels}  # fmt: skip
    outputs = {
        "image": image,
        "app": {"model": {"source": "s", "sha256": "d", "kind": "k"}},
        "smoke": {"ok": True},
    }
    b.cache.store(next(s for s in steps if s.name == "image"), image)
    records = [StepRecord(s.name, s.key, s.name != "smoke" or smoke_cached, 0.0, outputs.get(s.name, {}))
               for s in steps]  # fmt: skip
    report.write_report(b, report.build_report(b, records, total_seconds=1.0, image_tar=tar))


def planned(steps: list[Step], *, image_id: str = IMAGE_ID) -> release.Planned:
    keys = {s.name: s.key for s in steps}
    return release.Planned(
        target="plain", image_key=keys["image"], smoke_key=keys["smoke"], image_id=image_id
    )


def test_a_build_that_ran_its_smoke_test_here_may_be_pushed(
    build: tuple[Build, list[Step]], monkeypatch: pytest.MonkeyPatch
) -> None:
    b, steps = build
    finish(b, steps, smoke_cached=False)
    monkeypatch.setenv(release.IMAGE_SOURCE_ENV, SOURCE)
    commands._require_smoke_run_here(b, steps)


def test_a_restored_smoke_stamp_is_no_smoke_test(build: tuple[Build, list[Step]]) -> None:
    """A re-run, or a tag whose commit main built: every step cached, the smoke step too."""
    b, steps = build
    finish(b, steps, smoke_cached=True)
    with pytest.raises(ConfigError, match="did not run its smoke test: it found a smoke stamp"):
        commands._require_smoke_run_here(b, steps)


def test_no_build_in_this_job_means_no_push(build: tuple[Build, list[Step]]) -> None:
    b, steps = build
    finish(b, steps, smoke_cached=False)
    (b.out_dir / "report.json").unlink()  # what the workflow does before its build
    with pytest.raises(ConfigError, match=r"build/plain/report.json is missing: no build finished here"):
        commands._require_smoke_run_here(b, steps)


def test_an_image_without_the_repositorys_source_label_is_refused(
    build: tuple[Build, list[Step]], monkeypatch: pytest.MonkeyPatch
) -> None:
    b, steps = build
    finish(b, steps, smoke_cached=False, labels={})
    commands._require_smoke_run_here(b, steps)  # outside CI no source is asked for
    monkeypatch.setenv(release.IMAGE_SOURCE_ENV, SOURCE)
    with pytest.raises(ConfigError) as err:
        commands._require_smoke_run_here(b, steps)
    assert err.value.message == (
        f"cannot push plain: the image should carry {release.SOURCE_LABEL}={SOURCE} "
        f"(${release.IMAGE_SOURCE_ENV}); it has no such label."
    )


def test_a_plan_without_its_image_is_left_to_push_image(build: tuple[Build, list[Step]]) -> None:
    """No image stamp: push_image names every step that is not built, so nothing is said here."""
    b, steps = build
    commands._require_smoke_run_here(b, steps)


def _report(steps: list[Step], **changes: object) -> dict[str, object]:
    records = [{"name": s.name, "key": s.key, "cached": s.name != "smoke"} for s in steps]
    return {"ok": True, "image": {"id": IMAGE_ID}, "steps": records, **changes}


def test_the_report_must_be_of_the_same_inputs_and_the_same_image(build: tuple[Build, list[Step]]) -> None:
    _, steps = build
    release.require_smoke_run(_report(steps), planned(steps))
    with pytest.raises(ConfigError, match="the build here was of other inputs"):
        release.require_smoke_run(_report(steps), dataclasses.replace(planned(steps), image_key="0" * 64))
    with pytest.raises(
        ConfigError, match=r"the smoke-tested image \(sha256:1+\) is not the one the step cache"
    ):
        release.require_smoke_run(_report(steps), planned(steps, image_id="sha256:" + "2" * 64))
    with pytest.raises(ConfigError, match="not of a build that passed"):
        release.require_smoke_run(_report(steps, ok=False), planned(steps))
    with pytest.raises(ConfigError, match="not of a build that passed"):
        release.require_smoke_run(_report(steps[:-1]), planned(steps))


def test_a_report_that_is_not_json_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("{")
    assert release.read_report(tmp_path / "report.json") is None
    assert release.read_report(tmp_path / "missing.json") is None
