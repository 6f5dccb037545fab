"""The numpy log-mel front end: shapes, the filterbank, and streaming == whole file."""

from __future__ import annotations

import numpy as np
import pytest

from edgepack_runtime.features import (
    FrontEndConfig,
    Normalizer,
    StreamingFeatures,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    num_frames,
)


def _audio(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def test_frame_count_is_causal_and_unpadded() -> None:
    cfg = FrontEndConfig()
    assert num_frames(399, cfg) == 0
    assert num_frames(400, cfg) == 1
    assert num_frames(559, cfg) == 1
    assert num_frames(560, cfg) == 2
    assert log_mel(_audio(16000)).shape == (98, 40)
    assert log_mel(_audio(100)).shape == (0, 40)


def test_mel_scale_round_trips_and_filters_cover_the_band() -> None:
    hz = np.array([0.0, 700.0, 4000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, atol=1e-9)
    assert hz_to_mel(700.0) == pytest.approx(2595.0 * np.log10(2.0))
    filters = mel_filterbank(FrontEndConfig())
    assert filters.shape == (257, 40)
    assert filters.max() <= 1.0
    assert (filters.sum(axis=0) > 0).all()


def test_tone_peaks_in_the_right_mel_bin() -> None:
    cfg = FrontEndConfig()
    feats = log_mel(np.sin(2 * np.pi * 1000 * np.arange(8000) / 16000), cfg)
    centres = np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2)[1:-1]
    assert abs(int(feats.mean(axis=0).argmax()) - int(np.abs(centres - hz_to_mel(1000.0)).argmin())) <= 1


def test_int16_input_is_scaled() -> None:
    x = _audio(4000)
    as_int = np.round(x * 32768).astype(np.int16)
    np.testing.assert_allclose(log_mel(as_int), log_mel(as_int.astype(np.float64) / 32768.0))


@pytest.mark.parametrize("seed", range(5))
def test_streaming_equals_whole_file_for_random_chunks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _audio(int(rng.integers(3000, 30000)), seed)
    whole = log_mel(x)
    stream = StreamingFeatures()
    parts, pos = [], 0
    while pos < len(x):
        size = int(rng.choice([0, 1, 7, 159, 160, 161, 399, 400, 1000, 4321]))
        parts.append(stream.feed(x[pos : pos + size]))
        pos += size
    streamed = np.concatenate(parts)
    assert streamed.dtype == np.float32
    assert np.array_equal(streamed, whole)
    assert stream.frames_emitted == len(whole)


def test_streaming_with_normalizer_matches_and_resets() -> None:
    x = _audio(5000)
    norm = Normalizer(mean=np.full(40, -3.0, dtype=np.float32), std=np.full(40, 2.0, dtype=np.float32))
    stream = StreamingFeatures(normalizer=norm)
    first = np.concatenate([stream.feed(x[:1234]), stream.feed(x[1234:])])
    np.testing.assert_array_equal(first, log_mel(x, normalizer=norm))
    stream.reset()
    np.testing.assert_array_equal(stream.feed(x), first)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="win_length"):
        FrontEndConfig(win_length=600, n_fft=512)
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 400)))
