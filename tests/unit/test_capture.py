"""Capture: ring buffer, the callback, a file at real-time pace, slow consumers, bad chunks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

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
    """Inference at half real-time speed, in lockstep with the source instead of against the clock.

    While the consumer processes a batch of n samples, 2n samples arrive (the
    test delivers them while ``slow`` holds the consumer); then the consumer
    takes what the ring holds. The ring keeps 4 blocks: blocks 0 | 1-2 | 3-6
    fit, of 7-14 only 7-10 do. Block 14 is the file's last, 64 samples: a
    dropped block counts the samples it had, not the block size.
    """
    block, ring_size = 256, 1024
    samples = np.ones(14 * block + 64, np.float32)
    ring, counters = capture.RingBuffer(ring_size), capture.Counters()
    callback = capture.make_callback(ring, counters)
    batches: list[int] = []
    holding, resume, done = threading.Semaphore(0), threading.Semaphore(0), threading.Event()

    def slow(x: np.ndarray) -> None:
        batches.append(len(x))
        if not done.is_set():
            holding.release()
            assert resume.acquire(timeout=30)

    consumer = capture.Consumer(ring, counters, slow, rate=RATE, max_batch=ring_size)
    consumer.start(time.perf_counter())
    blocks = [samples[i : i + block].reshape(-1, 1) for i in range(0, len(samples), block)]
    sent = 0
    while sent < len(blocks):
        due = 1 if not batches else 2 * batches[-1] // block  # what arrives while the last batch is processed
        for piece in blocks[sent : sent + due]:
            callback(piece, len(piece), None, None)
        sent += due
        if batches:
            resume.release()
        assert holding.acquire(timeout=30), "the consumer never took the next batch"
    done.set()
    resume.release()
    consumer.stop()
    assert batches == [256, 512, 1024, 1024]
    assert (counters.dropouts, counters.dropped) == (4, 3 * block + 64)
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


class _FakePyAudio:
    """PyAudio's surface that _open_pyaudio uses: one ALSA input device; the stream keeps its callback."""

    paInt16, paFloat32, paInputOverflow, paContinue = 8, 1, 2, 0
    opened: ClassVar[dict] = {}

    class PyAudio:
        def get_device_count(self) -> int:
            return 1

        def get_device_info_by_index(self, i: int) -> dict:
            return {"name": "edgepack_wav", "maxInputChannels": 128, "hostApi": 0}

        def get_host_api_info_by_index(self, i: int) -> dict:
            return {"name": "ALSA"}

        def open(self, **kwargs: object) -> object:
            _FakePyAudio.opened.update(kwargs)
            return object()

        def terminate(self) -> None:
            pass


def test_pyaudio_capture_takes_16_bit_samples_and_scales_them_into_the_ring(
    monkeypatch,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """int16 from the device (float32 through ALSA's plug lost samples of a file PCM), scaled into a buffer
    made once; no /dev/snd but an ALSA configuration (a file or null PCM) is enough to try."""
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)
    monkeypatch.setitem(sys.modules, "pyaudio", _FakePyAudio)
    monkeypatch.setattr(capture, "SOUND_DEVICES", str(tmp_path / "no-snd"))
    monkeypatch.setattr(capture, "ALSA_CONF", str(tmp_path))
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(tmp_path / "asound.conf"))
    ring, counters = capture.RingBuffer(1024), capture.Counters()
    source = capture.open_device(
        "edgepack_wav", rate=RATE, block=4, callback=capture.make_callback(ring, counters)
    )
    assert (source.name, source.backend) == ("edgepack_wav", "PortAudio ALSA (PyAudio)")
    assert _FakePyAudio.opened["format"] == _FakePyAudio.paInt16 and _FakePyAudio.opened["rate"] == RATE
    on_block = _FakePyAudio.opened["stream_callback"]
    pcm = np.array([0, 16384, -32768, 32767], dtype="<i2")
    assert on_block(pcm.tobytes(), 4, None, 0) == (None, 0)
    on_block(pcm.tobytes(), 4, None, _FakePyAudio.paInputOverflow)
    out = np.zeros(8, np.float32)
    assert ring.take(out) == 8 and list(out[:4]) == [0.0, 0.5, -1.0, 32767 / 32768]
    assert counters.offered == 8 and counters.overruns == 1 and counters.dropouts == 0
    monkeypatch.delenv("ALSA_CONFIG_PATH")
    monkeypatch.setattr(capture, "ALSA_USER_CONFIGS", (str(tmp_path / "asound.conf"),))  # absent
    with pytest.raises(capture.CaptureError, match="this system has no sound card"):
        capture.open_device("hw:1", rate=RATE, block=4, callback=capture.make_callback(ring, counters))
    (tmp_path / "asound.conf").write_text("pcm.x { type null }\n")  # /etc/asound.conf defines a device
    assert capture.open_device(
        "edgepack_wav", rate=RATE, block=4, callback=capture.make_callback(ring, counters)
    )


def test_onnxruntimes_import_noise_is_dropped_and_anything_else_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Debian's armhf onnxruntime writes 1,134 schema-registration lines to fd 2 at import (rpi-zero2w):
    every command's message came after them. They go; another line a library writes stays."""
    import sys

    import onnxruntime  # the real one: monkeypatch puts it back after the fake

    from edgepack_runtime.session import import_onnxruntime

    assert onnxruntime.__version__ != "1.21.0"
    fake = tmp_path / "onnxruntime"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n__version__ = '1.21.0'\n"
        "for op in ('Abs', 'Add'):\n"
        "    os.write(2, f'Schema error: Trying to register schema with name {op}\\n\\n'.encode())\n"
        "os.write(2, b'a warning worth reading\\n')\n"
    )
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_onnxruntime().__version__ == "1.21.0"
    err = capfd.readouterr().err
    assert "Schema error" not in err and "a warning worth reading" in err


def test_a_device_is_named_by_index_whole_name_or_one_part_and_a_miss_lists_the_inputs() -> None:
    class Devices:
        infos: ClassVar[list[dict]] = [
            {"name": "usb_raw", "maxInputChannels": 1},
            {"name": "hdmi_raw", "maxInputChannels": 2},
            {"name": "speaker", "maxInputChannels": 0},
            {"name": "usb", "maxInputChannels": 1},
        ]

        def get_device_count(self) -> int:
            return len(self.infos)

        def get_device_info_by_index(self, i: int) -> dict:
            return self.infos[i]

        def terminate(self) -> None:
            pass

    pick = capture._pyaudio_index
    assert pick(Devices(), "1") == 1 and pick(Devices(), "USB") == 3 and pick(Devices(), "hdmi") == 1
    with pytest.raises(
        capture.CaptureError, match=r"'_raw' matches 2 input devices: 0 'usb_raw', 1 'hdmi_raw'"
    ):
        pick(Devices(), "_raw")
    alsa = ["ALSA lib pcm_file.c:935:(snd_pcm_file_open) open /data/x.raw for reading failed: No such file"]
    with pytest.raises(
        capture.CaptureError, match=r"\(speaker\) has no input channels.*ALSA said: .*/data/x\.raw"
    ):
        pick(Devices(), "speaker", probed=alsa)
    with pytest.raises(
        capture.CaptureError, match=r"'mic' does not exist\. Input devices \(index, name\): 0 'usb_raw'"
    ):
        pick(Devices(), "mic")


def test_an_alsa_configuration_portaudio_cannot_start_with_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A malformed /etc/asound.conf made PyAudio() raise OSError: a traceback before."""
    import sys

    class Broken(_FakePyAudio):
        class PyAudio:
            def __init__(self) -> None:
                raise OSError(-9999, "Unanticipated host error")

    monkeypatch.setitem(sys.modules, "sounddevice", None)
    monkeypatch.setitem(sys.modules, "pyaudio", Broken)
    monkeypatch.setattr(capture, "ALSA_CONF", str(tmp_path))
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(tmp_path / "asound.conf"))
    with pytest.raises(
        capture.CaptureError, match=r"PortAudio could not start .*check the ALSA configuration"
    ):
        capture.open_device("x", rate=RATE, block=4, callback=lambda *a: None)
