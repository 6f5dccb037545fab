"""Audio input checks: read a WAV and refuse what the model must not see.

Every check names the file and what is wrong in one line. Reading mixes
channels to mono (the models are mono) and says so in :attr:`Audio.channels`;
:func:`level` measures peak, RMS and clipping, and :func:`require_signal`
refuses empty or silent input before any inference is wasted on it.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SILENCE_DBFS = -60.0  # a peak below this is no signal (16-bit dither alone is ~ -90 dBFS)
CLIP_LEVEL = 0.999  # a sample this close to full scale was probably clipped
_WAVE_FORMATS = {3: "32-bit float (IEEE)", 6: "A-law", 7: "mu-law", 0xFFFE: "extensible"}


class AudioError(ValueError):
    """Audio the model cannot take as it is (rate, channels, format)."""


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 in [-1, 1], shape (n,) mono
    rate: int
    channels: int  # channels in the file, before the mono mix
    sample_format: str = "float32"  # in the file: int16, int32, uint8, int24

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


@dataclass(frozen=True)
class Level:
    peak: float  # largest |sample|, full scale = 1
    rms: float
    clipped: int  # samples at or above CLIP_LEVEL

    @staticmethod
    def dbfs(value: float) -> float:
        return 20.0 * math.log10(value) if value > 0 else -math.inf

    @property
    def silent(self) -> bool:
        return self.dbfs(self.peak) < SILENCE_DBFS


def read_wav(path: Path) -> Audio:
    """Read 8-, 16-, 24- or 32-bit integer PCM WAV; mix to mono float32.

    The container is checked, not trusted: a data chunk that ends before the
    length its header claims (a recorder killed mid-write), or mid-sample, or
    mid-frame, is refused with both lengths, never read as shorter audio.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            claimed = wav.getnframes()
            frames = wav.readframes(claimed)
    except wave.Error as exc:
        raise AudioError(f"{path}: unsupported audio format: {_wave_error(exc)}") from None
    except EOFError:
        raise AudioError(f"{path}: not a WAV file (it ends before its header does).") from None
    except (RuntimeError, struct.error, ValueError, OverflowError, MemoryError) as exc:  # damaged chunks
        raise AudioError(f"{path}: not a valid WAV file ({type(exc).__name__} in its chunks).") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a folder, not a WAV file.") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot be read: {exc.strerror or exc}.") from None
    if rate <= 0 or channels <= 0 or width <= 0:
        header = f"{rate} Hz, {channels} channel(s), {width}-byte samples"
        raise AudioError(f"{path}: the WAV header says {header}.")
    frame_bytes = width * channels
    if len(frames) % frame_bytes:
        part = "a sample" if len(frames) % width else "a frame (not every channel has its sample)"
        raise AudioError(
            f"{path}: the audio data ends in the middle of {part} ({len(frames)} bytes, frames of "
            f"{frame_bytes}): the file is damaged or truncated."
        )
    if len(frames) < claimed * frame_bytes:
        have, want = len(frames) // frame_bytes / rate, claimed / rate
        raise AudioError(
            f"{path}: truncated: the header promises {want:.3f} s of audio, the data ends at {have:.3f} s. "
            "Re-record it, or keep what is there: sox --ignore-length in.wav out.wav"
        )
    ints, kind = _decode(frames, width, path)
    mono = ints.reshape(-1, channels).mean(axis=1, dtype=np.float64).astype(np.float32)
    return Audio(samples=mono, rate=rate, channels=channels, sample_format=kind)


def _decode(frames: bytes, width: int, path: Path) -> tuple[np.ndarray, str]:
    """PCM bytes as float32 in [-1, 1), and the sample format's name."""
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        return (np.frombuffer(frames, np.uint8).astype(np.float32) - 128.0) / 128.0, "uint8"
    if width == 3:
        raw = np.frombuffer(frames, np.uint8).reshape(-1, 3)
        ints = raw[:, 0].astype(np.int32) | raw[:, 1].astype(np.int32) << 8 | raw[:, 2].astype(np.int32) << 16
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        return (ints / float(1 << 23)).astype(np.float32), "int24"
    if width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        scale = float(np.iinfo(dtype).max) + 1.0
        return (np.frombuffer(frames, dtype).astype(np.float64) / scale).astype(np.float32), dtype.__name__
    raise AudioError(f"{path}: {8 * width}-bit samples are not supported; use 16-bit PCM.")


def _wave_error(exc: wave.Error) -> str:
    text = str(exc)
    if text.startswith("unknown format: "):
        code = int(text.rsplit(" ", 1)[1])
        name = _WAVE_FORMATS.get(code, f"format tag {code}")
        return f"{name} WAV; edgepack reads integer PCM WAV (convert: sox in.wav -e signed -b 16 out.wav)."
    return f"{text} (edgepack reads integer PCM WAV files)."


def level(samples: np.ndarray) -> Level:
    if samples.size == 0:
        return Level(0.0, 0.0, 0)
    x = np.abs(samples.astype(np.float64))
    return Level(float(x.max()), float(np.sqrt(np.mean(x**2))), int(np.count_nonzero(x >= CLIP_LEVEL)))


def require_signal(audio: Audio, *, source: str) -> Level:
    """Refuse empty and silent audio: a transcript of nothing is a wrong answer, not an empty one."""
    if audio.samples.size == 0:
        raise AudioError(f"{source}: the file has no samples (empty audio).")
    lv = level(audio.samples)
    if lv.silent:
        raise AudioError(
            f"{source}: the audio is silent (peak {Level.dbfs(lv.peak):.1f} dBFS, below "
            f"{SILENCE_DBFS:g} dBFS); check the microphone or the file."
        )
    return lv


def require_rate(audio: Audio, *, expected: int, source: str) -> None:
    """Never feed audio at another rate silently: the model would see wrong features."""
    if audio.rate != expected:
        raise AudioError(
            f"{source}: sample rate is {audio.rate} Hz but the model expects {expected} Hz; "
            "resample it first (a wrong rate shifts every frequency the model sees)."
        )
