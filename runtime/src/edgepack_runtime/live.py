"""``listen``: capture (a device or a file at real-time pace) -> ring -> endpointer -> ASR, with its counters.

The endpointer (:mod:`edgepack_runtime.endpoint`, an adaptive noise floor)
decides where a command starts and ends. At a start, a fresh stream
(features, GRU state, decoder) is fed the command's pre-roll and then each
block as it arrives (partial text); at its end the stream is finished and
the log-probabilities of the whole command are decoded into the grammar: a
command with its slots and confidence, or "no command" (reject). A model
without a grammar, or ``free_text``, gives the greedy CTC text instead.
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
from edgepack_runtime.audio import read_wav
from edgepack_runtime.endpoint import EndpointConfig, Endpointer
from edgepack_runtime.resample import StreamResampler

RING_SECONDS = 2.0
PIECE = 640

OnText = Callable[[str, str], None]  # (kind: "partial" | "final" | "rejected", text)


class Utterances:
    """The consumer's processing: resample, endpoint, stream each command, decode it."""

    def __init__(self, rec: Recognizer, *, src_rate: int, chunk_ms: float, on_text: OnText,
                 endpoint: EndpointConfig | None = None, free_text: bool = False) -> None:  # fmt: skip
        self.rec, self.chunk_ms, self.on_text = rec, chunk_ms, on_text
        self.free_text = free_text or rec.grammar is None
        self.resampler = StreamResampler(src_rate=src_rate, dst_rate=rec.rate)
        self.endpointer = Endpointer(endpoint or EndpointConfig())
        self.keep = round((self.endpointer.config.pre_roll_s + 0.1) * rec.rate)
        self.recent = np.zeros(0, dtype=np.float32)  # the last `keep` samples, for the pre-roll
        self.position = 0  # samples (at the model's rate) seen so far
        self.stream: AsrStream | None = None
        self.finals: list[str] = []
        self.commands: list[dict[str, Any]] = []
        self.chunk_ms_all: list[float] = []
        self.compute_seconds = 0.0

    def __call__(self, samples: np.ndarray) -> None:
        x = self.resampler(samples)
        # In pieces of 40 ms: a batch from the ring can hold seconds, and a command's
        # start and end (>= 0.45 s apart) must not fall in the same piece.
        for start in range(0, len(x), PIECE):
            self._piece(x[start : start + PIECE])

    def _piece(self, x: np.ndarray) -> None:
        ended = self.endpointer.feed(x)
        if self.stream is not None:
            self._feed(x)
        if ended and self.stream is not None:
            self.end()
        if self.stream is None and self.endpointer.in_speech:
            self.stream = self.rec.stream(chunk_ms=self.chunk_ms)
            start = max(self.endpointer.open_start, self.position - len(self.recent))
            self._feed(np.concatenate([self.recent, x])[start - (self.position - len(self.recent)) :])
        self.position += len(x)
        self.recent = np.concatenate([self.recent, x])[-self.keep :]

    def _feed(self, x: np.ndarray) -> None:
        assert self.stream is not None
        if self.stream.feed(x):
            self.on_text("partial", self.stream.text)

    def end(self) -> None:
        """Close the command being streamed (if any) and decode it."""
        if self.stream is None:
            return
        stream, self.stream = self.stream, None
        stream.finish()
        self.chunk_ms_all += stream.chunk_ms
        t0 = time.perf_counter()
        command = None if self.free_text else self.rec.command(stream.transcript().log_probs)
        self.compute_seconds += stream.compute_seconds + time.perf_counter() - t0
        if command is None:
            if stream.text:
                self.finals.append(stream.text)
                self.on_text("final", stream.text)
            return
        self.commands.append(command.as_dict() | {"free_text": stream.text})
        if command.accepted:
            self.finals.append(command.text)
            self.on_text("final", command.text)
        else:
            self.on_text("rejected", f"{command.text} (confidence {command.confidence:.2f})")


def listen(rec: Recognizer, *, file: Path | None, device: str | None, block: int, chunk_ms: float,
           seconds: float, on_text: OnText, speed: float = 1.0, free_text: bool = False,
           ring_seconds: float = RING_SECONDS) -> dict[str, Any]:  # fmt: skip
    """Run until the file ends (or ``seconds`` pass, or Ctrl-C); return the report."""
    audio = read_wav(file) if file is not None else None
    rate = audio.rate if audio is not None else rec.rate
    ring = capture.RingBuffer(int(rate * ring_seconds))
    counters = capture.Counters()
    callback = capture.make_callback(ring, counters)
    scheduling = capture.request_realtime()
    source: capture.FileSource | capture.DeviceSource
    if audio is not None:
        source = capture.FileSource(audio.samples, rate=rate, block=block, callback=callback, speed=speed)
    else:
        source = capture.open_device(device, rate=rate, block=block, callback=callback)
    work = Utterances(rec, src_rate=rate, chunk_ms=chunk_ms, on_text=on_text, free_text=free_text)
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
    out = report(counters, work, scheduling=scheduling, rate=rate, block=block, wall=time.perf_counter() - t0)
    out["ring_seconds"] = ring_seconds
    if isinstance(source, capture.DeviceSource):
        out["device"] = {"name": source.name, "backend": source.backend}
        if (out["delivery_x_realtime"] or 0) > 1.5:  # unpaced: sample times are not the device's clock
            out["capture_latency_ms"] = {"count": 0, "why": "the device is not paced (faster than real time)"}
    return out


def report(counters: capture.Counters, work: Utterances, *, scheduling: str, rate: int, block: int,
           wall: float) -> dict[str, Any]:  # fmt: skip
    c = asdict(counters)
    lat = c.pop("latency_ms")
    pace = counters.offered / rate / wall if wall > 0 else None
    return {
        "texts": work.finals,
        "commands": work.commands,
        "scheduling": scheduling,
        "rate": rate,
        "block": block,
        "block_ms": round(block / rate * 1e3, 3),
        "counters": c,
        "capture_latency_ms": _pcts(lat),
        "chunk_latency_ms": _pcts(work.chunk_ms_all),
        "audio_seconds": round(counters.offered / rate, 3),
        # Audio delivered per second of wall time: 1.0 for a microphone; far more for an unpaced
        # source (an ALSA file or null PCM), whose blocks come as fast as they are read.
        "delivery_x_realtime": round(pace, 3) if pace is not None else None,
        "rtf": work.compute_seconds / (counters.consumed / rate) if counters.consumed else None,
        "wall_seconds": round(wall, 3),
    }


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"count": len(values), "p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "max": round(float(max(values)), 3)}  # fmt: skip
