"""rpi5, jetson-orin-nano (CPU path), x86-box and rpi-zero2w for real, in one ``--target`` list in parallel.

The run also holds a target that cannot be built (its image name is not a
valid reference: bake fails on it and cancels the others' builds): the other
four must still build, pass their smoke tests and get their reports, the
broken one a report with its reason, and the command a non-zero exit code.
One cold multi-target build in a copy of the project; every test reads it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from edgepack.commands import build as build_commands
from edgepack.config import Project
from edgepack.errors import Reported
from tests.integration.test_build import copy_project

TARGETS = ["rpi5", "jetson-orin-nano", "x86-box", "rpi-zero2w", "rpi5-bad"]
BAKED = [t for t in TARGETS if t != "rpi-zero2w"]  # its image RUNs (bytecode): buildx build, beside the bake


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, int]:
    proj = copy_project(tmp_path_factory.mktemp("boards"))
    rpi5 = (proj.targets_dir / "rpi5.yaml").read_text()
    (proj.targets_dir / "rpi5-bad.yaml").write_text(
        rpi5.replace("image: edgepack/rpi5", "image: edgepack/RPi5-Bad")
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(proj.root)
        with pytest.raises(Reported) as failed:
            build_commands.run_build(",".join(TARGETS), model=None, dry=False, verbose=False, jobs=2)
    return proj, failed.value.exit_code


def report(proj: Project, target: str) -> dict[str, Any]:
    return json.loads((proj.build_dir / target / "report.json").read_text())


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def test_the_broken_target_fails_alone_with_its_reason(run: tuple[Project, int]) -> None:
    proj, code = run
    assert code == 4  # the failed bake's CommandError
    bad = report(proj, "rpi5-bad")
    assert (bad["ok"], bad["failed_step"]) == (False, "image")
    # bake refuses the tag as it loads the file: the whole bake fails, then each target is baked alone.
    assert bad["reason"].startswith("docker buildx bake of rpi5-bad failed. ERROR: invalid tag")
    assert "repository name must be lowercase" in bad["reason"], bad["error"]
    assert [s["name"] for s in bad["steps"]][-1] == "app"  # its host steps ran (shared with rpi5)
    for name in TARGETS[:4]:
        assert report(proj, name)["ok"] is True, name


def test_one_bake_file_describes_every_board(run: tuple[Project, int]) -> None:
    proj, _ = run
    bake = json.loads((proj.build_dir / "bake.json").read_text())
    assert bake["group"]["all"]["targets"] == BAKED
    assert bake["target"]["x86-box"]["platforms"] == ["linux/amd64"]
    assert bake["target"]["jetson-orin-nano"]["args"]["THREADS"] == "6"


def test_shared_steps_ran_once(run: tuple[Project, int]) -> None:
    proj, _ = run
    arm64 = ["rpi5", "jetson-orin-nano", "rpi5-bad"]
    steps = {t: {s["name"]: s for s in report(proj, t)["steps"]} for t in arm64}
    # The model source and its export are the same for every arm64 board; base and deps too for
    # boards with the same features (rpi5 and rpi5-bad capture audio, the Jetson does not: no PyAudio).
    for name, sharing in (("model", arm64), ("export", arm64), ("base", arm64[::2]), ("deps", arm64[::2])):
        assert len({steps[t][name]["key"] for t in sharing}) == 1, name
        assert [steps[t][name]["cached"] for t in sharing].count(False) == 1, name
    assert steps["rpi5"]["deps"]["key"] != steps["jetson-orin-nano"]["deps"]["key"]
    # The model stage plans for each board's core: the quantize step is its own.
    assert steps["rpi5"]["quantize"]["key"] != steps["jetson-orin-nano"]["quantize"]["key"]


def test_rpi5_smoke_ran_under_cortex_a76_with_the_dot_product(run: tuple[Project, int]) -> None:
    proj, _ = run
    rep = report(proj, "rpi5")
    smoke = rep["smoke"]
    assert smoke["ok"] and smoke["runs_on"] == "QEMU -cpu cortex-a76"
    features = smoke["emulated"]["runtime"]["cpu_features"].split()
    assert "asimddp" in features and "fphp" in features and "sve" not in features
    assert all(c["ok"] for c in smoke["checks"])
    model = json.loads((proj.build_dir / "rpi5" / "model" / "report.json").read_text())
    assert any("has SDOT/UDOT" in note for note in json.dumps(model).split('"')), "quantize note on dotprod"


def test_jetson_cpu_path_reports_the_provider_that_ran(run: tuple[Project, int]) -> None:
    proj, _ = run
    rep = report(proj, "jetson-orin-nano")
    smoke = rep["smoke"]
    # The image's spec asks for TensorRT, CUDA, then CPU; its onnxruntime offers only the CPU one.
    assert smoke["providers"] == ["CPUExecutionProvider"] == smoke["emulated"]["providers"]
    assert smoke["runs_on"] == "QEMU -cpu cortex-a76" and rep["cpu"] == "cortex-a78ae"
    labels = json.loads(docker("image", "inspect", rep["image"]["tag"]).stdout)[0]["Config"]["Labels"]
    assert (labels["io.edgepack.qemu-cpu"], labels["io.edgepack.cpu"]) == ("cortex-a76", "cortex-a78ae")
    spec = docker("run", "--rm", "--network", "none", "--platform", "linux/arm64",
                  "--env", "QEMU_CPU=cortex-a76", "--entrypoint", "/usr/bin/python3", rep["image"]["tag"],
                  "-c", "print(open('/opt/edgepack/smoke/spec.json').read())")  # fmt: skip
    assert json.loads(spec.stdout)["providers"][:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]


def test_x86_box_is_an_amd64_image_smoke_tested_natively(run: tuple[Project, int]) -> None:
    proj, _ = run
    rep = report(proj, "x86-box")
    assert rep["image"]["architecture"] == "amd64" and rep["qemu_cpu"] is None
    smoke = rep["smoke"]
    assert smoke["runs_on"] == "native (no emulation)" and smoke["emulated"]["runtime"]["machine"] == "x86_64"
    assert all(c["ok"] for c in smoke["checks"])
    code = "import webrtcvad, pyaudio, onnxruntime; print(pyaudio.get_portaudio_version_text())"
    site = docker("run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/python3", rep["image"]["tag"],
                  "-c", code)  # fmt: skip
    assert "PortAudio" in site.stdout, site.stderr


def test_an_image_that_runs_while_building_is_built_beside_the_bake(run: tuple[Project, int]) -> None:
    """buildx 0.13's bake cannot give a RUN --network none: rpi-zero2w's image is built alone, and passes."""
    proj, _ = run
    zero = report(proj, "rpi-zero2w")
    assert zero["ok"] is True
    platform = "{{.Os}}/{{.Architecture}}/{{.Variant}}"
    image = docker("image", "inspect", "--format", platform, zero["image"]["tag"])
    assert image.stdout.strip() == "linux/arm/v7", image.stderr
    assert zero["smoke"]["qemu_cpu"] == "cortex-a7"


def test_a_no_change_rebuild_of_one_target_reuses_every_step_and_asks_no_toolchain(
    run: tuple[Project, int],
) -> None:
    """Nothing to build: no buildx preflight, no builder choice (a no-change rebuild is under a second)."""
    proj, _ = run
    before = report(proj, "rpi5")

    def refuse(*_: Any, **__: Any) -> str:
        raise AssertionError("the toolchain was asked for although every step was cached")

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(proj.root)
        mp.setattr(build_commands, "_toolchain_and_builder", refuse)
        build_commands.run_build("rpi5", model=None, dry=False, verbose=False, jobs=2)
    after = report(proj, "rpi5")
    assert all(s["cached"] for s in after["steps"]) and after["image"]["id"] == before["image"]["id"]
