"""``debug-audio``: what a file is, and what the model would see of it (text and a PNG).

The PNG shows the model's log-mel spectrogram of the audio at the right rate
(resampled to the model's rate when needed) beside what the model would see
if the rate were ignored: the file's samples taken as the model's rate, or,
for a file already at that rate, the same audio captured at 44.1 kHz and fed
as it is. Written with zlib and struct alone: no plotting library on a board.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime.audio import Audio, Level, level
from edgepack_runtime.features import log_mel, num_frames
from edgepack_runtime.modelmeta import AsrMeta
from edgepack_runtime.resample import resample

WRONG_RATE = 44100  # the commonest rate a model trained at 16 kHz is wrongly fed
SCALE = 3  # pixels per mel bin
PANEL_WIDTH = 600  # pixels per spectrogram, whatever the audio's length: frames are averaged or repeated
AXIS_HEIGHT = 18  # the time axis under each panel: ticks and seconds
# 3x5 bitmaps of the characters the time axis needs (rows top to bottom, 3 bits each).
_GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "s": (0, 3, 6, 3, 6),
}  # fmt: skip
# A dark-to-bright ramp (black, purple, orange, pale yellow) for log-mel values.
_RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], np.float64)


def describe(audio: Audio, meta: AsrMeta, *, allow_resample: bool) -> dict[str, Any]:
    lv = level(audio.samples)
    seen = audio.rate if audio.rate == meta.sample_rate or not allow_resample else meta.sample_rate
    n = round(len(audio.samples) * seen / audio.rate)
    if audio.rate == meta.sample_rate:
        action = "fed as it is"
    elif allow_resample:
        action = f"resampled {audio.rate} -> {meta.sample_rate} Hz (soxr)"
    else:
        action = f"REFUSED: {audio.rate} Hz with --no-resample (the model expects {meta.sample_rate} Hz)"
    return {
        "rate": audio.rate,
        "channels": audio.channels,
        "mono_mix": audio.channels > 1,
        "sample_format": audio.sample_format,
        "samples": len(audio.samples),
        "duration_s": round(audio.seconds, 3),
        "peak_dbfs": round(Level.dbfs(lv.peak), 2),
        "rms_dbfs": round(Level.dbfs(lv.rms), 2),
        "clipped_samples": lv.clipped,
        "silent": lv.silent,
        "model_rate": meta.sample_rate,
        "model_sees": action,
        "model_frames": num_frames(n, meta.frontend),
    }


def spectrograms(audio: Audio, meta: AsrMeta) -> tuple[np.ndarray, np.ndarray, str]:
    """Log-mel at the right rate, and as the model would see it with the rate ignored (and a caption)."""
    right = resample(audio.samples, src_rate=audio.rate, dst_rate=meta.sample_rate)
    if audio.rate != meta.sample_rate:
        wrong, caption = audio.samples, f"{audio.rate} Hz samples fed as {meta.sample_rate} Hz"
    else:
        wrong = resample(audio.samples, src_rate=audio.rate, dst_rate=WRONG_RATE)
        caption = f"the same audio at {WRONG_RATE} Hz fed as {meta.sample_rate} Hz"
    return log_mel(right, meta.frontend), log_mel(wrong, meta.frontend), caption


def write_png(path: Path, right: np.ndarray, wrong: np.ndarray, *, hop_s: float = 0.01) -> None:
    """Two spectrograms side by side (time left to right, low frequencies at the bottom), each
    PANEL_WIDTH pixels wide with a time axis in seconds (``hop_s``: seconds per frame)."""
    lo, hi = np.percentile(np.concatenate([right, wrong]), [2, 99.5]) if right.size + wrong.size else (0, 1)
    panels = [
        np.concatenate([_colour(_fit((x - lo) / max(hi - lo, 1e-9))), _axis(len(x) * hop_s)], axis=0)
        for x in (right, wrong)
    ]
    height = max(p.shape[0] for p in panels)
    gap = np.full((height, 4 * SCALE, 3), 255, np.uint8)
    padded = [np.pad(p, ((height - p.shape[0], 0), (0, 0), (0, 0)), constant_values=255) for p in panels]
    _png(path, np.concatenate([padded[0], gap, padded[1]], axis=1))


def _fit(x: np.ndarray, width: int = PANEL_WIDTH) -> np.ndarray:
    """[frames, mels] -> [width, mels]: each column the mean of its frames (or a repeated frame)."""
    if len(x) == 0:
        return np.zeros((width, x.shape[1]))
    edges = np.linspace(0, len(x), width + 1)
    first = np.minimum(edges[:-1].astype(int), len(x) - 1)
    last = np.maximum(first + 1, np.ceil(edges[1:]).astype(int))
    sums = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    means: np.ndarray = (sums[last] - sums[first]) / (last - first)[:, None]
    return means


def _axis(seconds: float, width: int = PANEL_WIDTH) -> np.ndarray:
    """A white strip with a tick every 1, 2 or 5 x 10^k seconds (at most ~8) and their labels."""
    strip = np.full((AXIS_HEIGHT, width, 3), 255, np.uint8)
    if seconds <= 0:
        return strip
    raw = seconds / 8
    decade = 10.0 ** np.floor(np.log10(raw))
    step = float(min(m * decade for m in (1, 2, 5, 10) if m * decade >= raw))
    for k in range(int(seconds / step) + 1):
        col = min(width - 1, round(k * step / seconds * (width - 1)))
        strip[0:4, col] = 0
        label = f"{k * step:g}" + ("s" if k == 1 else "")
        wide = 8 * len(label)  # 3 pixels + 1 of space per character, zoomed twice
        _text(strip, label, row=6, col=min(max(0, col - wide // 2), width - wide))
    return strip


def _text(img: np.ndarray, text: str, *, row: int, col: int, zoom: int = 2) -> None:
    for i, ch in enumerate(text):
        for r, bits in enumerate(_GLYPHS.get(ch, (0,) * 5)):
            for c in range(3):
                if bits >> (2 - c) & 1:
                    y, x = row + r * zoom, col + (i * 4 + c) * zoom
                    img[y : y + zoom, x : x + zoom] = 0


def _colour(x: np.ndarray) -> np.ndarray:
    """[columns, mels] in [0, 1] -> RGB image [mels * SCALE, columns, 3]."""
    x = np.clip(x, 0.0, 1.0)[:, ::-1].T  # rows: high mel bins first
    pos = x * (len(_RAMP) - 1)
    i = np.minimum(pos.astype(int), len(_RAMP) - 2)
    frac = (pos - i)[..., None]
    rgb = (_RAMP[i] * (1 - frac) + _RAMP[i + 1] * frac).astype(np.uint8)
    return np.repeat(rgb, SCALE, axis=0)


def _png(path: Path, rgb: np.ndarray) -> None:
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))  # filter 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png)
    tmp.replace(path)
