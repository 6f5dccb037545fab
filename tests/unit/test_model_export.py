"""ONNX export: dynamic axes verified at unseen sizes, opset from the runtime, clear bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.errors import ConfigError, InputError, ModelCheckError
from edgepack.modelpipe import export as ex
from edgepack.modelpipe import inputs, sources, trace
from tests.unit.modelspecs import spec_from, toy

FRAMES = "  - {name: frames, export: 10, check: [3, 17]}"


def test_torchscript_exporter_specialization_is_caught_naming_axis_and_exporter(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, toy("length_as_constant", shape="[2, frames, 4]", dims=FRAMES))
    module = sources.build_module(spec, None)
    sets = [inputs.example(spec), *inputs.check_sets(spec)]
    refs = trace.eager_outputs(module, spec, sets)
    out = tmp_path / "m.onnx"
    ex.export(module, module, spec, sets[0], out=out, exporter="torchscript", opset=17)  # traces: int() baked
    with pytest.raises(ModelCheckError) as err:
        ex.verify(out, spec, sets, refs, exporter="torchscript")
    text = err.value.render()
    assert "torchscript exporter specialized dynamic axis 'frames' (exported at 10)" in text
    assert "at frames=3" in text and "Try export.exporter: dynamo" in text


def test_scripted_module_exports_with_the_axis_dynamic(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, toy("length_as_constant", shape="[2, frames, 4]", dims=FRAMES))
    module = sources.build_module(spec, None)
    cap = trace.capture(module, spec)
    sets = [inputs.example(spec), *inputs.check_sets(spec)]
    out = tmp_path / "m.onnx"
    ex.export(cap.module, module, spec, sets[0], out=out, exporter="torchscript", opset=17)
    results = ex.verify(out, spec, sets, trace.eager_outputs(module, spec, sets), exporter="torchscript")
    assert [r.label for r in results][-2:] == ["frames=3", "frames=17"] and all(r.ok for r in results)


def _fixed_output_model(path: Path) -> None:
    """Identity over [batch, 4] whose graph declares the output's batch fixed at 2 (what dynamo did)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_an_output_axis_declared_fixed_is_reported(tmp_path: Path) -> None:
    text = (
        "source: {kind: onnx, file: m.onnx}\ninputs:\n  - {name: x, shape: [batch, 4]}\noutputs: [y]\n"
        "dims:\n  - {name: batch, export: 2, check: [3]}\n"
    )
    spec = spec_from(tmp_path, text)
    _fixed_output_model(tmp_path / "m.onnx")
    sets = [inputs.example(spec), *inputs.check_sets(spec)]
    refs = [[s.feeds["x"]] for s in sets]
    with pytest.raises(ModelCheckError, match=r"output y axis 0 fixed at 2"):
        ex.verify(tmp_path / "m.onnx", spec, sets, refs, exporter="dynamo")


def test_opset_is_the_highest_both_sides_support(tmp_path: Path) -> None:
    spec = spec_from(
        tmp_path, toy("branchy", shape="[batch, 8]", dims="  - {name: batch, export: 2, check: [1]}")
    )
    assert ex.choose_opset(spec, "torchscript", runtime="1.32.0") == 20
    assert ex.choose_opset(spec, "dynamo", runtime="1.32.0") == 23
    assert ex.choose_opset(spec, "dynamo", runtime="1.17.3") == 20  # an older board runtime caps it
    with pytest.raises(ConfigError, match="older than any row"):
        ex.runtime_max_opset("1.10.0")


def test_explicit_opset_outside_the_range_is_refused(tmp_path: Path) -> None:
    text = toy(
        "branchy",
        shape="[batch, 8]",
        dims="  - {name: batch, export: 2, check: [1]}",
        extra="export: {opset: 22}\n",
    )
    with pytest.raises(ConfigError, match=r"export.opset 22 is outside .* torchscript exporter .* \(9..20\)"):
        ex.choose_opset(spec_from(tmp_path, text), "torchscript", runtime="1.32.0")


def test_the_target_runtime_version_comes_from_its_lock(tmp_path: Path) -> None:
    lock = tmp_path / "req.txt"
    lock.write_text("numpy==2.4.6 \\\n    --hash=sha256:00\nonnxruntime==1.32.0 \\\n")
    assert ex.locked_onnxruntime(lock) == "1.32.0"
    lock.write_text("numpy==2.4.6\n")
    with pytest.raises(ConfigError, match="no onnxruntime== pin"):
        ex.locked_onnxruntime(lock)


def test_a_model_failing_the_checker(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    with pytest.raises(InputError, match=r"bad.onnx: fails onnx.checker: .*x"):
        ex.check_onnx(path, runtime="1.32.0", shown_as="bad.onnx")


def test_an_op_the_runtime_lacks_is_named_with_the_runtime_version(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x", "w"], ["y"], domain="com.example")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [w],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    model.ir_version = 8
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    with pytest.raises(InputError, match=r"op com.example:Frobnicate is not an op onnxruntime 1.32.0 has"):
        ex.check_onnx(path, runtime="1.32.0", shown_as="custom.onnx")


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(InputError, match=r"x.onnx: not a readable ONNX model"):
        ex.check_onnx(path, runtime="1.32.0", shown_as="x.onnx")
