"""Runtime choice: which board can have which runtime, the gate each converted model must pass, and
the rule auto applies, readable and said."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgepack.config import Project, load_target
from edgepack.errors import ConfigError
from edgepack.pipeline.context import Build
from edgepack.runner import Result
from edgepack.runtimes import choose, compare, registry
from edgepack.runtimes.base import Availability, Row
from edgepack.runtimes.executorch import ExecuTorch
from edgepack.runtimes.litert import LiteRT
from tests.conftest import FakeRunner
from tests.unit.modelspecs import CONV_GRU, spec_from

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    for part in ("targets", "wheels", "models"):
        shutil.copytree(REPO / part, tmp_path / part)
    return Project(tmp_path)


def _job(project: Project, target: str, tmp: Path, *, spec_text: str = "", runner: FakeRunner | None = None):  # type: ignore[no-untyped-def]
    t = load_target(project, target)
    spec = spec_from(
        tmp, spec_text or "source: {kind: onnx, file: m.onnx}\ninputs: [{name: x, shape: [2, 4]}]\n"
    )
    return compare.Job(
        b=Build(target=t, project=project, runner=runner or FakeRunner(), model="m.onnx"),
        spec=spec,
        work=tmp,
        source_dir=tmp,
        deps_dir=None,
        fp32_onnx=tmp / "a.onnx",
        quantized_onnx=tmp / "b.onnx",
        feeds=tmp / "feeds.npz",
        reference=[],
        image="img:1",
    )


def test_unknown_runtime_names_get_a_did_you_mean() -> None:
    assert registry.parse("litert, onnxruntime") == ["litert", "onnxruntime"]
    assert registry.parse("all") == list(registry.NAMES)
    with pytest.raises(ConfigError, match=r"unknown runtime 'litrt'\. Did you mean 'litert'\?"):
        registry.parse("litrt")


def test_litert_is_the_boards_pinned_wheel_on_arm64_and_refused_on_armv7_with_the_reason(
    project: Project, tmp_path: Path
) -> None:
    avail = LiteRT().availability(_job(project, "rpi4", tmp_path).b)
    assert avail.ok and avail.package == "ai-edge-litert==2.3.0"
    assert (
        avail.wheel == "ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_aarch64.whl"
        and len(avail.sha256) == 64
    )
    zero = LiteRT().availability(_job(project, "rpi-zero2w", tmp_path).b)
    assert (
        not zero.ok and "no wheel for armv7l, Python 3.13" in zero.reason and "tflite-runtime" in zero.reason
    )


def test_executorch_is_refused_on_every_board_saying_why(project: Project, tmp_path: Path) -> None:
    for target in ("rpi4", "x86-box", "rpi-zero2w"):
        avail = ExecuTorch().availability(_job(project, target, tmp_path).b)
        assert not avail.ok and ("libtorch" in avail.reason or "armv7" in avail.reason)


def test_litert_names_why_an_onnx_or_torchscript_source_does_not_convert(
    project: Project, tmp_path: Path
) -> None:
    onnx = LiteRT().convert(_job(project, "rpi4", tmp_path), tmp_path)
    assert not onnx.ok and "ONNX file" in onnx.reason and "TensorFlow" in onnx.reason
    text = "source: {kind: torchscript, file: m.jit}\ninputs: [{name: x, shape: [2, 4]}]\n"
    script = LiteRT().convert(_job(project, "rpi4", tmp_path, spec_text=text), tmp_path)
    assert not script.ok and "torch.export" in script.reason and "torch factory" in script.reason


def test_the_gate_holds_fp32_to_the_tolerance_and_int8_to_the_cosine(tmp_path: Path) -> None:
    spec = spec_from(
        tmp_path,
        "source: {kind: onnx, file: m.onnx}\ninputs: [{name: x, shape: [2, 4]}]\n"
        "evaluate: {min_output_cosine: 0.99}\n",
    )
    ref = [np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)]
    assert compare.judge(spec, ref, [ref[0] + 1e-7], quantized=False)["ok"]
    off = compare.judge(spec, ref, [ref[0] + 1e-2], quantized=False)
    assert not off["ok"] and "outside 10x the spec's tolerance" in off["why"]
    assert compare.judge(spec, ref, [ref[0] + 1e-2], quantized=True)["ok"]  # int8: the cosine holds
    bad = compare.judge(spec, ref, [np.flip(ref[0])], quantized=True)
    assert not bad["ok"] and "< 0.99 (evaluate.min_output_cosine)" in bad["why"]
    shape = compare.judge(spec, ref, [ref[0][:4]], quantized=True)
    assert not shape["ok"] and "shape [4, 8]" in shape["why"]


def _row(name: str, ms: float | None, mb: float, *, passes: bool = True, why: str = "") -> Row:
    return Row(
        name,
        Availability(True, package=name),
        chosen="int8" if passes else "",
        passes=passes,
        model_bytes=int(mb * 1e6),
        runtime_bytes=0,
        emulated_ms=ms,
        why_not=why,
    )


def test_auto_picks_the_fastest_that_passes_and_says_why() -> None:
    got = choose.choose(
        [
            _row("onnxruntime", 36.0, 30.0),
            _row("litert", 9.0, 19.0),
            _row("executorch", None, 0, passes=False, why="no runtime for aarch64"),
        ]
    )
    assert got["runtime"] == "litert" and "fastest on the board's CPU (9.00 ms)" in got["why"]
    assert "onnxruntime: 4.00x the latency, 1.58x the size" in got["why"]
    assert got["out"] == {"executorch": "no runtime for aarch64"}


def test_auto_takes_the_smaller_of_two_within_ten_percent() -> None:
    got = choose.choose([_row("onnxruntime", 10.0, 30.0), _row("litert", 10.5, 19.0)])
    assert got["runtime"] == "litert" and "within 10 percent of the fastest (onnxruntime" in got["why"]


def test_no_runtime_passing_is_said_with_each_reason() -> None:
    got = choose.choose([_row("litert", None, 0, passes=False, why="conversion failed: aten.foo")])
    assert got["runtime"] is None and "litert: conversion failed: aten.foo" in got["why"]


def test_a_runtime_the_image_lacks_is_mounted_and_put_on_sys_path_past_python_minus_i(
    project: Project, tmp_path: Path
) -> None:
    runner = FakeRunner()
    answer = {"median_ms": 9.5, "peak_rss_mb": 140.0}
    runner.on(lambda a: "docker" in a[0], lambda a: Result(a, 0, json.dumps(answer) + "\n", ""))
    job = _job(project, "rpi4", tmp_path, runner=runner)
    (tmp_path / "m.tflite").write_bytes(b"x")
    np.savez(job.feeds, x=np.zeros((2, 4), np.float32))
    assert compare.emulated(job, tmp_path / "m.tflite", tmp_path / "site") == answer
    (argv,) = runner.calls
    image = argv.index("img:1")
    assert argv[argv.index("--entrypoint") + 1] == "/usr/bin/python3" and argv.index("--entrypoint") < image
    assert f"{tmp_path / 'site'}:/opt/runtime:ro" in argv and "QEMU_CPU=cortex-a72" in argv
    assert (
        argv[image + 1 : image + 3] == ["-I", "-c"]
        and "sys.path.insert(0, '/opt/runtime')" in argv[image + 3]
    )
    assert argv[image + 4 : image + 7] == ["bench-model", "--model", "/bench/m.tflite"]


def test_asking_only_for_runtimes_the_board_cannot_have_is_refused_before_any_work_naming_the_others(
    project: Project, tmp_path: Path
) -> None:
    runner = FakeRunner()
    job = _job(project, "rpi-zero2w", tmp_path, runner=runner)
    with pytest.raises(ConfigError) as info:
        compare.run(job.b, ["litert", "executorch"])
    assert "litert cannot run on rpi-zero2w (linux/arm/v7): no wheel for armv7l" in info.value.message
    assert "Runtimes rpi-zero2w can have: onnxruntime (--runtimes onnxruntime)" in info.value.hint
    assert runner.calls == []  # nothing was built
    compare.require_available(job.b, ["onnxruntime", "litert"])  # one that can: the table says the rest


def _target(project: Project, name: str, text: str) -> None:
    (project.root / "targets" / f"{name}.yaml").write_text(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "extends: rpi-zero2w\nruntime: litert\n",
            "runtime: litert cannot run on linux/arm/v7 with Python 3.13",
        ),
        ("extends: rpi4\nruntime: executorch\n", "runtime: executorch cannot run on linux/arm64"),
        ("extends: rpi4\nruntime: litrt\n", "Did you mean 'litert'?"),
    ],
)
def test_a_runtime_the_board_cannot_have_is_refused_at_load(
    project: Project, text: str, expected: str
) -> None:
    _target(project, "mine", text)
    with pytest.raises(ConfigError) as info:
        load_target(project, "mine")
    assert expected in str(info.value) and "mine.yaml:2" in str(info.value)


def test_litert_refuses_a_streaming_model_at_plan_time(project: Project) -> None:
    _target(project, "mine", "extends: rpi4\nruntime: litert\n")
    t = load_target(project, "mine")
    assert t.runtime == "litert" and t.model == "models/cmdasr.yaml"
    from edgepack.modelpipe.steps import plan_model

    with pytest.raises(ConfigError, match=r"runtime: litert, but 'models/cmdasr.yaml' is the asr kind"):
        plan_model(Build(target=t, project=project, runner=FakeRunner(), model=t.model))


TOY = CONV_GRU


def _record(b: Build, record: dict) -> None:
    compare.record_path(b).parent.mkdir(parents=True, exist_ok=True)
    compare.record_path(b).write_text(json.dumps(record))


def _auto(project: Project) -> Build:
    (project.root / "models" / "toy.yaml").write_text(TOY)
    _target(project, "mine", "extends: rpi-zero2w\nruntime: auto\nmodel: models/toy.yaml\n")
    t = load_target(project, "mine")
    return Build(target=t, project=project, runner=FakeRunner(), model=t.model)


def test_auto_without_a_recorded_comparison_says_to_measure_first(project: Project) -> None:
    from edgepack.runtimes.auto import resolve

    b = _auto(project)
    with pytest.raises(ConfigError) as info:
        resolve(b)
    assert "runtime: auto, and no comparison of the runtimes for this model" in info.value.message
    assert info.value.hint == "Measure them first: edgepack model.runtimes --target mine"


def test_auto_takes_the_recorded_choice_of_this_model_only(project: Project) -> None:
    from edgepack.runtimes.auto import model_key, resolve

    b = _auto(project)
    record = {"spec": "models/toy.yaml", "model_key": "another", "choice": {"runtime": "litert", "why": "w"}}
    _record(b, record)
    with pytest.raises(
        ConfigError, match=r"measured another model \(models/toy.yaml, or the same one before"
    ):
        resolve(b)
    record["model_key"] = model_key(b)
    record["choice"] = {"runtime": "onnxruntime", "why": "the fastest on the board's CPU"}
    _record(b, record)
    resolved, chosen = resolve(b)
    assert resolved.target.runtime == "onnxruntime" and chosen["why"] == "the fastest on the board's CPU"
    record["choice"] = {"runtime": None, "why": "litert: conversion failed"}
    _record(b, record)
    with pytest.raises(ConfigError, match=r"no runtime passed for this model: litert: conversion failed"):
        resolve(b)


def test_auto_choosing_litert_plans_the_conversion(project: Project) -> None:
    from edgepack.modelpipe.steps import plan_model
    from edgepack.runtimes.auto import model_key, resolve

    (project.root / "models" / "toy.yaml").write_text(TOY)
    _target(project, "pi", "extends: rpi4\nruntime: auto\nmodel: models/toy.yaml\n")
    t = load_target(project, "pi")
    b = Build(target=t, project=project, runner=FakeRunner(), model=t.model)
    record = {"model_key": model_key(b), "choice": {"runtime": "litert", "why": "4x faster"}}
    _record(b, record)
    resolved, chosen = resolve(b)
    assert chosen == {
        "setting": "auto",
        "runtime": "litert",
        "why": "4x faster",
        "from": str(compare.record_path(b)),
    }
    assert [s.name for s in plan_model(resolved)][-1] == "convert"


def test_litert_refuses_an_onnx_source_at_plan_time(project: Project) -> None:
    from edgepack.modelpipe.steps import plan_model

    _target(project, "mine", "extends: rpi4\nruntime: litert\nmodel: models/magika.yaml\n")
    t = load_target(project, "mine")
    with pytest.raises(
        ConfigError, match=r"runtime: litert cannot build 'models/magika.yaml': the source is an ONNX"
    ):
        plan_model(Build(target=t, project=project, runner=FakeRunner(), model=t.model))


def test_asking_only_for_runtimes_that_refuse_the_source_stops_before_any_work(
    project: Project, tmp_path: Path
) -> None:
    job = _job(project, "rpi4", tmp_path)  # its spec's source is an ONNX file
    with pytest.raises(ConfigError, match=r"litert cannot take 'toy': the source is an ONNX file"):
        compare.require_convertible(job.spec, ["litert"])
    compare.require_convertible(job.spec, ["litert", "onnxruntime"])


def test_runtime_names_are_case_blind_and_an_empty_list_is_named() -> None:
    assert registry.parse("ONNXRuntime") == ["onnxruntime"]
    with pytest.raises(ConfigError, match=r"--runtimes ',' names no runtime"):
        registry.parse(",")


def test_a_runtime_a_build_cannot_carry_for_this_model_is_shown_but_not_chosen() -> None:
    from dataclasses import replace

    lite = replace(_row("litert", 9.0, 19.0), not_buildable="measured only: the asr runtime streams")
    got = choose.choose([_row("onnxruntime", 36.0, 30.0), lite])
    assert got["runtime"] == "onnxruntime" and got["out"] == {
        "litert": "measured only: the asr runtime streams"
    }
