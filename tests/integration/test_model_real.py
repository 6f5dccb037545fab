"""Real models through the model stage: Silero VAD from its wheel, Whisper tiny, the dynamo trap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgepack.config import Project, load_target
from edgepack.errors import ModelCheckError
from edgepack.modelpipe import export as ex
from edgepack.modelpipe import inputs, pipeline, sources, steps, trace
from edgepack.modelpipe.spec import load_spec
from edgepack.pipeline.context import Build
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner
from edgepack_runtime.audio import read_wav
from edgepack_runtime.vad import SileroVAD

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    dest = tmp_path_factory.mktemp("proj")
    for part in ("targets", "assets", "models"):
        shutil.copytree(REPO / part, dest / part)
    return Project(dest)


def run_spec(project: Project, spec: str) -> dict:
    b = Build(target=load_target(project, "rpi4"), project=project, runner=Runner(echo=False), model=spec)
    records = execute(steps.plan_model(b), b.cache)
    return {r.name: r.outputs for r in records}


def vad_probs(model: Path) -> np.ndarray:
    sess = ex.session(model)
    return SileroVAD(sess).probabilities(read_wav(REPO / "assets/audio/smoke-en.wav").samples)


def test_silero_from_the_wheel_equals_the_bundled_onnx_and_int8_keeps_the_decisions(project: Project) -> None:
    out = run_spec(project, "models/silero-vad.yaml")
    report = json.loads((Path(out["validate"]["dir"]) / "report.json").read_text())
    assert report["export"]["method"] == "trace" and all(c["ok"] for c in report["export"]["checks"])
    metrics = {m["name"]: m for m in report["validation"]["metrics"]}
    assert metrics["frame agreement"]["ok"] and metrics["frame agreement"]["value"] >= 0.97
    # The torch module with the .jit's weights computes what the wheel's own ONNX file computes.
    bundled = sources.resolve_file(
        "silero_vad/data/silero_vad_16k_op15.onnx",
        load_spec(REPO / "models/silero-vad.yaml"),
        root=project.root,
        cache=project.build_dir / "cache" / "model-src",
        runner=Runner(echo=False),
    )
    fp32 = Path(out["export"]["dir"]) / "model.onnx"
    assert np.abs(vad_probs(fp32) - vad_probs(bundled)).max() < 1e-5


def test_silero_bundled_onnx_file_as_a_source(project: Project) -> None:
    out = run_spec(project, "models/silero-vad-onnx.yaml")
    report = json.loads((Path(out["validate"]["dir"]) / "report.json").read_text())
    assert report["export"]["source"] == "onnx" and all(c["ok"] for c in report["export"]["checks"])
    assert report["validation"]["ok"]


def test_silero_safetensors_rebuilds_a_module_that_exports_exactly(project: Project) -> None:
    out = run_spec(project, "models/silero-vad-safetensors.yaml")
    report = json.loads((Path(out["export"]["dir"]) / "export.json").read_text())
    assert report["method"] == "trace" and max(c["max_abs"] for c in report["checks"]) < 1e-5


def test_whisper_tiny_encoder_and_cached_decoder_export_with_dynamic_axes(project: Project) -> None:
    enc = json.loads(
        (
            Path(run_spec(project, "models/whisper-tiny-encoder.yaml")["export"]["dir"]) / "export.json"
        ).read_text()
    )
    dec_out = run_spec(project, "models/whisper-tiny-decoder.yaml")
    dec = json.loads((Path(dec_out["export"]["dir"]) / "export.json").read_text())
    assert [c["label"] for c in enc["checks"]][-3:] == ["frames=100", "frames=320", "batch=3, frames=320"]
    labels = [c["label"] for c in dec["checks"]]
    assert {"tokens=1", "tokens=5", "audio=30", "past=0", "past=7"} <= set(labels)
    assert all(c["ok"] for c in enc["checks"] + dec["checks"])


def test_whisper_wrappers_equal_whisper_and_the_cache_equals_full_decoding() -> None:
    from edgepack.modelpipe.zoo import whisper as w

    model = w.tiny_whisper()
    torch.manual_seed(1)
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        feats = model.encoder(mel)
        assert torch.allclose(w.Encoder(model)(mel), feats, atol=1e-5)  # 30 s: whisper's own encoder
        tokens = torch.randint(0, 51865, (1, 6))
        full = model.decoder(tokens, feats[:, :100])
        dec = w.CachedDecoder(model)
        logits, present = dec(tokens[:, :4], feats[:, :100], torch.zeros(8, 1, 0, 384))
        step, _ = dec(tokens[:, 4:], feats[:, :100], present)
    assert torch.allclose(logits, full[:, :4], atol=1e-4) and torch.allclose(step, full[:, 4:], atol=1e-4)


def test_dynamo_specializes_the_conv_gru_time_axis_and_says_which(tmp_path: Path) -> None:
    spec_path = tmp_path / "convgru.yaml"
    spec_path.write_text("""source: {kind: torch, factory: "edgepack.modelpipe.zoo.toys:conv_gru"}
inputs:
  - {name: x, shape: [batch, frames, 8]}
outputs: [y]
dims:
  - {name: batch, export: 2, check: [1]}
  - {name: frames, export: 100, check: [37]}
export: {exporter: dynamo}
""")
    spec = load_spec(spec_path)
    module = sources.build_module(spec, None)
    sets = [inputs.example(spec), *inputs.check_sets(spec)]
    out = tmp_path / "m.onnx"
    ex.export(module, module, spec, sets[0], out=out, exporter="dynamo", opset=18)
    with pytest.raises(ModelCheckError) as err:
        ex.verify(out, spec, sets, trace.eager_outputs(module, spec, sets), exporter="dynamo")
    text = err.value.render()
    assert "the dynamo exporter specialized" in text and "output y axis 1 fixed at 100" in text
    assert "Try export.exporter: torchscript" in text
    # The TorchScript-based exporter keeps it dynamic (the shared TOOLCHAIN notes).
    ex.export(module, module, spec, sets[0], out=out, exporter="torchscript", opset=17)
    assert all(
        r.ok
        for r in ex.verify(out, spec, sets, trace.eager_outputs(module, spec, sets), exporter="torchscript")
    )


def test_pipeline_context_of_rpi4_knows_its_cpu(project: Project) -> None:
    b = Build(
        target=load_target(project, "rpi4"),
        project=project,
        runner=Runner(echo=False),
        model="models/silero-vad.yaml",
    )
    c: pipeline.Context = steps.context(b)
    assert c.cpu.name == "cortex-a72" and not c.cpu.dotprod and c.runtime == "1.32.0"
