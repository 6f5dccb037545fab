"""onnxruntime sessions as the board runs them, and what the board is (versions, CPU features).

Its own module so that every part of the runtime (smoke, asr, bench) takes sessions from one
place and none imports another's internals (smoke <-> asr was an import cycle).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgepack_runtime import __version__

CPU = "CPUExecutionProvider"


def choose_providers(wanted: list[str], available: list[str]) -> list[str]:
    """The wanted execution providers this onnxruntime build offers, in order; the CPU one last.

    A Jetson image on NVIDIA's base offers TensorRT and CUDA; the CPU-path image
    (and the host) offers only the CPU provider, which is always the fallback.
    """
    chosen = [p for p in wanted if p in available and p != CPU]
    return [*chosen, CPU]


def session(model: Path, *, threads: int, providers: list[str] | None = None) -> ort.InferenceSession:
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
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_features": features,
    }
