"""Endpointing: where commands start and end in a stream, with an adaptive noise floor.

Per 10 ms frame (20 ms Hann window) the power in 16 bands between 150 Hz and
6 kHz is compared with each band's noise floor, which follows the band's
power down at once and up slowly (+2 dB/s; a minimum-statistics tracker), so
steady noise of any colour (white, pink, hum, a fan) stays below it while
speech, which changes from syllable to syllable, rises above it. A frame is
speech when its mean excess over the floor is above ``on_db``; a command
starts after ``min_speech_s`` of speech frames (with ``pre_roll_s`` of audio
before it) and ends after ``end_silence_s`` below ``off_db``. The floor does
not rise during speech, so a long command does not raise it.

Babble (other people talking) is not steady, so it rises above any floor. The
talker's own level separates it: a frame more than ``end_below_db`` under the
loudest frame of the command counts as a pause, and a new command has to come
within ``start_below_db`` of the last one's loudest (which decays by
``decay_db_s`` a second). At 20 dB SNR and more this keeps babble between
commands out; at 10 dB it is only partly kept out (bench/asr.py).

:class:`Endpointer` is streaming (feed chunks of any size, events come out
as soon as they are decided) and works on samples at 16 kHz; the same
frames give the same events however the stream is cut.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

RATE = 16000
HOP = 160
WIN = 320
# At least 200 Hz (4 FFT bins) per band: a band of one bin fluctuates too much to track.
BANDS = np.array([200, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 3600, 4300, 5200, 6500.0])
TOP_BANDS = 6  # speech is concentrated in a few bands at a time: average the most excited


@dataclass(frozen=True)
class EndpointConfig:
    on_db: float = 9.0
    off_db: float = 6.5
    min_speech_s: float = 0.08
    end_silence_s: float = 0.45
    pre_roll_s: float = 0.25
    post_roll_s: float = 0.2
    floor_rise_db_s: float = 2.0
    max_command_s: float = 8.0
    # Relative to the talker: a frame this far under the command's loudest is a pause, and a
    # new command must come within start_below_db of the last one's loudest (less decay_db_s
    # for each second since): babble 20 dB under the talker is not a command of its own.
    end_below_db: float = 14.0
    start_below_db: float = 20.0
    decay_db_s: float = 3.0


@dataclass(frozen=True)
class Segment:
    start: int  # sample index in the stream (pre-roll included)
    end: int  # sample index, exclusive (post-roll included)

    @property
    def seconds(self) -> tuple[float, float]:
        return self.start / RATE, self.end / RATE


def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(WIN, 1 / RATE)
    m = np.zeros((len(freqs), len(BANDS) - 1))
    for b, (lo, hi) in enumerate(itertools.pairwise(BANDS)):
        m[(freqs >= lo) & (freqs < hi), b] = 1.0
    return m


@dataclass
class Endpointer:
    config: EndpointConfig = field(default_factory=EndpointConfig)

    def __post_init__(self) -> None:
        self._window = np.hanning(WIN)
        self._bands = _band_matrix()
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0)
        self._frame = 0  # frames analysed so far
        self._floor: np.ndarray | None = None
        self._smooth: np.ndarray | None = None
        self._level = -100.0  # dB of the smoothed frame (all bands)
        self._peak = -100.0  # loudest frame of the command now open
        self._last_peak = -np.inf  # loudest frame of the last command, decayed since it ended
        self._in_speech = False
        self._speech_run = 0
        self._silence_run = 0
        self._start_frame = 0
        self.excess: list[float] = []  # mean dB over the floor, per frame (for debugging and tests)

    def _excess(self, frame: np.ndarray) -> float:
        power = (np.abs(np.fft.rfft(frame * self._window)) ** 2) @ self._bands + 1e-10
        self._smooth = power if self._smooth is None else 0.5 * self._smooth + 0.5 * power
        db = 10 * np.log10(self._smooth)
        self._level = float(10 * np.log10(self._smooth.sum()))
        if self._floor is None:
            self._floor = db.copy()
        # Down fast, up slowly and never during speech: the floor sits near a low
        # percentile of each band's level, not at its minimum (which noise undershoots).
        up = 0.0 if self._in_speech else self.config.floor_rise_db_s * HOP / RATE
        self._floor = np.where(
            db < self._floor,
            self._floor + 0.3 * (db - self._floor),
            self._floor + np.minimum(up, 0.05 * (db - self._floor)),
        )
        excess = np.sort(np.clip(db - self._floor, 0.0, 40.0))[-TOP_BANDS:]
        return float(np.mean(excess))

    def feed(self, samples: np.ndarray) -> list[Segment]:
        """Samples (float in [-1, 1] or int16) at 16 kHz; returns the commands that ended."""
        x = np.asarray(samples)
        x = x.astype(np.float64) / 32768.0 if x.dtype == np.int16 else x.astype(np.float64)
        self._pending = np.concatenate([self._pending, x])
        done: list[Segment] = []
        while len(self._pending) >= WIN:
            segment = self._step(self._excess(self._pending[:WIN]))
            self._pending = self._pending[HOP:]
            self._frame += 1
            if segment is not None:
                done.append(segment)
        return done

    def _step(self, excess: float) -> Segment | None:
        c = self.config
        self.excess.append(excess)
        if not self._in_speech:
            self._last_peak -= c.decay_db_s * HOP / RATE
            loud_enough = self._level > self._last_peak - c.start_below_db
            self._speech_run = self._speech_run + 1 if excess > c.on_db and loud_enough else 0
            if self._speech_run >= _frames(c.min_speech_s):
                self._in_speech, self._silence_run, self._peak = True, 0, self._level
                self._start_frame = self._frame - self._speech_run + 1
            return None
        self._peak = max(self._peak, self._level)
        quiet = excess < c.off_db or self._level < self._peak - c.end_below_db
        self._silence_run = self._silence_run + 1 if quiet else 0
        too_long = self._frame - self._start_frame >= _frames(c.max_command_s)
        if self._silence_run >= _frames(c.end_silence_s) or too_long:
            return self._close(self._frame - self._silence_run + 1)
        return None

    def _close(self, end_frame: int) -> Segment:
        start = self.open_start
        self._in_speech, self._speech_run, self._silence_run = False, 0, 0
        self._last_peak = self._peak
        return Segment(start, end_frame * HOP + WIN + round(self.config.post_roll_s * RATE))

    def flush(self) -> list[Segment]:
        """End of stream: close a command still open."""
        if not self._in_speech:
            return []
        return [self._close(self._frame - self._silence_run)]

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def open_start(self) -> int:
        """Sample index where the command now open starts (its pre-roll included)."""
        return max(0, self._start_frame * HOP - round(self.config.pre_roll_s * RATE))


def _frames(seconds: float) -> int:
    return max(1, round(seconds * RATE / HOP))


def segments(samples: np.ndarray, config: EndpointConfig | None = None) -> list[Segment]:
    """All commands of a whole signal at 16 kHz."""
    ep = Endpointer(config or EndpointConfig())
    found = ep.feed(samples)
    return found + ep.flush()
