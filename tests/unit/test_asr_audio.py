"""Audio input checks (formats, channels, level) and the model metadata the runtime requires."""

from __future__ import annotations

import json
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from edgepack_runtime.audio import AudioError, level, read_wav, require_signal
from edgepack_runtime.modelmeta import SAMPLE_RATE, ModelMetaError, asr_meta, asr_props

REPO = Path(__file__).resolve().parents[2]


def write_wav(path: Path, ints: np.ndarray, *, rate: int = 16000, width: int = 2, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(ints.tobytes())
    return path


def float_wav(path: Path) -> Path:
    """A 32-bit IEEE float WAV (format tag 3), which the wave module cannot read."""
    data = np.zeros(160, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_integer_formats_and_stereo_are_read_as_mono_float(tmp_path: Path) -> None:
    a16 = read_wav(write_wav(tmp_path / "a.wav", np.array([16384, -16384], "<i2")))
    assert a16.sample_format == "int16" and np.allclose(a16.samples, [0.5, -0.5])
    a8 = read_wav(write_wav(tmp_path / "b.wav", np.array([192, 64], np.uint8), width=1))
    assert a8.sample_format == "uint8" and np.allclose(a8.samples, [0.5, -0.5])
    raw24 = np.array([[0, 0, 0x40], [0, 0, 0xC0]], np.uint8)  # +0.5, -0.5 in 24-bit little endian
    a24 = read_wav(write_wav(tmp_path / "c.wav", raw24, width=3))
    assert a24.sample_format == "int24" and np.allclose(a24.samples, [0.5, -0.5])
    stereo = read_wav(write_wav(tmp_path / "d.wav", np.array([16384, 0, 16384, -16384], "<i2"), channels=2))
    assert stereo.channels == 2 and np.allclose(stereo.samples, [0.25, 0.0])


def test_unsupported_format_and_non_wav_are_named(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"unsupported audio format: 32-bit float \(IEEE\) WAV.*sox"):
        read_wav(float_wav(tmp_path / "f.wav"))
    (tmp_path / "x.wav").write_bytes(b"ID3\x03 not a wav at all")
    with pytest.raises(AudioError, match="unsupported audio format"):
        read_wav(tmp_path / "x.wav")


def test_empty_silent_and_clipped_audio(tmp_path: Path) -> None:
    empty = read_wav(write_wav(tmp_path / "e.wav", np.zeros(0, "<i2")))
    with pytest.raises(AudioError, match="no samples"):
        require_signal(empty, source="e.wav")
    silent = read_wav(write_wav(tmp_path / "s.wav", np.ones(1600, "<i2")))  # -90 dBFS: dither, not speech
    with pytest.raises(AudioError, match=r"s.wav: the audio is silent \(peak -90.3 dBFS"):
        require_signal(silent, source="s.wav")
    clipped = np.array([32767, -32768, 1000, 32767], "<i2")
    lv = require_signal(read_wav(write_wav(tmp_path / "c.wav", clipped)), source="c.wav")
    assert lv.clipped == 3 and lv.peak == pytest.approx(1.0)
    assert level(np.zeros(0, np.float32)).silent


def _meta() -> dict:
    return json.loads((REPO / "speech" / "weights" / "cmdasr.json").read_text())


def test_asr_metadata_round_trip() -> None:
    props = asr_props(_meta())
    meta = asr_meta(props, shown_as="m.onnx")
    assert meta.sample_rate == 16000 == meta.frontend.sample_rate
    assert meta.charset[meta.blank] == "_" and meta.subsampling == 2 and meta.left_context == 4
    assert meta.normalizer.mean.shape == (meta.frontend.n_mels,) and (meta.layers, meta.hidden) == (2, 192)


def test_a_model_without_its_sample_rate_is_refused() -> None:
    props = asr_props(_meta())
    del props[SAMPLE_RATE]
    with pytest.raises(ModelMetaError, match=r"m.onnx: the model's metadata has no edgepack.sample_rate"):
        asr_meta(props, shown_as="m.onnx")
    with pytest.raises(ModelMetaError, match="not a rate in Hz"):
        asr_meta({**props, SAMPLE_RATE: "fast"}, shown_as="m.onnx")
    with pytest.raises(ModelMetaError, match="disagrees"):
        asr_meta({**asr_props(_meta()), SAMPLE_RATE: "8000"}, shown_as="m.onnx")
