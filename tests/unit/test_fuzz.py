"""A bounded fuzz pass (hypothesis): the loaders answer any bytes with a clear error or a result.

"Clear" means the project's own error type (exit code, one or two lines naming the file);
anything else (a traceback) fails. The example counts are fixed, so the run is bounded.
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack.errors import EdgepackError
from edgepack.yamlconf import load_yaml
from edgepack_runtime.audio import AudioError, read_wav

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
YAML_ATOMS = st.sampled_from(
    [
        "a",
        "b",
        ":",
        " ",
        "\n",
        "-",
        "&x",
        "*x",
        "[",
        "]",
        "{",
        "}",
        "'",
        '"',
        "!!int",
        "<<",
        "#",
        "\t",
        "1",
        "\xff",
        "\x00",
        "?",
        "|",
        ">",
        ",",
        "%YAML 1.1\n---",
    ]
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@FUZZ
@given(st.lists(YAML_ATOMS, max_size=60).map("".join))
def test_the_yaml_loader_never_raises_anything_but_a_config_error(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "target.yaml", text.encode("utf-8", errors="surrogatepass"))
    try:
        load_yaml(path)
    except EdgepackError as exc:
        assert str(path) in exc.render() and len(exc.render().splitlines()) <= 2


@FUZZ
@given(st.binary(max_size=400))
def test_the_yaml_loader_takes_any_bytes(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, "any.yaml", data)
    try:
        load_yaml(path)
    except EdgepackError as exc:
        assert str(path) in exc.render()


def _wav(channels: int, width: int, rate: int, frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames * channels * width))
    return buffer.getvalue()


@FUZZ
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 96000),
    st.integers(0, 50),
    st.integers(-60, 60),
    st.binary(max_size=16),
    st.integers(0, 60),
)
def test_the_wav_reader_never_raises_anything_but_an_audio_error(
    tmp_path: Path, channels: int, width: int, rate: int, frames: int, cut: int, junk: bytes, at: int
) -> None:
    data = bytearray(_wav(channels, width, rate, frames))
    data = data[: len(data) + cut] if cut < 0 else data + bytes(cut)
    data[at : at + len(junk)] = junk  # damage the header or the data
    path = _write(tmp_path, "in.wav", bytes(data))
    try:
        audio = read_wav(path)
    except AudioError as exc:
        assert str(path) in str(exc)
    else:
        assert audio.samples.ndim == 1 and audio.rate > 0


@FUZZ
@given(st.binary(max_size=300))
def test_the_model_inspector_never_raises_anything_but_an_input_error(tmp_path: Path, data: bytes) -> None:
    from edgepack.scaffold import onnx_inputs

    path = _write(tmp_path, "model.onnx", data)
    try:
        onnx_inputs(path)
    except EdgepackError as exc:
        assert str(path) in exc.render()


def test_a_wav_header_with_a_huge_data_length_is_refused(tmp_path: Path) -> None:
    data = bytearray(_wav(1, 2, 16000, 100))
    data[40:44] = struct.pack("<I", 2**31)  # the data chunk claims 2 GB
    with pytest.raises(AudioError, match="truncated"):
        read_wav(_write(tmp_path, "big.wav", bytes(data)))
