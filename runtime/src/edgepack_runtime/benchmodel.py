"""``bench-model``: median latency of one ONNX model on fixed inputs (numpy + onnxruntime only)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime.session import platform_info, session


def bench_model(model: Path, inputs: Path, *, runs: int, threads: int) -> dict[str, Any]:
    sess = session(model, threads=threads)
    wanted = {i.name for i in sess.get_inputs()}
    with np.load(inputs, allow_pickle=False) as data:
        feeds = {k: data[k] for k in data.files if k in wanted}
    sess.run(None, feeds)  # warm-up: first-run allocations are not latency
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "runs": runs,
        "threads": threads,
        "runtime": platform_info(),
    }
