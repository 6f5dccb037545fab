"""Live capture: a callback stream into a preallocated ring buffer, inference on another thread.

The audio callback runs on the driver's thread under a deadline: it only
copies the block into a ring buffer that was allocated up front, and counts.
It never allocates a buffer, runs inference, logs or takes a lock. When the
ring is full the block is dropped and counted (a dropout); when the driver
reports an input overflow it is counted (an overrun). Nothing is hidden: the
counters are in every report, and ``offered == consumed + dropped`` holds.

The consumer thread drains the ring and calls the processing function (the
ASR stream); an exception in one chunk is counted with its message and the
stream goes on. Sources: :class:`FileSource` calls the same callback from a
thread at real-time pace (tests, QEMU images without a sound card);
:func:`open_device` opens a real input stream with sounddevice or, where only
it is installed (the rpi4 image), PyAudio, imported only when asked for.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SOUND_DEVICES = "/dev/snd"
ALSA_CONF = "/usr/share/alsa/alsa.conf"
ALSA_USER_CONFIGS = ("/etc/asound.conf", "~/.asoundrc")  # alsa.conf reads both, after its own


class CaptureError(RuntimeError):
    """The capture device cannot be opened (missing, busy, no backend)."""


class RingBuffer:
    """Single-producer single-consumer ring of float32 samples, allocated once.

    The producer only advances ``written`` and the consumer only ``read``
    (both grow without bound): under the GIL each is a single atomic store,
    so no lock is shared with the audio thread.
    """

    def __init__(self, capacity: int) -> None:
        self.buf = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self.written = 0
        self.read = 0

    def free(self) -> int:
        return self.capacity - (self.written - self.read)

    def write(self, block: np.ndarray) -> bool:
        """Copy ``block`` in, or drop all of it when it does not fit (returns False)."""
        n = len(block)
        if n > self.free():
            return False
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self.buf[start : start + first] = block[:first]
        self.buf[: n - first] = block[first:]
        self.written += n
        return True

    def take(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` samples into ``out``; return how many."""
        n = min(len(out), self.written - self.read)
        start = self.read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self.buf[start : start + first]
        out[first:n] = self.buf[: n - first]
        self.read += n
        return n


@dataclass
class Counters:
    """What the callback and the consumer count; read by anyone, written by one thread each."""

    callbacks: int = 0
    offered: int = 0  # samples the source delivered
    overruns: int = 0  # blocks the driver flagged as input overflow (samples lost before us)
    dropouts: int = 0  # blocks dropped because the ring was full (the consumer is too slow)
    dropped: int = 0  # samples in those blocks
    consumed: int = 0  # samples the consumer took out of the ring
    chunk_errors: int = 0  # consumer chunks whose processing raised
    last_error: str = ""
    max_fill: int = 0  # most samples ever waiting in the ring
    latency_ms: list[float] = field(default_factory=list)  # per consumer batch: oldest sample -> processed


def make_callback(ring: RingBuffer, counters: Counters) -> Callable[[Any, int, Any, Any], None]:
    """The audio callback (sounddevice's signature): copy channel 0 into the ring and count."""

    def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
        counters.callbacks += 1
        counters.offered += frames
        if status and getattr(status, "input_overflow", False):
            counters.overruns += 1
        if not ring.write(indata[:frames, 0]):
            counters.dropouts += 1
            counters.dropped += frames
        fill = ring.written - ring.read
        if fill > counters.max_fill:
            counters.max_fill = fill

    return callback


class Source(Protocol):
    rate: int
    block: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def finished(self) -> bool: ...


class _NoStatus:
    input_overflow = False

    def __bool__(self) -> bool:
        return False


class FileSource:
    """Calls the capture callback with ``block``-sample pieces of a signal, at real-time pace."""

    def __init__(self, samples: np.ndarray, *, rate: int, block: int, callback: Callable[..., None],
                 speed: float = 1.0) -> None:  # fmt: skip
        self.samples, self.rate, self.block, self.callback, self.speed = samples, rate, block, callback, speed
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="file-source", daemon=True)
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        buffer = np.zeros((self.block, 1), dtype=np.float32)  # the "driver's" buffer, reused
        status = _NoStatus()
        for i, start in enumerate(range(0, len(self.samples), self.block)):
            due = self.t0 + (i + 1) * self.block / (self.rate * self.speed)  # a block exists once recorded
            while (wait := due - time.perf_counter()) > 0:
                if self._stop.wait(wait):
                    self._done.set()
                    return
            piece = self.samples[start : start + self.block]
            buffer[: len(piece), 0] = piece
            self.callback(buffer, len(piece), None, status)
        self._done.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def finished(self) -> bool:
        return self._done.is_set()


class Consumer:
    """Drains the ring on its own thread and calls ``process`` on each batch of samples."""

    def __init__(self, ring: RingBuffer, counters: Counters, process: Callable[[np.ndarray], None], *,
                 rate: int, max_batch: int, poll_s: float = 0.002) -> None:  # fmt: skip
        self.ring, self.counters, self.process, self.rate = ring, counters, process, rate
        self.scratch = np.zeros(max_batch, dtype=np.float32)
        self.poll_s = poll_s
        self.t0 = 0.0  # when sample 0 arrived (the source's start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asr-consumer", daemon=True)

    def start(self, t0: float) -> None:
        self.t0 = t0
        self._thread.start()

    def _run(self) -> None:
        lower_priority()  # inherited real-time priority belongs to the audio thread, not to inference
        while True:
            first = self.ring.read  # ring position of the oldest sample in this batch
            n = self.ring.take(self.scratch)
            if n == 0:
                if self._stop.is_set():
                    return
                time.sleep(self.poll_s)
                continue
            self.counters.consumed += n
            try:
                self.process(self.scratch[:n].copy())
            except Exception as exc:  # one bad chunk must not stop the stream: counted and reported
                self.counters.chunk_errors += 1
                self.counters.last_error = f"{type(exc).__name__}: {exc}"
            # Arrival time of the oldest sample: its index on the source's timeline (dropped blocks included).
            arrived = self.t0 + (first + self.counters.dropped) / self.rate
            self.counters.latency_ms.append((time.perf_counter() - arrived) * 1e3)

    def stop(self) -> None:
        """Finish what is in the ring, then stop."""
        self._stop.set()
        self._thread.join()


def request_realtime(priority: int = 10) -> str:
    """Ask for SCHED_FIFO (threads started afterwards inherit it), else a higher nice; say which."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return f"SCHED_FIFO priority {priority}"
    except (AttributeError, PermissionError, OSError) as exc:
        fifo = f"SCHED_FIFO refused ({exc.__class__.__name__}: needs CAP_SYS_NICE or an rtprio limit)"
    try:
        os.nice(-10)
        return f"{fifo}; nice -10 instead"
    except (AttributeError, PermissionError, OSError):
        return f"{fifo}; nice -10 refused too: normal priority (expect more dropouts under load)"


def lower_priority() -> None:
    """Back to SCHED_OTHER for this thread (always permitted)."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_FIFO:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass


class DeviceSource:
    """A live input stream; the backend module is imported only here."""

    def __init__(self, stream: Any, *, rate: int, block: int, close: Callable[[], None],
                 backend: str = "", name: str = "") -> None:  # fmt: skip
        self.stream, self.rate, self.block, self._close = stream, rate, block, close
        self.backend, self.name = backend, name  # e.g. "PortAudio ALSA (PyAudio)", the device's name

    def start(self) -> None:
        self.stream.start() if hasattr(self.stream, "start") else self.stream.start_stream()

    def stop(self) -> None:
        self._close()

    def finished(self) -> bool:
        return False


def alsa_user_config() -> str | None:
    """An ALSA configuration that can define devices without a sound card (a file or null PCM), if any."""
    if os.environ.get("ALSA_CONFIG_PATH"):
        return f"ALSA_CONFIG_PATH={os.environ['ALSA_CONFIG_PATH']}"
    for name in ALSA_USER_CONFIGS:
        if (path := Path(name).expanduser()).is_file():
            return str(path)
    return None


def open_device(device: str | None, *, rate: int, block: int, callback: Callable[..., None]) -> DeviceSource:
    """An input stream on ``device`` (name or index) with sounddevice, else PyAudio."""
    if sys.platform == "linux" and not Path(SOUND_DEVICES).exists() and alsa_user_config() is None:
        # Checked first: PortAudio's ALSA layer aborts the process (an assertion) on some systems without one.
        raise CaptureError(
            f"capture device {device or '(default)'!r} does not exist: this system has no sound card "
            f"({SOUND_DEVICES} is missing; a container needs --device {SOUND_DEVICES}). "
            "Use --file F to stream a file."
        )
    try:
        import sounddevice as sd  # PortAudio through cffi
    except (ImportError, OSError):
        return _open_pyaudio(device, rate=rate, block=block, callback=callback)
    dev: str | int | None = int(device) if device is not None and device.isdigit() else device
    try:
        stream = sd.InputStream(device=dev, channels=1, samplerate=rate, blocksize=block, dtype="float32",
                                callback=callback)  # fmt: skip
    except (ValueError, sd.PortAudioError) as exc:
        names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        raise CaptureError(_no_device(device, exc, names)) from None
    info = sd.query_devices(stream.device)
    return DeviceSource(stream, rate=rate, block=block, close=stream.close, backend="PortAudio (sounddevice)",
                        name=str(info["name"]))  # fmt: skip


def _open_pyaudio(
    device: str | None, *, rate: int, block: int, callback: Callable[..., None]
) -> DeviceSource:
    if sys.platform == "linux" and not Path(ALSA_CONF).exists():
        raise CaptureError(f"PortAudio's ALSA backend needs {ALSA_CONF} (Debian package libasound2-data).")
    try:
        import pyaudio
    except ImportError:
        raise CaptureError(
            "live capture needs sounddevice or pyaudio (with PortAudio); neither is installed. "
            "Use --file F to stream a file at real-time pace."
        ) from None
    try:
        with native_stderr() as probed:  # PortAudio's probe of every ALSA and JACK device: dozens of lines
            pa = pyaudio.PyAudio()
    except OSError as exc:  # e.g. an ALSA configuration it cannot parse
        alsa = [ln for ln in probed() if "ALSA lib" in ln]
        why = f" ALSA said: {alsa[-1]}" if alsa else ""
        raise CaptureError(
            f"PortAudio could not start ({exc}): check the ALSA configuration "
            f"({alsa_user_config() or ALSA_CONF}).{why}"
        ) from None
    if not pa.get_device_count():
        pa.terminate()
        raise CaptureError(f"PortAudio found no audio device. {' '.join(probed()[-1:])}".strip())
    names = [pa.get_device_info_by_index(i)["name"] for i in range(pa.get_device_count())
             if pa.get_device_info_by_index(i)["maxInputChannels"] > 0]  # fmt: skip
    index = _pyaudio_index(pa, device, probed=probed())

    class Overflow:
        def __init__(self, flags: int) -> None:
            self.input_overflow = bool(flags & pyaudio.paInputOverflow)

        def __bool__(self) -> bool:
            return self.input_overflow

    # 16-bit samples, as the converters deliver them, scaled here into a buffer made once. Float32
    # from PortAudio went through ALSA's plug conversion, which loses a third of the samples of an
    # ALSA file PCM (found by tests/integration/test_capture_alsa.py).
    scratch = np.zeros((max(block, 4096), 1), dtype=np.float32)

    def on_block(in_data: bytes, frames: int, time_info: Any, flags: int) -> tuple[None, int]:
        nonlocal scratch
        if frames > len(scratch):
            scratch = np.zeros((frames, 1), dtype=np.float32)
        pcm = np.frombuffer(in_data, dtype=np.int16, count=frames)
        np.multiply(pcm, 1.0 / 32768.0, out=scratch[:frames, 0], casting="unsafe")
        callback(scratch, frames, time_info, Overflow(flags))
        return None, pyaudio.paContinue

    try:
        with native_stderr() as said:
            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, input=True,
                             frames_per_buffer=block, input_device_index=index, stream_callback=on_block,
                             start=False)  # fmt: skip
    except (OSError, ValueError) as exc:
        pa.terminate()
        alsa = said()
        raise CaptureError(
            _no_device(device, exc, names) + (f" ALSA said: {alsa[-1]}" if alsa else "")
        ) from None

    def close() -> None:
        stream.stop_stream()
        stream.close()
        pa.terminate()

    chosen = pa.get_device_info_by_index(index) if index is not None else pa.get_default_input_device_info()
    api = pa.get_host_api_info_by_index(int(chosen["hostApi"]))["name"]
    return DeviceSource(stream, rate=rate, block=block, close=close, backend=f"PortAudio {api} (PyAudio)",
                        name=str(chosen["name"]))  # fmt: skip


@contextlib.contextmanager
def native_stderr() -> Iterator[Callable[[], list[str]]]:
    """File descriptor 2 into an unnamed file for the block (C libraries write there, past sys.stderr);
    yields a function returning the lines written.

    Not a pipe: a C++ call that holds the GIL while it writes more than a pipe holds (ONNX's schema
    lines, 170 kB) would wait for a reader thread that cannot run. The image runs read-only, so the
    file is a memfd, else in the temporary folder, else in /dev/shm (a tmpfs in every container);
    where none can be made, nothing is captured and the lines go where they always went.
    """
    lines: list[str] = []
    fd = _unnamed_file()
    if fd is None:
        yield lambda: lines
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        yield lambda: lines
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(fd, "rb") as captured:
            lines += [ln for ln in captured.read().decode("utf-8", "replace").splitlines() if ln.strip()]


def _unnamed_file() -> int | None:
    try:
        return os.memfd_create("edgepack-stderr")  # QEMU's 32-bit ARM user mode lacks it: ENOSYS
    except (AttributeError, OSError):
        pass
    for folder in (None, "/dev/shm"):
        try:
            with tempfile.TemporaryFile(mode="w+b", dir=folder) as handle:
                return os.dup(handle.fileno())  # the unlinked file lives while the duplicate does
        except OSError:
            continue
    return None


def _pyaudio_index(pa: Any, device: str | None, *, probed: Sequence[str] = ()) -> int | None:
    """The input device ``device`` names: an index, a whole name, or a part of one name (case-blind)."""
    if device is None:
        return None
    infos = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
    inputs = [i for i, info in enumerate(infos) if info["maxInputChannels"] > 0]
    listed = ", ".join(f"{i} {infos[i]['name']!r}" for i in inputs) or "none"
    wanted = device.lower()
    exact = [i for i, info in enumerate(infos) if str(i) == device or str(info["name"]).lower() == wanted]
    found = exact or [i for i, info in enumerate(infos) if wanted in str(info["name"]).lower()]
    usable = [i for i in found if i in inputs]
    if len(usable) == 1:
        return usable[0]
    pa.terminate()
    if len(usable) > 1:
        raise CaptureError(
            f"capture device {device!r} matches {len(usable)} input devices: "
            + ", ".join(f"{i} {infos[i]['name']!r}" for i in usable)
            + ". Give the whole name or the index."
        )
    if found:
        name = str(infos[found[0]]["name"])
        alsa = [ln for ln in probed if "ALSA lib" in ln and ("pcm_file" in ln or name in ln)]
        why = f" ALSA said: {alsa[-1]}" if alsa else ""
        raise CaptureError(
            f"capture device {device!r} ({name}) has no input channels: ALSA could not open it for capture"
            f" (busy, not readable by this user: the image runs as uid 1000, or a playback-only PCM).{why}"
        )
    raise CaptureError(f"capture device {device!r} does not exist. Input devices (index, name): {listed}.")


def _no_device(device: str | None, exc: BaseException, names: list[str]) -> str:
    known = ", ".join(repr(n) for n in names) or "none"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"capture device {device or '(default)'!r} cannot be opened: {first}. Input devices: {known}."
