"""Reproducible outputs (issue 12): rpi4 built twice, from two folders with empty build caches.

Same commit and locks, so the same wheel bytes, image ID and image tar. Every
layer is built afresh (``BuildxOptions(no_cache=True)``): BuildKit keys a
layer by its files' contents, not their times, so a layer reused from the
first build would hide the second one's times. The smoke step is left out:
it measures, and makes nothing that is published. About two minutes.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepack.config import load_target
from edgepack.debian.rootfs import source_date_epoch
from edgepack.pipeline.context import Build, board_site
from edgepack.pipeline.docker import BuildxOptions, rfc3339
from edgepack.pipeline.image import image_epoch
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import StepRecord, execute
from edgepack.runner import Runner
from tests.integration.test_build import copy_project

Built = tuple[Build, dict[str, StepRecord]]


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Built]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPACK_BUILT", "off")  # each folder compiles its own wheels: no machine cache
        yield build_twice(tmp_path_factory)


def build_twice(tmp_path_factory: pytest.TempPathFactory) -> list[Built]:
    builds = []
    for name in ("first", "the-second-folder"):  # paths of other lengths: a path left in a binary shows
        project = copy_project(tmp_path_factory.mktemp(name))
        target = load_target(project, "rpi4")
        b = Build(target=target, project=project, runner=Runner(echo=False), model=target.model,
                  buildx=BuildxOptions(no_cache=True))  # fmt: skip
        steps = [s for s in plan(b) if s.phase != "smoke"]
        records = {r.name: r for r in execute(steps, b.cache)}
        assert not any(r.cached for r in records.values())
        builds.append((b, records))
    return builds


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheels_of(b: Build) -> dict[str, str]:
    return {w.name: sha256(w) for w in sorted((b.project.build_dir / "wheelhouse/rpi4/index").glob("*.whl"))}


def layers(tar: Path) -> list[list[tarfile.TarInfo]]:
    with tarfile.open(tar) as saved:
        (manifest,) = json.loads(saved.extractfile("manifest.json").read())  # type: ignore[union-attr]
        return [tarfile.open(fileobj=saved.extractfile(name)).getmembers() for name in manifest["Layers"]]


def test_the_cross_built_wheels_are_the_same_bytes(twice: list[Built]) -> None:
    (first, _), (second, _) = twice
    assert len(wheels_of(first)) == 2 and wheels_of(first) == wheels_of(second)


def test_the_image_id_and_its_saved_tar_are_the_same(twice: list[Built]) -> None:
    (_, first), (_, second) = twice
    image, again = first["image"].outputs, second["image"].outputs
    assert image["id"] == again["id"]
    assert sha256(Path(image["tar"])) == sha256(Path(again["tar"]))
    inspect = subprocess.run(["docker", "image", "inspect", image["tag"]], capture_output=True, text=True)
    assert json.loads(inspect.stdout)[0]["Id"] == image["id"]


def test_the_image_carries_the_source_date_epoch_not_the_time_of_the_build(twice: list[Built]) -> None:
    b, records = twice[0]
    tar = Path(records["image"].outputs["tar"])
    with tarfile.open(tar) as saved:
        (manifest,) = json.loads(saved.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(saved.extractfile(manifest["Config"]).read())  # type: ignore[union-attr]
    created = rfc3339(image_epoch(b))  # no .git in the copy: debian.rootfs's default epoch
    assert config["created"] == created and {h["created"] for h in config["history"]} == {created}
    times = {member.mtime for layer in layers(tar) for member in layer}
    assert times == {source_date_epoch()}


def test_run_dependent_reports_stay_in_the_build_folder(twice: list[Built]) -> None:
    b, records = twice[0]
    names = {member.name for layer in layers(Path(records["image"].outputs["tar"])) for member in layer}
    assert "opt/edgepack/model/model.onnx" in names
    assert not {"opt/edgepack/model/report.json", "opt/edgepack/model/layers.png"} & names
    assert (b.out_dir / "model" / "report.json").is_file() and (b.out_dir / "model" / "layers.png").is_file()


def test_bytecode_names_the_files_where_the_board_has_them(twice: list[Built]) -> None:
    _, records = twice[0]
    site = Path(records["deps"].outputs["site_packages"])
    pyc = site / "__pycache__" / "webrtcvad.cpython-311.pyc"
    code = marshal.loads(pyc.read_bytes()[16:])  # after the header: magic, flags, source hash
    assert code.co_filename == f"/{board_site('3.11')}/webrtcvad.py"
