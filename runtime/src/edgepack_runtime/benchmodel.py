"""``bench-model``: median latency of ONNX or LiteRT models on fixed inputs (numpy + the engine only)."""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime.engines import open_model


def bench_model(model: Path, inputs: Path, *, runs: int, threads: int) -> dict[str, Any]:
    return bench_models([model], inputs, runs=runs, threads=threads)[0]


def bench_models(models: list[Path], inputs: Path, *, runs: int, threads: int) -> list[dict[str, Any]]:
    """Median latency of each model on the same inputs, their runs interleaved (a, b, a, b, ...) so a
    slow spell of the machine (QEMU, a busy host) falls on every model alike."""
    engines, load_ms = [], []
    for m in models:  # the runtime's import (the first time) and the model's load: its start-up
        t0 = time.perf_counter()
        engines.append(open_model(m, threads=threads))
        load_ms.append((time.perf_counter() - t0) * 1e3)
    with np.load(inputs, allow_pickle=False) as data:
        feeds = {k: data[k] for k in data.files}  # in the file's order: LiteRT may take them by position
    for engine in engines:
        engine.run(feeds)  # warm-up: first-run allocations are not latency
    times: list[list[float]] = [[] for _ in models]
    for _ in range(runs):
        for k, engine in enumerate(engines):
            t0 = time.perf_counter()
            engine.run(feeds)
            times[k].append((time.perf_counter() - t0) * 1e3)
    info = _platform()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return [
        {
            "model": m.name,
            "engine": e.name,
            "engine_version": e.version,
            "load_ms": round(load, 3),
            "median_ms": statistics.median(t),
            "min_ms": min(t),
            "runs": runs,
            "threads": threads,
            "peak_rss_mb": round(peak_mb, 1),  # the process's, all models loaded
            "runtime": info,
        }
        for m, e, t, load in zip(models, engines, times, load_ms, strict=True)
    ]


def _platform() -> dict[str, Any]:
    try:
        from edgepack_runtime.session import platform_info
    except ImportError:  # an image without onnxruntime
        import platform

        return {"python": platform.python_version(), "machine": platform.machine()}
    return platform_info()
