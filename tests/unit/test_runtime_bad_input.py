"""The runtime CLI on bad input: one line naming the file or flag, exit 2; no traceback, no silent accept."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from edgepack_runtime.__main__ import main
from edgepack_runtime.audio import AudioError, read_wav


def stereo_wav(path: Path, frames: int = 1600) -> bytes:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.arange(2 * frames) % 200 - 100).astype(np.int16).tobytes())
    return path.read_bytes()


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (1000, "truncated: the header promises 0.100 s of audio, the data ends at 0.084 s"),
        (1, "ends in the middle of a sample"),
        (2, "ends in the middle of a frame (not every channel has its sample)"),
    ],
)
def test_a_wav_shorter_than_its_header_is_refused_never_read_short(
    tmp_path: Path, cut: int, message: str
) -> None:
    data = stereo_wav(tmp_path / "full.wav")
    (tmp_path / "cut.wav").write_bytes(data[:-cut])
    with pytest.raises(AudioError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_wav(tmp_path / "cut.wav")
    assert str(info.value).startswith(f"{tmp_path / 'cut.wav'}: ")


def test_a_whole_wav_still_reads(tmp_path: Path) -> None:
    stereo_wav(tmp_path / "ok.wav")
    audio = read_wav(tmp_path / "ok.wav")
    assert audio.channels == 2 and len(audio.samples) == 1600


def test_a_folder_given_as_audio_is_named(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="is a folder, not a WAV file"):
        read_wav(tmp_path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "99999"], "argument --port: 99999 is out of range 0..65535"),
        (["smoke", "--threads", "-3"], "argument --threads: -3 is out of range 1..256"),
        (["bench", "--runs", "abc"], "argument --runs: 'abc' is not a whole number"),
        (["serve", "--interval", "0"], "argument --interval: 0 is out of range 0.1..86400 s"),
    ],
)
def test_runtime_flags_are_checked_at_parse(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{bad", "spec.json:1: not valid JSON"),
        ('{"model": "m.onnx"}', "not an edgepack smoke spec (missing kind, runs, threads)"),
    ],
)
def test_a_bad_smoke_spec_names_the_file(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spec.json").write_text(content)
    assert main(["smoke", "--spec", str(tmp_path / "spec.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_default_spec_outside_the_image_says_where_to_look(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["smoke"]) == 2
    assert "no smoke spec there: give --spec build/<target>/smoke/spec.json" in capsys.readouterr().err


def test_onnxruntimes_reason_is_kept_whole_and_its_signature_dropped() -> None:
    from edgepack.errors import tool_reason

    text = " ".join([
        "[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx",
        "failed:/onnxruntime_src/onnxruntime/core/graph/model_load_utils.h:46 void",
        "onnxruntime::model_load_utils::ValidateOpsetForDomain(const std::unordered_map",
        "<std::__cxx11::basic_string<char>, int>&, const onnxruntime::logging::Logger&, bool,",
        "const std::string&, int) ONNX Runtime only *guarantees* support for models stamped",
        "with official released onnx opset versions. Opset 99 is under development and",
        "support for this is limited. The operator schemas and or other functionality may",
        "change before next ONNX release. Current official support for domain ai.onnx is till opset 28.\n",
    ])  # fmt: skip
    reason = tool_reason(text)
    assert "Opset 99 is under development" in reason and "till opset 28" in reason
    assert "::" not in reason and len(reason) <= 400


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["transcribe", "x.wav", "--stream", "--chunk-ms", "0"],
            "--chunk-ms: 0 ms is out of range 20..10000",
        ),
        (["transcribe", "x.wav", "--chunk-ms", "-320"], "--chunk-ms: -320 ms is out of range"),
        (["transcribe", "x.wav", "--threads", "-3"], "--threads: -3 is out of range 1..256"),
        (["listen", "--block", "0"], "--block: 0 is out of range 16..65536"),
    ],
)
def test_asr_flags_are_checked_at_parse(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_one_sample_streamed_is_refused_like_the_whole_file(
    tmp_path: Path, asr_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with wave.open(str(tmp_path / "one.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.array([3000], np.int16).tobytes())
    for extra in ([], ["--stream"]):
        assert main(["transcribe", str(tmp_path / "one.wav"), "--model", str(asr_model), *extra]) == 2
        assert "shorter than one analysis window" in capsys.readouterr().err


def test_a_picture_of_empty_audio_is_an_error_not_silence(
    tmp_path: Path, asr_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with wave.open(str(tmp_path / "empty.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    png = tmp_path / "out.png"
    assert (
        main(["debug-audio", str(tmp_path / "empty.wav"), "--png", str(png), "--model", str(asr_model)]) == 2
    )
    assert "no samples: there is no picture to draw" in capsys.readouterr().err and not png.exists()
