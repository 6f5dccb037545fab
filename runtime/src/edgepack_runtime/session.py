"""onnxruntime sessions as the board runs them, and what the board is (versions, CPU features).

Its own module so that every part of the runtime (smoke, asr, bench) takes sessions from one
place and none imports another's internals (smoke <-> asr was an import cycle).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgepack_runtime import __version__

if TYPE_CHECKING:  # imported where a session is made: a LiteRT image has no onnxruntime
    import onnxruntime as ort

CPU = "CPUExecutionProvider"


def choose_providers(wanted: list[str], available: list[str]) -> list[str]:
    """The wanted execution providers this onnxruntime build offers, in order; the CPU one last.

    A Jetson image on NVIDIA's base offers TensorRT and CUDA; the CPU-path image
    (and the host) offers only the CPU provider, which is always the fallback.
    """
    chosen = [p for p in wanted if p in available and p != CPU]
    return [*chosen, CPU]


def session(model: Path, *, threads: int, providers: list[str] | None = None) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    chosen = choose_providers(providers or [CPU], ort.get_available_providers())
    return ort.InferenceSession(str(model), options, providers=chosen)


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
    try:
        import onnxruntime

        found["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    for name in ("ai_edge_litert", "tflite_runtime"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found["litert"] = str(getattr(module, "__version__", "?"))
        break
    return found
