"""Acoustic augmentation of clean synthetic speech, all numpy + soxr, all seeded.

The order follows the physical chain: the talker (speed perturbation, which
moves pitch and tempo together), the room (reverberation), the microphone
(a random smooth frequency response, then the level), the noise at the
microphone (white, pink, babble, mains hum; SNR 0-30 dB) and the channel
(telephone band or a plain 8 kHz link, resampled back to 16 kHz the way the
runtime resamples any input rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import soxr

SAMPLE_RATE = 16000
Noise = Literal["none", "white", "pink", "babble", "hum"]
Channel = Literal["wide", "telephone", "8k"]


@dataclass(frozen=True)
class Recipe:
    speed: float = 1.0  # 1.1 = 10 % faster and higher
    rt60_s: float = 0.0  # 0 = no room
    colour_db: tuple[float, ...] = ()  # gains at log-spaced frequencies, () = flat
    rms_db: float = -26.0  # speech level, dBFS
    noise: Noise = "none"
    snr_db: float = 30.0
    channel: Channel = "wide"
    lead_s: float = 0.2
    tail_s: float = 0.2


def draw_recipe(rng: np.random.Generator, *, strength: float = 1.0) -> Recipe:
    """A training recipe; ``strength`` 0 gives clean speech at a random level."""
    on = lambda p: bool(rng.random() < p * strength)  # noqa: E731
    noise = rng.choice(["white", "pink", "babble", "hum"], p=[0.25, 0.3, 0.3, 0.15]) if on(0.8) else "none"
    return Recipe(
        speed=float(rng.uniform(0.88, 1.12)) if on(0.6) else 1.0,
        rt60_s=float(rng.uniform(0.15, 0.8)) if on(0.3) else 0.0,
        colour_db=tuple(float(g) for g in rng.uniform(-8, 8, size=6)) if on(0.5) else (),
        rms_db=float(rng.uniform(-40.0, -12.0)),
        noise=str(noise),  # type: ignore[arg-type]
        snr_db=float(rng.uniform(0.0, 30.0) if rng.random() < 0.5 else rng.uniform(10.0, 30.0)),
        channel=str(rng.choice(["wide", "telephone", "8k"], p=[0.75, 0.15, 0.1])) if on(1.0) else "wide",  # type: ignore[arg-type]
        lead_s=float(rng.uniform(0.05, 0.4)),
        tail_s=float(rng.uniform(0.05, 0.3)),
    )


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2) + 1e-20))


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves with it), like Kaldi's speed perturbation."""
    if factor == 1.0:
        return x
    return soxr.resample(x, SAMPLE_RATE, SAMPLE_RATE / factor)


def room_impulse(rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise tail after a direct-path spike (60 dB down at ``rt60_s``)."""
    n = max(1, int(rt60_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # the first reflections arrive a few ms late
    direct_to_reverb = 10 ** (rng.uniform(-3, 12) / 20)
    tail *= 1.0 / (direct_to_reverb * np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]


def colour(x: np.ndarray, gains_db: tuple[float, ...]) -> np.ndarray:
    """A smooth microphone response: gains at log-spaced points 100 Hz..7 kHz, interpolated."""
    if not gains_db:
        return x
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    points = np.geomspace(100.0, 7000.0, len(gains_db))
    gain = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(points), np.asarray(gains_db))
    return np.fft.irfft(spectrum * 10 ** (gain / 20), len(x))


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f power noise by shaping white noise's spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    return np.fft.irfft(spectrum / np.sqrt(freqs), n=n)


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and its harmonics with random levels, plus a little hiss."""
    t = np.arange(n) / SAMPLE_RATE
    base = 50.0 if rng.random() < 0.5 else 60.0
    out = sum(
        rng.uniform(0.05, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
        for k in range(1, 9)
    )
    return np.asarray(out) + 0.02 * rng.standard_normal(n)


def noise(kind: Noise, n: int, rng: np.random.Generator, babble: np.ndarray | None) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        return pink(n, rng)
    if kind == "hum":
        return hum(n, rng)
    if babble is None or len(babble) < 2:
        raise ValueError("babble noise needs a babble bank (speech.synth.babble_bank)")
    start = int(rng.integers(0, len(babble)))
    return np.resize(np.roll(babble, -start), n)


def channel(x: np.ndarray, kind: Channel) -> np.ndarray:
    """Telephone band (300-3400 Hz) or a plain 8 kHz link, back at 16 kHz."""
    if kind == "wide":
        return x
    if kind == "telephone":
        spectrum = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
        spectrum[(freqs < 300) | (freqs > 3400)] = 0.0
        x = np.fft.irfft(spectrum, len(x))
    return soxr.resample(soxr.resample(x, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)[: len(x)]


def apply(
    speech: np.ndarray, recipe: Recipe, rng: np.random.Generator, *, babble: np.ndarray | None = None
) -> np.ndarray:
    """Clean 16 kHz float speech -> the recorded int16 signal."""
    x = speed_perturb(speech, recipe.speed)
    if recipe.rt60_s > 0:
        x = convolve(x, room_impulse(recipe.rt60_s, rng))
    x = colour(x, recipe.colour_db)
    active = x[np.abs(x) > 1e-4 * np.abs(x).max()] if x.size else x
    x = x * (10 ** (recipe.rms_db / 20) / rms(active if active.size else x))
    pad = [np.zeros(round(s * SAMPLE_RATE)) for s in (recipe.lead_s, recipe.tail_s)]
    x = np.concatenate([pad[0], x, pad[1]])
    if recipe.noise != "none":
        n = noise(recipe.noise, len(x), rng, babble)
        x = x + n * (10 ** ((recipe.rms_db - recipe.snr_db) / 20) / rms(n))
    x = channel(x, recipe.channel)
    # A recorder's gain control keeps peaks below full scale; clipping is not modelled.
    x = x * min(1.0, 0.99 / (np.abs(x).max() + 1e-12))
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
