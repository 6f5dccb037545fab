"""Benchmark: where the smoke test's time goes under QEMU: start-up (docker, QEMU, Python, imports,
model load) against inference.

    .venv/bin/python bench/smoke_startup.py [--target rpi4] [--repeats 5]

Runs the built image's smoke command (build/<target>/run.sh smoke: the same
docker run as the build's smoke step, QEMU with the board's CPU) N times. The
inference time is the sum of the model calls the smoke reports (calls x mean
latency); the rest of the wall time is not inference: the container's start,
QEMU, the interpreter, imports and the model's load (``load_ms``, which
includes onnxruntime's import: it is imported where the session is made).
Results: bench/results/smoke_startup.json (medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="rpi4")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    script = ROOT / "build" / args.target / "run.sh"
    if not script.is_file():
        sys.exit(f"no {script}: run edgepack build --target {args.target} first")
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = subprocess.run([str(script), "smoke"], capture_output=True, text=True, check=True).stdout
        wall = time.perf_counter() - t0
        result = json.loads(out.strip().splitlines()[-1])
        lat = result["latency_ms"]
        inference = lat["count"] * lat["mean"] / 1e3
        runs.append(
            {
                "wall_s": round(wall, 3),
                "load_s": round(result["load_ms"] / 1e3, 3),
                "inference_s": round(inference, 3),
                "not_inference_s": round(wall - inference, 3),
                "calls": lat["count"],
                "unit": lat["unit"],
            }
        )
        print(runs[-1], flush=True)
    medians = {
        k: round(statistics.median(r[k] for r in runs), 3)
        for k in ("wall_s", "load_s", "inference_s", "not_inference_s")
    }
    doc = {
        "target": args.target,
        "date": time.strftime("%Y-%m-%d"),
        "command": f"build/{args.target}/run.sh smoke",
        "repeats": args.repeats,
        "medians": medians,
        "goal": "not inference <= 5 s (issue: slim and fast)",
        "runs": runs,
    }
    out_path = ROOT / "bench" / "results" / "smoke_startup.json"
    out_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"medians {medians}\nwrote {out_path}")


if __name__ == "__main__":
    main()
