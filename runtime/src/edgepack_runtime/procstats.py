"""The process's own figures: RSS now and at peak, CPU seconds (/proc when mounted, else getrusage).

Stdlib only and imported by smoke and metrics alike: the smoke test reads its peak RSS without
loading the metrics service (http.server, ssl) that only ``serve`` needs.
"""

from __future__ import annotations

import resource
from pathlib import Path


def process_stats() -> dict[str, float]:
    """RSS now and at peak (bytes), CPU seconds used: /proc when mounted, else getrusage."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = {"peak_rss_bytes": float(usage.ru_maxrss * 1024), "cpu_seconds": usage.ru_utime + usage.ru_stime}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                name = "rss_bytes" if key == "VmRSS" else "peak_rss_bytes"
                stats[name] = float(value.split()[0]) * 1024
    except OSError:
        stats.setdefault("rss_bytes", stats["peak_rss_bytes"])
    return stats
