"""Explicit resampling to the model's rate (soxr), and the sample-rate guard.

A model's rate travels with it (ONNX metadata ``edgepack.sample_rate``).
Audio at another rate is resampled here, with a log line saying so, or
refused when resampling is disabled: never fed as it is. 44.1 kHz audio
read as 16 kHz plays 2.76 times slower and an octave and a half lower; the
model then hears nothing it was trained on (docs/speech.md has the WER).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import soxr

from edgepack_runtime.audio import Audio, AudioError

log = logging.getLogger("edgepack_runtime")
QUALITY = "HQ"  # soxr's high quality: 20-bit precision, flat to 95 % of Nyquist


def resample(samples: np.ndarray, *, src_rate: int, dst_rate: int) -> np.ndarray:
    """Mono float32 ``samples`` from ``src_rate`` to ``dst_rate`` Hz."""
    if src_rate == dst_rate:
        return samples.astype(np.float32, copy=False)
    out = soxr.resample(samples.astype(np.float32, copy=False), src_rate, dst_rate, quality=QUALITY)
    return np.asarray(out, dtype=np.float32)


def conform(audio: Audio, *, rate: int, allow_resample: bool, source: str) -> Audio:
    """``audio`` at the model's ``rate``: as it is, resampled (and logged), or refused."""
    if audio.rate == rate:
        return audio
    if not allow_resample:
        raise AudioError(
            f"{source}: sample rate is {audio.rate} Hz but the model expects {rate} Hz, and resampling is "
            "disabled (--no-resample); resample the file or drop --no-resample."
        )
    log.info("%s: %d Hz resampled to the model's %d Hz (soxr %s)", source, audio.rate, rate, QUALITY)
    return replace(audio, samples=resample(audio.samples, src_rate=audio.rate, dst_rate=rate), rate=rate)


class StreamResampler:
    """Block-by-block resampling of a live stream (soxr keeps the filter state between blocks)."""

    def __init__(self, *, src_rate: int, dst_rate: int) -> None:
        self.src_rate, self.dst_rate = src_rate, dst_rate
        self._stream = (
            None if src_rate == dst_rate else soxr.ResampleStream(src_rate, dst_rate, 1, "float32", QUALITY)
        )

    def __call__(self, block: np.ndarray, *, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        return np.asarray(self._stream.resample_chunk(block.astype(np.float32, copy=False), last=last))
