"""Explicit resampling and the sample-rate guard."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgepack_runtime.audio import Audio, AudioError
from edgepack_runtime.resample import StreamResampler, conform, resample


def _tone(hz: float, rate: int, seconds: float = 0.5) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_resampling_keeps_frequencies_and_length() -> None:
    y = resample(_tone(1000, 44100), src_rate=44100, dst_rate=16000)
    assert y.dtype == np.float32 and abs(len(y) - 8000) <= 1
    assert abs(_peak_hz(y, 16000) - 1000) < 5
    # What the guard prevents: the same samples taken as 16 kHz put the tone at 363 Hz.
    assert abs(_peak_hz(_tone(1000, 44100), 16000) - 1000 * 16000 / 44100) < 5


def test_same_rate_is_passed_through_untouched() -> None:
    audio = Audio(_tone(440, 16000), 16000, 1)
    assert conform(audio, rate=16000, allow_resample=False, source="x.wav") is audio


def test_other_rate_is_resampled_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edgepack_runtime"):
        out = conform(Audio(_tone(440, 48000), 48000, 2), rate=16000, allow_resample=True, source="in.wav")
    assert out.rate == 16000 and abs(len(out.samples) - 8000) <= 1 and out.channels == 2
    assert "in.wav: 48000 Hz resampled to the model's 16000 Hz" in caplog.text


def test_no_resample_makes_a_wrong_rate_an_error() -> None:
    with pytest.raises(
        AudioError, match=r"in.wav: sample rate is 44100 Hz but the model expects 16000 Hz.*--no-resample"
    ):
        conform(Audio(_tone(440, 44100), 44100, 1), rate=16000, allow_resample=False, source="in.wav")


def test_stream_resampler_matches_whole_signal_resampling() -> None:
    x = _tone(700, 48000, seconds=1.0)
    stream = StreamResampler(src_rate=48000, dst_rate=16000)
    blocks = [stream(x[i : i + 480]) for i in range(0, len(x), 480)] + [stream(x[:0], last=True)]
    y = np.concatenate(blocks)
    assert abs(len(y) - 16000) <= 2 and abs(_peak_hz(y, 16000) - 700) < 5
    same = StreamResampler(src_rate=16000, dst_rate=16000)
    assert same(x[:10]) is not None and np.array_equal(same(x[:10]), x[:10])
