"""``listen``: capture (a device or a file at real-time pace) -> ring -> ASR stream, with its counters.

An utterance ends after ``END_SILENCE_S`` of silence following some text:
its final text is emitted and a fresh stream (features, GRU state, decoder)
starts for the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime import capture
from edgepack_runtime.asr import AsrStream, Recognizer
from edgepack_runtime.audio import SILENCE_DBFS, Level, level, read_wav
from edgepack_runtime.resample import StreamResampler

END_SILENCE_S = 0.8
RING_SECONDS = 2.0

OnText = Callable[[str, str], None]  # (kind: "partial" | "final", text so far)


class Utterances:
    """The consumer's processing: resample, stream, end an utterance on silence."""

    def __init__(self, rec: Recognizer, *, src_rate: int, chunk_ms: float, on_text: OnText) -> None:
        self.rec, self.chunk_ms, self.on_text = rec, chunk_ms, on_text
        self.resampler = StreamResampler(src_rate=src_rate, dst_rate=rec.rate)
        self.stream: AsrStream = rec.stream(chunk_ms=chunk_ms)
        self.silent_samples = 0
        self.finals: list[str] = []
        self.chunk_ms_all: list[float] = []
        self.compute_seconds = 0.0

    def __call__(self, samples: np.ndarray) -> None:
        x = self.resampler(samples)
        if self.stream.feed(x):
            self.on_text("partial", self.stream.text)
        quiet = Level.dbfs(level(x).peak) < SILENCE_DBFS + 20  # -40 dBFS: a pause, not speech
        self.silent_samples = self.silent_samples + len(x) if quiet else 0
        if self.stream.text and self.silent_samples >= END_SILENCE_S * self.rec.rate:
            self.end()

    def end(self) -> None:
        self.stream.finish()
        if self.stream.text:
            self.finals.append(self.stream.text)
            self.on_text("final", self.stream.text)
        self.chunk_ms_all += self.stream.chunk_ms
        self.compute_seconds += self.stream.compute_seconds
        self.stream = self.rec.stream(chunk_ms=self.chunk_ms)
        self.silent_samples = 0


def listen(rec: Recognizer, *, file: Path | None, device: str | None, block: int, chunk_ms: float,
           seconds: float, on_text: OnText, speed: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Run until the file ends (or ``seconds`` pass, or Ctrl-C); return the report."""
    audio = read_wav(file) if file is not None else None
    rate = audio.rate if audio is not None else rec.rate
    ring = capture.RingBuffer(int(rate * RING_SECONDS))
    counters = capture.Counters()
    callback = capture.make_callback(ring, counters)
    scheduling = capture.request_realtime()
    source: capture.FileSource | capture.DeviceSource
    if audio is not None:
        source = capture.FileSource(audio.samples, rate=rate, block=block, callback=callback, speed=speed)
    else:
        source = capture.open_device(device, rate=rate, block=block, callback=callback)
    work = Utterances(rec, src_rate=rate, chunk_ms=chunk_ms, on_text=on_text)
    consumer = capture.Consumer(ring, counters, work, rate=rate, max_batch=ring.capacity)
    source.start()  # its thread (or PortAudio's) inherits the real-time policy requested above
    t0 = getattr(source, "t0", 0.0) or time.perf_counter()
    consumer.start(t0)  # lowers its own priority: inference must not starve the audio thread
    capture.lower_priority()  # the main thread only waits
    try:
        while not source.finished() and not (seconds and time.perf_counter() - t0 >= seconds):
            time.sleep(0.02)
    except KeyboardInterrupt:
        pass
    finally:
        source.stop()
        consumer.stop()
    work.end()
    return report(
        counters, work, scheduling=scheduling, rate=rate, block=block, wall=time.perf_counter() - t0
    )


def report(counters: capture.Counters, work: Utterances, *, scheduling: str, rate: int, block: int,
           wall: float) -> dict[str, Any]:  # fmt: skip
    c = asdict(counters)
    lat = c.pop("latency_ms")
    return {
        "texts": work.finals,
        "scheduling": scheduling,
        "rate": rate,
        "block": block,
        "block_ms": round(block / rate * 1e3, 3),
        "counters": c,
        "capture_latency_ms": _pcts(lat),
        "chunk_latency_ms": _pcts(work.chunk_ms_all),
        "audio_seconds": round(counters.offered / rate, 3),
        "rtf": work.compute_seconds / (counters.consumed / rate) if counters.consumed else None,
        "wall_seconds": round(wall, 3),
    }


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"count": len(values), "p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "max": round(float(max(values)), 3)}  # fmt: skip
