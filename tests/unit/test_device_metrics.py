"""The on-device metrics (runtime package): histogram, percentiles, Prometheus text, JSON lines, WER."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from edgepack_runtime.metrics import Metrics, append_jsonl, percentiles, process_stats, start_http, wer


def test_histogram_is_cumulative_and_percentiles_come_from_the_latest_calls() -> None:
    m = Metrics(model={"kind": "vad", "sha256": "ab"}, buckets=(0.001, 0.01, 0.1))
    for seconds in (0.0005, 0.002, 0.002, 0.05, 3.0):
        m.observe(seconds)
    m.error()
    snap = m.snapshot()
    assert snap["histogram"] == {"0.001": 1, "0.01": 3, "0.1": 4, "+Inf": 5}
    assert snap["requests"] == 5 and snap["errors"] == 1 and snap["latency_ms"]["p50"] == pytest.approx(2.0)
    assert snap["peak_rss_bytes"] > 1e6 and snap["cpu_seconds"] > 0


def test_prometheus_text_format() -> None:
    m = Metrics(model={"kind": "vad", "sha256": 'a"b'}, buckets=(0.01,))
    m.observe(0.005)
    m.set_canary({"wer": 0.125})
    text = m.prometheus()
    assert 'edgepack_model_info{kind="vad",sha256="a\\"b"} 1' in text
    assert (
        'edgepack_inference_seconds_bucket{le="0.01"} 1\nedgepack_inference_seconds_bucket{le="+Inf"} 1'
        in text
    )
    assert (
        "# TYPE edgepack_inference_seconds histogram" in text and "edgepack_inference_seconds_count 1" in text
    )
    assert "# TYPE edgepack_errors_total counter\nedgepack_errors_total 0" in text
    assert "edgepack_canary_wer 0.125" in text and text.endswith("\n")


def test_served_on_loopback_and_appended_as_json_lines(tmp_path: Path) -> None:
    m = Metrics(model={"kind": "vad"})
    m.observe(0.001)
    server = start_http(m, port=0)
    try:
        port = server.server_address[1]
        assert server.server_address[0] == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "edgepack_inference_seconds_count 1" in body
        snap = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics.json", timeout=5).read())
        assert snap["requests"] == 1
    finally:
        server.shutdown()
        server.server_close()
    append_jsonl(tmp_path / "m.jsonl", m.snapshot())
    append_jsonl(tmp_path / "m.jsonl", m.snapshot())
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["model"] == {"kind": "vad"}


def test_wer_and_percentiles() -> None:
    assert wer("turn on the light", "turn on the light") == 0.0
    assert wer("turn on the light", "turn the lights") == pytest.approx(0.5)
    assert wer("", "x") == 1.0
    p = percentiles([0.001 * i for i in range(1, 101)])
    assert (p["p50"], p["p99"], p["max"]) == (pytest.approx(50.5), pytest.approx(99.01), pytest.approx(100.0))
    stats = process_stats()  # one reading: two calls would race the process's own growth
    assert stats["peak_rss_bytes"] >= stats["rss_bytes"] > 0
