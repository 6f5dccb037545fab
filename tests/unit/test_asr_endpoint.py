"""Endpointing with an adaptive noise floor, on constructed audio: bursts of "speech" in noise."""

from __future__ import annotations

import numpy as np
import pytest

from edgepack_runtime.endpoint import EndpointConfig, Endpointer, segments

RATE = 16000


def syllables(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like: band-limited noise whose loudness changes every 150 ms (syllables)."""
    n = int(seconds * RATE)
    x = np.convolve(rng.standard_normal(n), np.hanning(9), mode="same")
    envelope = np.repeat(rng.uniform(0.2, 1.0, size=n // 2400 + 1), 2400)[:n]
    return x * envelope


def commands_in_noise(
    snr_db: float, *, gap_s: float = 1.2, count: int = 4, seed: int = 0, noise: str = "white"
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    parts, bounds, pos = [np.zeros(RATE // 2)], [], RATE // 2
    for _ in range(count):
        burst = syllables(rng.uniform(0.8, 1.6), rng)
        burst *= 0.05 / np.sqrt(np.mean(burst**2))
        parts += [burst, np.zeros(int(gap_s * RATE))]
        bounds.append((pos, pos + len(burst)))
        pos += len(burst) + int(gap_s * RATE)
    x = np.concatenate(parts)
    n = rng.standard_normal(len(x))
    if noise == "hum":
        t = np.arange(len(x)) / RATE
        n = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 6)) + 0.05 * n
    x = x + n * (0.05 / 10 ** (snr_db / 20) / np.sqrt(np.mean(n**2)))
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16), bounds


def separated(found: list, bounds: list[tuple[int, int]]) -> int:
    """Commands covered by exactly one segment that covers no other command."""
    ok = 0
    for s, e in bounds:
        mine = [g for g in found if g.start < e and g.end > s]
        if len(mine) == 1 and mine[0].start <= s + 800 and mine[0].end >= e - 800:
            ok += sum(mine[0].start < e2 and mine[0].end > s2 for s2, e2 in bounds) == 1
    return ok


@pytest.mark.parametrize("snr_db", [30, 20, 10])
@pytest.mark.parametrize("noise", ["white", "hum"])
def test_four_commands_with_pauses_come_out_as_four_segments(snr_db: float, noise: str) -> None:
    x, bounds = commands_in_noise(snr_db, noise=noise, seed=snr_db)
    found = segments(x)
    assert len(found) == 4 and separated(found, bounds) == 4


def test_a_stream_cut_anyhow_gives_the_same_segments() -> None:
    x, _ = commands_in_noise(20, seed=5)
    ep = Endpointer()
    rng = np.random.default_rng(1)
    found, pos = [], 0
    while pos < len(x):
        size = int(rng.integers(1, 3000))
        found += ep.feed(x[pos : pos + size])
        pos += size
    assert found + ep.flush() == segments(x)


def test_steady_noise_alone_is_no_command() -> None:
    rng = np.random.default_rng(2)
    noise = np.round(rng.standard_normal(5 * RATE) * 0.01 * 32767).astype(np.int16)
    assert segments(noise) == []
    assert segments(np.zeros(3 * RATE, np.int16)) == []


def test_endless_sound_is_cut_at_the_longest_command() -> None:
    rng = np.random.default_rng(3)
    x = np.round(np.clip(syllables(12.0, rng) * 0.2, -1, 1) * 32767).astype(np.int16)
    found = segments(np.concatenate([np.zeros(RATE // 2, np.int16), x]), EndpointConfig(max_command_s=5.0))
    assert len(found) >= 2 and all(g.end - g.start <= 6 * RATE for g in found)


def test_a_pause_inside_a_command_shorter_than_the_end_silence_does_not_split_it() -> None:
    rng = np.random.default_rng(4)
    word = syllables(0.5, rng) * 0.05 / 0.3
    x = np.concatenate([np.zeros(RATE // 2), word, np.zeros(int(0.3 * RATE)), word, np.zeros(RATE)])
    x = x + rng.standard_normal(len(x)) * 0.001
    assert len(segments(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))) == 1
