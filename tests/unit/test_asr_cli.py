"""The runtime's speech commands, in-process: output, and one clear line + exit 2 for bad input."""

from __future__ import annotations

import json
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgepack.modelpipe import metadata
from edgepack_runtime import capture
from edgepack_runtime.__main__ import main
from edgepack_runtime.audio import read_wav
from edgepack_runtime.debugaudio import AXIS_HEIGHT, PANEL_WIDTH
from edgepack_runtime.resample import resample
from tests.unit.test_asr_audio import float_wav, write_wav


def _at(path: Path, rate: int, src: Path) -> Path:
    audio = read_wav(src)
    y = resample(audio.samples, src_rate=audio.rate, dst_rate=rate)
    return write_wav(path, (np.clip(y, -1, 1) * 32767).astype("<i2"), rate=rate)


def test_transcribe_batch_and_stream(asr_model: Path, heldout: list, capsys: pytest.CaptureFixture) -> None:
    wav, _ = heldout[3]
    assert main(["transcribe", str(wav), "--model", str(asr_model)]) == 0
    batch = capsys.readouterr().out.splitlines()[-1]
    assert main(["transcribe", str(wav), "--model", str(asr_model), "--stream", "--chunk-ms", "160"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == batch and lines[0].startswith("partial: ") and len(lines) > 2
    assert main(["transcribe", str(wav), "--model", str(asr_model), "--stream", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == batch and out["chunk_latency_ms"]["count"] > 0 and 0 < out["rtf"] < 1


def test_wrong_rate_is_resampled_or_refused(asr_model: Path, heldout: list, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    wav44 = _at(tmp_path / "44k.wav", 44100, heldout[3][0])
    assert main(["transcribe", str(wav44), "--model", str(asr_model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == heldout[3][1]
    assert main(["transcribe", str(wav44), "--model", str(asr_model), "--no-resample"]) == 2
    err = capsys.readouterr().err
    assert "sample rate is 44100 Hz but the model expects 16000 Hz" in err and "Traceback" not in err


def _bad(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("edgepack-runtime: ")]
    assert len(lines) >= 1 and "Traceback" not in captured.err and captured.out == ""
    return lines[-1]


def test_bad_input_is_one_line_and_exit_2(
    asr_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    m = ["--model", str(asr_model)]
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, "<i2"))
    assert "empty audio" in _bad(["transcribe", str(empty), *m], capsys)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(16000, "<i2"))
    assert "is silent" in _bad(["transcribe", str(silent), *m], capsys)
    assert "unsupported audio format" in _bad(["transcribe", str(float_wav(tmp_path / "f.wav")), *m], capsys)
    assert "no such file" in _bad(["transcribe", str(tmp_path / "missing.wav"), *m], capsys).lower()
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(asr_model.read_bytes())
    metadata.stamp(bare, {})
    _strip(bare)
    line = _bad(["transcribe", str(silent), "--model", str(bare)], capsys)
    assert "has no edgepack.sample_rate" in line
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    assert "onnxruntime cannot load it" in _bad(["transcribe", str(silent), "--model", str(junk)], capsys)


def _strip(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))


def test_a_missing_capture_device_is_named(asr_model: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    fake = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    def input_stream(**kwargs: object) -> None:
        raise ValueError(f"No input device matching {kwargs['device']!r}")

    fake.PortAudioError = PortAudioError  # type: ignore[attr-defined]
    fake.InputStream = input_stream  # type: ignore[attr-defined]
    fake.query_devices = lambda: [{"name": "USB mic", "max_input_channels": 1}]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    monkeypatch.setattr(capture, "SOUND_DEVICES", str(asr_model))  # any path that exists: "a sound card"
    monkeypatch.setattr(capture, "ALSA_CONF", str(asr_model))
    line = _bad(["listen", "--device", "nope", "--model", str(asr_model)], capsys)
    assert "capture device 'nope' cannot be opened: No input device matching 'nope'" in line
    assert "Input devices: 'USB mic'" in line
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # neither backend installed
    monkeypatch.setitem(sys.modules, "pyaudio", None)
    assert "needs sounddevice or pyaudio" in _bad(["listen", "--model", str(asr_model)], capsys)
    monkeypatch.setattr(capture, "SOUND_DEVICES", "/nonexistent/snd")
    line = _bad(["listen", "--device", "hw:1", "--model", str(asr_model)], capsys)
    assert "capture device 'hw:1' does not exist: this system has no sound card" in line


def test_debug_audio_prints_what_the_model_sees_and_writes_a_png(
    asr_model: Path, heldout: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    wav = _at(tmp_path / "48k.wav", 48000, heldout[0][0])
    png = tmp_path / "spec.png"
    assert main(["debug-audio", str(wav), "--model", str(asr_model), "--png", str(png), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rate"] == 48000 and info["channels"] == 1 and info["model_rate"] == 16000
    assert info["model_sees"] == "resampled 48000 -> 16000 Hz (soxr)" and info["model_frames"] > 100
    assert info["peak_dbfs"] < 0 and info["clipped_samples"] == 0 and not info["silent"]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    # Two fixed-width panels with a gap, whatever the length; a time axis under each.
    assert height == 40 * 3 + AXIS_HEIGHT and width == 2 * PANEL_WIDTH + 12
    idat = data.index(b"IDAT")
    size = int.from_bytes(data[idat - 4 : idat], "big")
    assert len(zlib.decompress(data[idat + 4 : idat + 4 + size])) == height * (1 + 3 * width)
    assert main(["debug-audio", str(wav), "--model", str(asr_model), "--no-resample"]) == 0
    assert "REFUSED: 48000 Hz with --no-resample" in capsys.readouterr().out


def test_debug_audio_draws_a_long_file_at_the_same_width_with_seconds(
    asr_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from edgepack_runtime import debugaudio

    rng = np.random.default_rng(0)
    wav = write_wav(tmp_path / "long.wav", (rng.standard_normal(16000 * 44) * 3000).astype("<i2"))
    png = tmp_path / "long.png"
    assert main(["debug-audio", str(wav), "--model", str(asr_model), "--png", str(png), "--json"]) == 0
    data = png.read_bytes()
    assert int.from_bytes(data[16:20], "big") == 2 * PANEL_WIDTH + 12
    axis = debugaudio._axis(44.0)
    ticks = np.flatnonzero((axis[0:4] == 0).all(axis=(0, 2)))
    assert len(ticks) == 5 and ticks[0] == 0  # 0, 10, 20, 30, 40 s
    assert ticks[1] == round(10 / 44 * (PANEL_WIDTH - 1))
