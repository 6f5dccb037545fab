"""Quantize and validate through the pipeline stages: per-layer report, gates, bad calibration."""

from __future__ import annotations

import dataclasses
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from edgepack.errors import ConfigError, InputError, ModelCheckError
from edgepack.modelpipe import pipeline, quantize
from edgepack.modelpipe.spec import ModelSpec
from edgepack.runner import Runner
from tests.unit.modelspecs import spec_from

CTC = """source: {kind: torch, factory: "edgepack.modelpipe.zoo.toys:streaming_ctc"}
inputs:
  - {name: feats, shape: [batch, frames, 20]}
  - {name: h0, shape: [1, batch, 32], std: 0.5}
outputs: [log_probs, hn]
dims:
  - {name: batch, export: 2, check: [1]}
  - {name: frames, export: 16, check: [7]}
"""


def ctx(tmp: Path, cpu: str = "cortex-a72") -> pipeline.Context:
    return pipeline.Context(
        root=tmp,
        cache=tmp / "cache",
        runner=Runner(echo=False),
        runtime="1.32.0",
        cpu=quantize.cpu_info(cpu),
        spec_file="toy.yaml",
        report_dir=tmp / "report",
    )


def run_all(spec: ModelSpec, c: pipeline.Context, tmp: Path) -> dict:
    pipeline.source_stage(spec, c, tmp / "src")
    pipeline.export_stage(spec, c, tmp / "src", tmp / "exp")
    pipeline.quantize_stage(spec, c, tmp / "exp", tmp / "q")
    return pipeline.validate_stage(spec, c, tmp / "exp", tmp / "q", tmp / "val")


def test_dynamic_int8_gru_model_gets_a_ranked_per_layer_report(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, CTC + "quantize: {mode: dynamic}\nevaluate: {min_output_cosine: 0.98}\n")
    out = run_all(spec, ctx(tmp_path), tmp_path)
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert out["ok"] and out["meta"]["quantize"] == "dynamic" and out["meta"]["kind"] == "generic"
    export = doc["export"]
    assert export["exporter"] == "torchscript" and export["opset"] == 20 and export["method"] == "trace"
    layers = doc["validation"]["layers"]
    assert layers and [r["sqnr_db"] for r in layers] == sorted(r["sqnr_db"] for r in layers)
    assert {"node", "op_type", "sqnr_db", "max_abs"} <= set(layers[0])
    sizes = doc["validation"]["size_bytes"]
    assert sizes["final"] < sizes["fp32"]
    assert "no dot-product instructions" in " ".join(doc["quantize"]["notes"])
    assert (tmp_path / "report" / "layers.png").read_bytes()[:4] == b"\x89PNG"
    rows = doc["validation"]["outputs"]
    assert {r["name"] for r in rows} == {"log_probs", "hn"} and all(r["ok"] for r in rows)


def test_static_qdq_uses_the_qdq_matching_and_fails_with_the_worst_layer(tmp_path: Path) -> None:
    text = CTC + (
        "quantize: {mode: static, per_channel: true, calibration: {samples: 4, method: MinMax}}\n"
        "evaluate: {min_output_cosine: 0.9999999}\n"
    )
    spec = spec_from(tmp_path, text)
    with pytest.raises(ModelCheckError) as err:
        run_all(spec, ctx(tmp_path), tmp_path)
    message = err.value.render()
    assert "failed validation: output" in message and "cosine below" in message
    assert "Worst layer: " in message and " dB." in message
    doc = json.loads((tmp_path / "report" / "report.json").read_text())  # the failed run's report is kept
    assert doc["validation"]["layers"] and not doc["validation"]["ok"]


def test_fp16_is_refused_where_the_cpu_has_no_fp16_arithmetic(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, CTC + "quantize: {mode: fp16}\n")
    with pytest.raises(ConfigError, match=r"cortex-a72 \(ARMv8.0-A\) has no fp16 arithmetic"):
        run_all(spec, ctx(tmp_path), tmp_path)


def test_an_empty_calibration_set(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, CTC + "quantize: {mode: static, calibration: {samples: 0}}\n")
    with pytest.raises(InputError, match="the calibration set is empty"):
        run_all(spec, ctx(tmp_path), tmp_path)


def test_calibration_audio_at_the_wrong_rate(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "8k.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(4000, dtype=np.int16).tobytes())
    text = """task: vad
source: {kind: torch, factory: "edgepack.modelpipe.zoo.silero:silero_vad_16k"}
inputs:
  - {name: input, shape: [batch, 576], std: 0.1}
  - {name: state, shape: [2, batch, 128]}
outputs: [output, stateN]
dims:
  - {name: batch, export: 2, check: [1]}
quantize: {mode: static, calibration: {source: audio, files: [8k.wav]}}
evaluate: {audio: [8k.wav]}
"""
    spec = spec_from(tmp_path, text)
    with pytest.raises(InputError, match=r"calibration set: 8k.wav is 8000 Hz, the model expects 16000 Hz"):
        run_all(spec, ctx(tmp_path), tmp_path)


def test_unknown_node_to_exclude_is_named(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, CTC + "quantize: {mode: dynamic, exclude_nodes: [/no/such/Node]}\n")
    with pytest.raises(ConfigError, match=r"exclude_nodes names no node: /no/such/Node"):
        run_all(spec, ctx(tmp_path), tmp_path)


@pytest.mark.parametrize(("runtime", "conv_int8"), [("1.21.0", False), ("1.32.0", True)])
def test_dynamic_int8_keeps_conv_fp32_for_a_runtime_without_int8_conv_integer(
    tmp_path: Path, runtime: str, conv_int8: bool
) -> None:
    """Debian trixie's onnxruntime 1.21 (the armv7 target) has ConvInteger for uint8 weights only."""
    import onnx
    import onnxruntime as ort

    spec = spec_from(tmp_path, CTC + "quantize: {mode: dynamic}\n")
    c = dataclasses.replace(ctx(tmp_path), runtime=runtime)
    pipeline.source_stage(spec, c, tmp_path / "src")
    pipeline.export_stage(spec, c, tmp_path / "src", tmp_path / "exp")
    pipeline.quantize_stage(spec, c, tmp_path / "exp", tmp_path / "q")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q/model.onnx")).graph.node}
    assert ("ConvInteger" in ops) is conv_int8 and ("Conv" in ops) is not conv_int8
    assert "MatMulInteger" in ops  # the rest stays int8
    record = json.loads((tmp_path / "q/quantize.json").read_text())
    noted = any("Conv kept fp32: onnxruntime 1.21.0 has ConvInteger for uint8 weights only" in n
                for n in record["notes"])  # fmt: skip
    assert noted is not conv_int8
    ort.InferenceSession(str(tmp_path / "q/model.onnx"), providers=["CPUExecutionProvider"])


def test_preprocess_on_threads_leaves_stdout_and_cwd_as_they_were(tmp_path: Path) -> None:
    """--target all runs model stages on threads; preprocess chdirs and redirects stdout (process-wide).

    Unserialised, one thread restored another's scratch folder as the cwd (then deleted it) and stdout
    stayed a StringIO for the rest of the run.
    """
    import sys
    import threading

    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 8], np.eye(8, dtype=np.float32).ravel().tolist())
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 8]) for n in ("x", "y"))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    src = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    stdout, cwd, errors = sys.stdout, Path.cwd(), []

    def work(i: int) -> None:
        try:
            for round_ in range(3):
                quantize.preprocess(src, tmp_path / f"out-{i}-{round_}.onnx")
        except Exception as exc:  # reported below, with the thread's number
            errors.append(f"{i}: {exc!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sys.stdout is stdout and Path.cwd() == cwd
    assert len(list(tmp_path.glob("out-*.onnx"))) == 12


def test_asr_calibration_streams_the_audio_as_the_runtime_does(asr_model: Path, heldout: list) -> None:
    """Audio calibration of a streaming recogniser: every full chunk of the runtime's default size with its
    left context, the GRU state carried from the chunk before (the board's inputs, not synthetic ones)."""
    from edgepack.modelpipe.taskmetric import asr_chunks
    from edgepack_runtime.audio import read_wav

    feeds: list = []
    audio = read_wav(heldout[0][0])
    asr_chunks(asr_model, audio, keep=feeds)
    frames = (len(audio.samples) - 400) // 160 + 1  # 25 ms windows every 10 ms
    assert len(feeds) == frames // 32 >= 3
    assert all(f["feats"].shape == (1, 36, 40) and f["h0"].shape == (2, 1, 192) for f in feeds)
    assert not feeds[0]["h0"].any() and feeds[1]["h0"].any()  # a fresh state, then the carried one
    assert not feeds[0]["feats"][0, :4].any()  # the first chunk's left context is zeros, as on the board
    assert np.array_equal(feeds[1]["feats"][0, :4], feeds[0]["feats"][0, -4:])
