"""``bench-model``: median latency of one ONNX model on fixed inputs (numpy + onnxruntime only)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime.session import platform_info, session


def bench_model(model: Path, inputs: Path, *, runs: int, threads: int) -> dict[str, Any]:
    return bench_models([model], inputs, runs=runs, threads=threads)[0]


def bench_models(models: list[Path], inputs: Path, *, runs: int, threads: int) -> list[dict[str, Any]]:
    """Median latency of each model on the same inputs, their runs interleaved (a, b, a, b, ...) so a
    slow spell of the machine (QEMU, a busy host) falls on every model alike."""
    sessions = [session(m, threads=threads) for m in models]
    with np.load(inputs, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    feeds = [{k: v for k, v in arrays.items() if k in {i.name for i in s.get_inputs()}} for s in sessions]
    for sess, feed in zip(sessions, feeds, strict=True):
        sess.run(None, feed)  # warm-up: first-run allocations are not latency
    times: list[list[float]] = [[] for _ in models]
    for _ in range(runs):
        for k, (sess, feed) in enumerate(zip(sessions, feeds, strict=True)):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times[k].append((time.perf_counter() - t0) * 1e3)
    info = platform_info()
    return [
        {
            "model": m.name,
            "median_ms": statistics.median(t),
            "min_ms": min(t),
            "runs": runs,
            "threads": threads,
            "runtime": info,
        }
        for m, t in zip(models, times, strict=True)
    ]
