"""Audio input checks: read a WAV and refuse what the model must not see."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """Audio the model cannot take as it is (rate, channels, format)."""


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 in [-1, 1], shape (n,) mono
    rate: int
    channels: int  # channels in the file, before the mono mix


def read_wav(path: Path) -> Audio:
    """Read 16-bit or 32-bit integer PCM WAV; mix to mono float32."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: not a PCM WAV file ({exc}).") from None
    dtypes = {2: np.int16, 4: np.int32}
    if width not in dtypes:
        raise AudioError(f"{path}: {8 * width}-bit samples are not supported; use 16-bit PCM.")
    ints = np.frombuffer(frames, dtype=dtypes[width]).reshape(-1, channels)
    scale = float(np.iinfo(dtypes[width]).max) + 1.0
    mono = (ints.astype(np.float32) / scale).mean(axis=1, dtype=np.float32)
    return Audio(samples=mono, rate=rate, channels=channels)


def require_rate(audio: Audio, *, expected: int, source: str) -> None:
    """Never feed audio at another rate silently: the model would see wrong features."""
    if audio.rate != expected:
        raise AudioError(
            f"{source}: sample rate is {audio.rate} Hz but the model expects {expected} Hz; "
            "resample it first (a wrong rate shifts every frequency the model sees)."
        )
