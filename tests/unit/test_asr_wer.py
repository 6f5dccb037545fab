"""The ASR task metric (WER via jiwer over a manifest), the metadata a model stage writes, the text check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepack.errors import ConfigError, InputError
from edgepack.modelpipe import metadata, taskmetric
from edgepack.modelpipe.spec import load_spec
from edgepack.pipeline import smoke
from edgepack_runtime.modelmeta import SAMPLE_RATE, TASK

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "models" / "cmdasr.yaml"


def test_wer_gate_runs_the_spec_decoder_over_the_manifest(asr_model: Path) -> None:
    spec = load_spec(SPEC)
    increase, fp32, quant = taskmetric.task_metrics(spec, asr_model, asr_model, REPO)
    assert (increase.name, fp32.name, quant.name) == ("WER increase", "WER fp32", "WER quantized")
    assert increase.value == 0.0 and increase.ok and fp32.value == quant.value
    assert 0.0 <= fp32.value < 0.5  # a working model; the exact WER belongs to the weights, not to this test
    assert "over 32 utterances" in increase.detail


def test_a_worse_quantized_model_fails_the_gate(asr_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(SPEC)
    hyps = iter([*(["turn"] * 32), *(["nothing at all here"] * 32)])  # fp32 first, then the quantized model
    monkeypatch.setattr(taskmetric, "_decoder", lambda _spec: lambda session, samples, rate: next(hyps))
    increase, fp32, quant = taskmetric.wer(spec, asr_model, asr_model, REPO)
    assert quant.value > fp32.value and not increase.ok and increase.limit == 0.02
    assert increase.value == pytest.approx(quant.value - fp32.value)


def test_manifest_errors_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav"}\n')
    with pytest.raises(InputError, match=r"m.jsonl:1: expected a JSON object with 'audio' and 'text'"):
        taskmetric.read_manifest(tmp_path / "m.jsonl")
    with pytest.raises(InputError, match="does not exist"):
        taskmetric.read_manifest(tmp_path / "none.jsonl")


def test_bad_decoder_is_a_config_error(tmp_path: Path) -> None:
    text = SPEC.read_text().replace(
        "edgepack_runtime.asr:decode_command_session", "edgepack_runtime.asr:nope"
    )
    (tmp_path / "cmdasr.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"evaluate.decoder 'edgepack_runtime.asr:nope' cannot be imported"):
        taskmetric._decoder(load_spec(tmp_path / "cmdasr.yaml"))


def test_an_asr_spec_needs_its_metadata(tmp_path: Path) -> None:
    text = SPEC.read_text().replace("  metadata: speech/weights/cmdasr.json\n", "")
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"needs source\.metadata"):
        load_spec(tmp_path / "x.yaml")


def test_metadata_props_are_stamped_into_the_model(asr_model: Path, tmp_path: Path) -> None:
    spec = load_spec(SPEC)
    props = metadata.props_for(spec, REPO / spec.source.metadata)
    assert props[TASK] == "asr" and props[SAMPLE_RATE] == "16000"
    assert json.loads(props["edgepack.asr"])["blank"] == 0
    copy = tmp_path / "m.onnx"
    copy.write_bytes(asr_model.read_bytes())
    metadata.stamp(copy, {SAMPLE_RATE: "8000", "other": "x"})
    got = metadata.read(copy)
    assert got[SAMPLE_RATE] == "8000" and got["other"] == "x" and got[TASK] == "asr"
    bad = tmp_path / "meta.json"
    bad.write_text(json.dumps({"front_end": {"sample_rate": 8000}}))
    with pytest.raises(InputError, match="lacks what the runtime needs"):
        metadata.props_for(spec, bad)


def test_smoke_checks_the_transcript() -> None:
    ref = {"outputs": {}, "text": "turn on the light", "expected_text": "turn on the light"}
    (ok,) = smoke.compare(ref, {"outputs": {}, "text": "turn on the light"}, atol=1e-4, rtol=1e-3)
    assert ok.name == "text" and ok.ok
    (bad,) = smoke.compare(ref, {"outputs": {}, "text": "turn on the lights"}, atol=1e-4, rtol=1e-3)
    assert not bad.ok and "image said 'turn on the lights'" in bad.why
    from edgepack.errors import SmokeTestError

    with pytest.raises(SmokeTestError, match=r"  text: image said 'turn on the lights', host said"):
        smoke.require_match([bad], image="img")
