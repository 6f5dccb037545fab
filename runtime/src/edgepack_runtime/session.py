"""onnxruntime sessions as the board runs them, and what the board is (versions, CPU features).

Its own module so that every part of the runtime (smoke, asr, bench) takes sessions from one
place and none imports another's internals (smoke <-> asr was an import cycle).
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from edgepack_runtime import __version__

if TYPE_CHECKING:  # imported where a session is made: a LiteRT image has no onnxruntime
    import onnxruntime as ort

CPU = "CPUExecutionProvider"
T = TypeVar("T")


def choose_providers(wanted: list[str], available: list[str]) -> list[str]:
    """The wanted execution providers this onnxruntime build offers, in order; the CPU one last.

    A Jetson image on NVIDIA's base offers TensorRT and CUDA; the CPU-path image
    (and the host) offers only the CPU provider, which is always the fallback.
    """
    chosen = [p for p in wanted if p in available and p != CPU]
    return [*chosen, CPU]


# Debian trixie's armhf python3-onnxruntime 1.21 (rpi-zero2w) prints each ONNX op schema it registers
# twice, 567 of them, to the C++ stderr when the first session is made: 1,134 lines above every
# message of every command.
_SCHEMA_NOISE = "Schema error: Trying to register schema"


def import_onnxruntime() -> Any:
    """``import onnxruntime``, its schema-registration noise dropped, any other line kept."""
    import sys

    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]

    def load() -> Any:
        import onnxruntime

        return onnxruntime

    return _without_schema_noise(load)


def _without_schema_noise(fn: Callable[[], T]) -> T:
    """``fn()`` with what native code writes to stderr meanwhile filtered: the schema lines go."""
    import sys

    from edgepack_runtime.capture import native_stderr

    said: Callable[[], list[str]] = list  # nothing said before the capture starts
    try:
        with native_stderr() as said:
            return fn()
    finally:  # a call that fails keeps what it said
        for line in said():
            if not line.startswith(_SCHEMA_NOISE):
                print(line, file=sys.stderr)


def session(model: Path, *, threads: int, providers: list[str] | None = None) -> ort.InferenceSession:
    ort = import_onnxruntime()

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    chosen = choose_providers(providers or [CPU], ort.get_available_providers())
    # ONNX registers its operator schemas when the first session is made (Debian's armhf build: twice)
    return _without_schema_noise(lambda: ort.InferenceSession(str(model), options, providers=chosen))


def platform_info() -> dict[str, str]:
    features = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("features", "flags")):
                features = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "edgepack_runtime": __version__,
        **engine_versions(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_features": features,
    }


def engine_versions() -> dict[str, str]:
    """The inference engines this image has, by version (an image carries one)."""
    found = {}
    with contextlib.suppress(ImportError):
        found["onnxruntime"] = import_onnxruntime().__version__
    for name in ("ai_edge_litert", "tflite_runtime"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found["litert"] = str(getattr(module, "__version__", "?"))
        break
    return found
