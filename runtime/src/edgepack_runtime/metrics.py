"""On-device metrics: latency histogram and percentiles, memory, CPU, errors, model version, canary.

Stdlib, numpy and onnxruntime only (this runs on the board). ``Metrics`` is
thread-safe; ``serve`` exposes it in the Prometheus text format (0.0.4) on
127.0.0.1:<port> with http.server, and appends one JSON line per interval to
a file, which survives a crash and needs no scraper. ``bench`` is the smoke
inference repeated N times with p50/p95/p99, peak RSS and CPU use.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime import __version__
from edgepack_runtime.procstats import process_stats
from edgepack_runtime.smoke import load_spec, run_smoke  # metrics runs the smoke; never the reverse

# Seconds; a Pi 4 runs one 32 ms VAD chunk in well under a millisecond, an ASR pass in ~100 ms.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WINDOW = 2048  # latest observations kept for the percentiles


def percentiles(seconds: list[float] | np.ndarray) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"count": 0}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "count": int(ms.size),
        "min": float(ms.min()),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(ms.max()),
        "mean": float(ms.mean()),
    }


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


class Metrics:
    """Counters, a latency histogram and gauges of one running model."""

    def __init__(self, *, model: dict[str, str], buckets: tuple[float, ...] = BUCKETS) -> None:
        self.model = model
        self.buckets = buckets
        self._lock = threading.Lock()
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._recent: deque[float] = deque(maxlen=WINDOW)
        self.errors = 0
        self.canary: dict[str, float] = {}
        self._t0 = time.monotonic()
        self._cpu0 = process_stats()["cpu_seconds"]

    def observe(self, seconds: float) -> None:
        with self._lock:
            index = next((i for i, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
            self._counts[index] += 1
            self._sum += seconds
            self._recent.append(seconds)

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def set_canary(self, scores: dict[str, float]) -> None:
        with self._lock:
            self.canary = dict(scores)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts, total, recent = list(self._counts), self._sum, list(self._recent)
            errors, canary = self.errors, dict(self.canary)
        proc = process_stats()
        uptime = time.monotonic() - self._t0
        cumulative = np.cumsum(counts).tolist()
        return {
            "time": time.time(),
            "uptime_s": uptime,
            "model": self.model,
            "runtime": __version__,
            "latency_ms": percentiles(recent),
            "latency_sum_s": total,
            "requests": int(sum(counts)),
            "histogram": {
                **{str(b): c for b, c in zip(self.buckets, cumulative, strict=False)},
                "+Inf": cumulative[-1],
            },
            "errors": errors,
            "rss_bytes": proc.get("rss_bytes", 0.0),
            "peak_rss_bytes": proc["peak_rss_bytes"],
            "cpu_seconds": proc["cpu_seconds"],
            "cpu_percent": 100 * (proc["cpu_seconds"] - self._cpu0) / uptime if uptime > 0 else 0.0,
            "canary": canary,
        }

    def prometheus(self) -> str:
        """The Prometheus text exposition format, version 0.0.4."""
        s = self.snapshot()
        labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(self.model.items()))
        lines = [
            "# HELP edgepack_model_info The model this runtime serves (value is always 1).",
            "# TYPE edgepack_model_info gauge",
            f"edgepack_model_info{{{labels}}} 1",
            "# HELP edgepack_inference_seconds Latency of one inference call.",
            "# TYPE edgepack_inference_seconds histogram",
        ]
        for bound, count in s["histogram"].items():
            lines.append(f'edgepack_inference_seconds_bucket{{le="{bound}"}} {count}')
        lines += [
            f"edgepack_inference_seconds_sum {s['latency_sum_s']:.9g}",
            f"edgepack_inference_seconds_count {s['requests']}",
        ]
        gauges = {
            "edgepack_inference_p95_seconds": (
                "p95 latency, latest calls",
                s["latency_ms"].get("p95", 0) / 1e3,
            ),
            "edgepack_errors_total": ("Inference calls that raised", s["errors"]),
            "edgepack_resident_memory_bytes": ("Resident set size", s["rss_bytes"]),
            "edgepack_peak_resident_memory_bytes": ("Peak resident set size", s["peak_rss_bytes"]),
            "edgepack_cpu_seconds_total": ("User and system CPU time", s["cpu_seconds"]),
            **{f"edgepack_canary_{k}": (f"canary set: {k}", v) for k, v in sorted(s["canary"].items())},
        }
        for name, (help_text, value) in gauges.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {help_text}.", f"# TYPE {name} {kind}", f"{name} {float(value):.9g}"]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def start_http(metrics: Metrics, *, port: int, bind: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve /metrics (Prometheus) and /metrics.json in a daemon thread; loopback only by default."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind = metrics.prometheus().encode(), "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/metrics.json":
                body, kind = json.dumps(metrics.snapshot()).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: the board's journal is no place for one line per scrape

    server = ThreadingHTTPServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One line, one write, flushed: a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def model_info(spec_path: Path) -> dict[str, str]:
    spec = load_spec(spec_path)
    model = spec_path.parent / spec["model"]
    info = {"kind": spec["kind"], "file": model.name}
    meta = model.parent / "model.json"
    if meta.is_file():
        data = json.loads(meta.read_text())
        info.update(sha256=str(data.get("sha256", "")), source=str(data.get("source", "")))
    return info


def bench(spec_path: Path, *, runs: int, warmup: int = 1, threads: int | None = None) -> dict[str, Any]:
    """The smoke inference ``warmup + runs`` times: latency percentiles, peak RSS, CPU use."""
    if warmup:
        run_smoke(spec_path, runs=warmup, threads=threads)
    cpu0, t0 = process_stats()["cpu_seconds"], time.perf_counter()
    calls: list[float] = []
    result = run_smoke(spec_path, runs=runs, threads=threads, chunk_seconds=calls)
    wall = time.perf_counter() - t0
    proc = process_stats()
    result.update(
        latency_ms={"unit": result["latency_ms"]["unit"], **percentiles(calls)},
        peak_rss_mb=proc["peak_rss_bytes"] / 1e6,
        cpu_percent=100 * (proc["cpu_seconds"] - cpu0) / wall,
        wall_s=wall,
        runs=runs,
        warmup=warmup,
        model=model_info(spec_path),
    )
    return result


def serve(
    spec_path: Path,
    *,
    port: int,
    jsonl: Path | None,
    interval_s: float,
    duration_s: float,
    canary: Callable[[], dict[str, float]] | None = None,
) -> Metrics:
    """Run the model on its input in a loop, at the audio's own pace; expose the metrics."""
    metrics = Metrics(model=model_info(spec_path))
    server = start_http(metrics, port=port) if port else None
    deadline = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    next_record = time.monotonic() + interval_s
    try:
        while time.monotonic() < deadline:
            calls: list[float] = []
            t0 = time.monotonic()
            try:
                result = run_smoke(spec_path, runs=1, chunk_seconds=calls)
            except Exception:  # counted and served, never fatal: that is what the error metric is for
                metrics.error()
                result = {}
            for seconds in calls:
                metrics.observe(seconds)
            if canary is not None:
                metrics.set_canary(canary())
            audio = float(result.get("audio_seconds") or 0.0)
            time.sleep(max(0.0, min(audio - (time.monotonic() - t0), deadline - time.monotonic())))
            if jsonl is not None and time.monotonic() >= next_record:
                append_jsonl(jsonl, metrics.snapshot())
                next_record = time.monotonic() + interval_s
        if jsonl is not None:
            append_jsonl(jsonl, metrics.snapshot())
    finally:
        if server is not None:
            server.shutdown()
    return metrics
