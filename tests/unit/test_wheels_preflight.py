"""Preflight: one dry-run pip resolution per requirement, for the board's platform; no subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgepack.config import Project, load_target
from edgepack.runner import Result
from edgepack.wheels.preflight import dry_run_argv, preflight, requirements
from tests.conftest import FakeRunner

REPO = Path(__file__).resolve().parents[2]


def project(tmp_path: Path) -> Project:
    for part in ("targets", "wheels"):
        shutil.copytree(REPO / part, tmp_path / part)
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime/requirements.in").write_text(
        "# runtime\nnumpy==2.4.6\nonnxruntime==1.32.0  # inference\n"
    )
    return Project(tmp_path)


def test_requirements_are_the_runtime_pins_then_the_targets_wheels(tmp_path: Path) -> None:
    proj = project(tmp_path)
    reqs = requirements(load_target(proj, "rpi4"), proj)
    assert reqs == ["numpy==2.4.6", "onnxruntime==1.32.0", "webrtcvad==2.0.10", "pyaudio==0.2.14"]


def test_dry_run_asks_pip_for_board_wheels_only(tmp_path: Path) -> None:
    proj = project(tmp_path)
    argv = dry_run_argv(load_target(proj, "rpi4"), "numpy==2.4.6", tmp_path / "r.json")
    assert argv[1:5] == ["-m", "pip", "install", "--quiet"]
    assert {"--dry-run", "--only-binary=:all:", "--no-deps", "--ignore-installed"} <= set(argv)
    assert "manylinux_2_36_aarch64" in argv and "manylinux2014_aarch64" in argv
    assert argv[argv.index("--python-version") + 1] == "3.11" and argv[-1] == "numpy==2.4.6"


def test_rows_say_which_need_building(tmp_path: Path, fake_runner: FakeRunner) -> None:
    proj = project(tmp_path)

    def answer(argv: list[str]) -> Result:
        if argv[-1].startswith(("webrtcvad", "pyaudio")):
            return Result(argv, 1, "", "ERROR: No matching distribution found for " + argv[-1])
        name = argv[-1].replace("==", "-")
        url = f"https://files/{name}-cp311-cp311-manylinux_2_27_aarch64.whl"
        Path(argv[argv.index("--report") + 1]).write_text(
            json.dumps({"install": [{"download_info": {"url": url}}]})
        )
        return Result(argv, 0, "", "")

    fake_runner.on(lambda a: "--dry-run" in a, answer)
    rows = {r.requirement: r for r in preflight(load_target(proj, "rpi4"), project=proj, runner=fake_runner)}
    assert rows["numpy==2.4.6"].wheel == "numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.whl"
    assert rows["numpy==2.4.6"].action == "PyPI wheel"
    assert (
        rows["webrtcvad==2.0.10"].wheel == "" and rows["webrtcvad==2.0.10"].recipe == "wheels/webrtcvad.yaml"
    )
    assert rows["pyaudio==0.2.14"].action == "build from the recipe (edgepack wheels)"
    assert len(fake_runner.calls) == 4
