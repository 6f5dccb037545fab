"""The build times its quantized model against fp32 in the image: a slower int8 is said, not passed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgepack.config import Project, load_target
from edgepack.pipeline import latency
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.runner import Result
from tests.conftest import FakeRunner

REPO = Path(__file__).resolve().parents[2]
BOARD = "rpi-zero2w"  # deps: debian, so planning runs no cross-compiler check


def _timed(fp32: float, final: float) -> list[dict]:
    return [
        {"model": "fp32.onnx", "median_ms": fp32, "runs": 5},
        {"model": "quantized.onnx", "median_ms": final, "runs": 5},
    ]


def test_a_faster_int8_model_is_recorded_with_its_ratio() -> None:
    record = latency.summarize(_timed(10.0, 3.5), mode="dynamic", where="QEMU -cpu cortex-a72", fed="x")
    assert record["ratio"] == 0.35 and "warning" not in record


def test_a_slower_int8_model_is_a_warning_naming_the_ratio_and_what_to_do() -> None:
    record = latency.summarize(_timed(10.0, 30.0), mode="static", where="QEMU -cpu cortex-a72", fed="x")
    assert record["ratio"] == 3.0
    assert "static model is 3.00x slower than fp32 QEMU -cpu cortex-a72" in record["warning"]
    assert "quantize.mode: auto" in record["warning"] and "--quantize none" in record["warning"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    for part in ("targets", "wheels", "models", "docker", "assets"):
        shutil.copytree(REPO / part, tmp_path / part)
    (tmp_path / "runtime").mkdir()
    shutil.copy(REPO / "runtime/requirements.in", tmp_path / "runtime/requirements.in")
    return Project(tmp_path)


def test_a_spec_build_plans_the_timing_after_the_smoke_test_and_a_bundled_model_does_not(
    project: Project,
) -> None:
    t = load_target(project, BOARD)
    steps = {s.name: s for s in plan(Build(target=t, project=project, runner=FakeRunner(), model=t.model))}
    timing = steps["latency"]
    assert set(timing.needs) == {"image", "smoke", "export", "quantize"} and timing.phase == "smoke"
    assert timing.inputs["quantize"] == steps["quantize"].key  # a new quantized model is timed again
    bundled = plan(Build(target=t, project=project, runner=FakeRunner(), model="silero-vad"))
    assert "latency" not in {s.name for s in bundled}


def test_both_models_run_in_one_container_under_the_boards_cpu_with_the_folder_mounted(
    project: Project, tmp_path: Path
) -> None:
    t = load_target(project, BOARD)
    runner = FakeRunner()
    lines = "\n".join(json.dumps(r) for r in _timed(8.0, 2.0))
    runner.on(lambda a: "bench-model" in a, lambda a: Result(a, 0, lines + "\n", ""))
    b = Build(target=t, project=project, runner=runner, model=t.model)
    timed = latency.run_bench(b, tmp_path, tag="edgepack/rpi-zero2w:abc")
    (argv,) = runner.calls
    assert argv[argv.index("-v") + 1] == f"{tmp_path}:/bench:ro" and "QEMU_CPU=cortex-a7" in argv
    assert argv.index("-v") < argv.index("edgepack/rpi-zero2w:abc") < argv.index("bench-model")
    models = [argv[i + 1] for i, a in enumerate(argv) if a == "--model"]
    assert models == ["/bench/fp32.onnx", "/bench/quantized.onnx"]
    assert [r["median_ms"] for r in timed] == [8.0, 2.0]


def test_the_model_steps_that_run_runtime_code_are_keyed_by_it(
    project: Project, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quantize (audio calibration streams through the runtime) and validate (the task metric's decoder)
    run again when the runtime's code changes: a cached WER from an older decoder would be stale."""
    from edgepack.modelpipe import steps as model_steps
    from edgepack.pipeline.context import RUNTIME_SRC

    runtime = tmp_path_factory.mktemp("rt") / "edgepack_runtime"
    shutil.copytree(RUNTIME_SRC, runtime, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(model_steps, "RUNTIME_SRC", runtime)
    t = load_target(project, BOARD)

    def keys() -> dict[str, str]:
        return {
            s.name: s.key for s in plan(Build(target=t, project=project, runner=FakeRunner(), model=t.model))
        }

    before = keys()
    (runtime / "asr.py").write_text((runtime / "asr.py").read_text() + "\n# a changed decoder\n")
    after = keys()
    assert after["export"] == before["export"]
    assert after["quantize"] != before["quantize"] and after["validate"] != before["validate"]
