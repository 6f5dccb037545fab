"""Log-mel front end in numpy: the one front end for training and the board.

Framing is causal and unpadded (no ``center=True``): frame ``i`` covers
samples ``[i * hop, i * hop + win)``, so a stream of samples gives the same
frames however it is cut into chunks, and a partial frame at the end is
dropped by both :func:`log_mel` and :class:`StreamingFeatures`.

Per frame: periodic Hann window of ``win_length`` samples, zero-padded to
``n_fft``, power spectrum, triangular mel filters on the HTK mel scale
(``mel = 2595 * log10(1 + hz / 700)``, unnormalised peaks of 1.0), then
``log(mel + log_floor)``. Normalisation uses a fixed global mean and std
measured on the training set (stored with the model), never per-utterance
statistics, so a frame's value does not depend on audio that has not arrived.

Spectra are computed in float64 one frame row at a time with the same code
path for whole files and streams, so both give bit-identical float32 frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FrontEndConfig:
    """Parameters of the log-mel front end (all in samples or Hz)."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"win_length {self.win_length} must be in (0, n_fft={self.n_fft}]")
        if not 0 < self.hop_length <= self.win_length:
            raise ValueError(f"hop_length {self.hop_length} must be in (0, win_length]")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= {self.sample_rate / 2}")


@dataclass(frozen=True)
class Normalizer:
    """Fixed global per-bin mean and standard deviation."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        normalised: np.ndarray = ((feats - self.mean) / self.std).astype(np.float32)
        return normalised


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(config: FrontEndConfig) -> np.ndarray:
    """Triangular filters, shape ``[n_fft // 2 + 1, n_mels]``, float64."""
    n_bins = config.n_fft // 2 + 1
    bin_hz = np.arange(n_bins) * config.sample_rate / config.n_fft
    edges = mel_to_hz(np.linspace(hz_to_mel(config.f_min), hz_to_mel(config.f_max), config.n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    weights: np.ndarray = np.maximum(0.0, np.minimum(rising, falling))
    return weights


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window (the STFT convention)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def num_frames(n_samples: int, config: FrontEndConfig) -> int:
    if n_samples < config.win_length:
        return 0
    return 1 + (n_samples - config.win_length) // config.hop_length


def as_float_audio(samples: np.ndarray) -> np.ndarray:
    """Mono samples as float64 in [-1, 1]; int16 input is scaled by 1/32768."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float64) / 32768.0
    return samples.astype(np.float64)


class _Spectra:
    """Window, filterbank and the per-frame computation shared by both APIs."""

    def __init__(self, config: FrontEndConfig) -> None:
        self.config = config
        self.window = hann_window(config.win_length)
        self.filters = mel_filterbank(config)

    def __call__(self, audio: np.ndarray, n: int) -> np.ndarray:
        """Log-mel of the first ``n`` frames of ``audio`` (float64), as float32."""
        cfg = self.config
        out = np.empty((n, cfg.n_mels), dtype=np.float32)
        for i in range(n):
            # One row at a time: the result of a frame cannot depend on how many
            # frames are computed together (BLAS kernels may block by rows).
            frame = audio[i * cfg.hop_length : i * cfg.hop_length + cfg.win_length] * self.window
            power = np.abs(np.fft.rfft(frame, n=cfg.n_fft)) ** 2
            out[i] = np.log(power @ self.filters + cfg.log_floor)
        return out


def log_mel(
    samples: np.ndarray,
    config: FrontEndConfig | None = None,
    *,
    normalizer: Normalizer | None = None,
) -> np.ndarray:
    """Log-mel features of a whole utterance, shape ``[frames, n_mels]`` float32."""
    config = config or FrontEndConfig()
    audio = as_float_audio(samples)
    feats = _Spectra(config)(audio, num_frames(len(audio), config))
    return normalizer(feats) if normalizer is not None else feats


@dataclass
class StreamingFeatures:
    """Incremental :func:`log_mel`: feed chunks of any size, get the new frames.

    The concatenation of everything :meth:`feed` returns equals
    ``log_mel(all_samples)`` exactly.
    """

    config: FrontEndConfig = field(default_factory=FrontEndConfig)
    normalizer: Normalizer | None = None

    def __post_init__(self) -> None:
        self._spectra = _Spectra(self.config)
        self._pending = np.zeros(0, dtype=np.float64)
        self.frames_emitted = 0

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the frames that became complete, ``[n, n_mels]``."""
        self._pending = np.concatenate([self._pending, as_float_audio(samples)])
        n = num_frames(len(self._pending), self.config)
        feats = self._spectra(self._pending, n)
        self._pending = self._pending[n * self.config.hop_length :]
        self.frames_emitted += n
        return self.normalizer(feats) if self.normalizer is not None else feats

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)
        self.frames_emitted = 0
