"""Capture: ring buffer, the callback, a file at real-time pace, slow consumers, bad chunks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgepack_runtime import capture
from edgepack_runtime.asr import Recognizer
from edgepack_runtime.audio import read_wav
from edgepack_runtime.live import listen

RATE = 16000


def test_ring_buffer_wraps_and_drops_whole_blocks_when_full() -> None:
    ring = capture.RingBuffer(8)
    out = np.zeros(8, np.float32)
    assert ring.write(np.arange(5, dtype=np.float32)) and ring.take(out[:3]) == 3
    assert ring.write(np.arange(5, 10, dtype=np.float32))  # wraps around the end
    assert not ring.write(np.ones(2, np.float32)) and ring.free() == 1  # no room: nothing written
    assert ring.take(out) == 7 and list(out[:7]) == [3, 4, 5, 6, 7, 8, 9]


def test_callback_counts_overruns_and_dropouts() -> None:
    ring, counters = capture.RingBuffer(4), capture.Counters()
    callback = capture.make_callback(ring, counters)

    class Flags:
        input_overflow = True

    callback(np.ones((3, 1), np.float32), 3, None, Flags())
    callback(np.ones((3, 1), np.float32), 3, None, None)  # only 1 free: dropped
    assert (counters.callbacks, counters.offered, counters.overruns) == (2, 6, 1)
    assert (counters.dropouts, counters.dropped, counters.max_fill) == (1, 3, 3)


def _run(
    samples: np.ndarray,
    *,
    block: int,
    ring_size: int,
    process: Callable[[np.ndarray], None],
    speed: float = 1.0,
) -> capture.Counters:
    ring, counters = capture.RingBuffer(ring_size), capture.Counters()
    callback = capture.make_callback(ring, counters)
    source = capture.FileSource(samples, rate=RATE, block=block, callback=callback, speed=speed)
    consumer = capture.Consumer(ring, counters, process, rate=RATE, max_batch=ring_size)
    source.start()
    consumer.start(source.t0)
    while not source.finished():
        time.sleep(0.005)
    consumer.stop()
    return counters


def test_file_source_runs_at_real_time_pace_and_loses_nothing() -> None:
    samples = np.random.default_rng(0).standard_normal(RATE // 2).astype(np.float32)  # 0.5 s
    got: list[np.ndarray] = []
    threads: set[str] = set()

    def process(x: np.ndarray) -> None:
        threads.add(threading.current_thread().name)
        got.append(x)

    t0 = time.perf_counter()
    counters = _run(samples, block=256, ring_size=RATE, process=process)
    assert time.perf_counter() - t0 >= 0.45  # paced like a sound card, not as fast as possible
    assert np.array_equal(np.concatenate(got), samples)
    assert counters.dropouts == 0 and counters.consumed == counters.offered == len(samples)
    assert threads == {"asr-consumer"} and counters.callbacks == -(-len(samples) // 256)
    assert (
        counters.latency_ms and min(counters.latency_ms) >= 256 / RATE * 1e3 * 0.9
    )  # a block waits its length


def test_a_slow_consumer_causes_counted_dropouts_never_hidden_ones() -> None:
    samples = np.ones(RATE // 2, np.float32)

    def slow(x: np.ndarray) -> None:
        time.sleep(2 * len(x) / RATE)  # inference at half real-time speed

    counters = _run(samples, block=256, ring_size=1024, process=slow)
    assert counters.dropouts > 0 and counters.dropped == 256 * counters.dropouts
    assert counters.offered == counters.consumed + counters.dropped == len(samples)


def test_the_stream_keeps_running_after_a_bad_chunk() -> None:
    calls: list[int] = []

    def flaky(x: np.ndarray) -> None:
        calls.append(len(x))
        if len(calls) == 2:
            raise ValueError("bad chunk")

    samples = np.ones(RATE // 4, np.float32)
    counters = _run(samples, block=512, ring_size=RATE, process=flaky, speed=2.0)
    assert counters.chunk_errors == 1 and counters.last_error == "ValueError: bad chunk"
    assert len(calls) > 2 and sum(calls) == counters.consumed == len(samples)


def test_real_time_scheduling_is_requested_and_the_outcome_reported() -> None:
    outcome = capture.request_realtime()
    try:
        assert outcome.startswith("SCHED_FIFO") or "refused" in outcome
    finally:
        capture.lower_priority()


def test_listen_from_a_file_gives_the_whole_file_text(asr_model: Path, heldout: list) -> None:
    rec = Recognizer.load(asr_model)
    wav, _ = heldout[2]
    events: list[tuple[str, str]] = []
    report = listen(rec, file=wav, device=None, block=512, chunk_ms=160, seconds=0,
                    on_text=lambda kind, text: events.append((kind, text)), speed=2.0)  # fmt: skip
    expected = rec.transcribe(read_wav(wav).samples).text
    assert report["texts"] == [expected] and events[-1] == ("final", expected)
    assert any(kind == "partial" for kind, _ in events)
    c = report["counters"]
    assert c["dropouts"] == 0 and c["chunk_errors"] == 0 and c["offered"] == c["consumed"]
    assert report["capture_latency_ms"]["count"] > 0 and report["scheduling"]
