"""Benchmark: on-device runtimes side by side per model and board (edgepack model.runtimes, more runs).

    .venv/bin/python bench/runtimes.py [--target rpi4] [--only cmdasr,minilm] [--qemu-runs 11] [--runs 50]

For each model: its rpi4 build (cached like any build), then ONNX Runtime (the
build's own int8 model, in the image) and LiteRT (converted by litert-torch, int8
by ai-edge-quantizer, ai-edge-litert mounted beside the image) timed in the
target's image under QEMU with the board's CPU, one thread, medians; ExecuTorch
where the board can have it (none today: the table says why). Ratios are
LiteRT over ONNX Runtime. Results: bench/results/runtimes.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # the runtime package's folder is hashed by the build

from edgepack.config import Project, load_target  # noqa: E402
from edgepack.fsutil import write_json  # noqa: E402
from edgepack.pipeline.context import Build  # noqa: E402
from edgepack.runner import Runner  # noqa: E402
from edgepack.runtimes import compare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = ("models/cmdasr.yaml", "models/minilm.yaml")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="rpi4")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--runs", type=int, default=50, help="timed runs on the host (median)")
    parser.add_argument("--qemu-runs", type=int, default=11, help="timed runs under QEMU (median)")
    args = parser.parse_args()
    compare.RUNS_HOST, compare.RUNS_BOARD = args.runs, args.qemu_runs
    project = Project(ROOT)
    target = load_target(project, args.target)
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    models = []
    for spec_file in [s for s in SPECS if not only or Path(s).stem in only]:
        b = Build(target=target, project=project, runner=Runner(echo=False), model=spec_file)
        t0 = time.perf_counter()
        doc = compare.run(b, ["onnxruntime", "litert", "executorch"])
        rows = {r["runtime"]: r for r in doc["rows"]}
        ort, lite = rows["onnxruntime"], rows["litert"]
        entry: dict[str, Any] = {
            "model": doc["model"],
            "spec": spec_file,
            "fed": doc["fed"],
            "seconds": round(time.perf_counter() - t0, 1),
            "rows": [
                {
                    k: r[k]
                    for k in (
                        "runtime",
                        "chosen",
                        "passes",
                        "model_bytes",
                        "runtime_bytes",
                        "host_ms",
                        "emulated_ms",
                        "start_ms",
                        "peak_rss_mb",
                        "why_not",
                    )
                }
                | {
                    "package": r["available"]["package"],
                    "parity": (r.get("parity") or {}).get(r.get("chosen") or "", {}),
                }
                for r in doc["rows"]
            ],
            "litert_over_onnxruntime": {
                "board_ms": ratio(lite.get("emulated_ms"), ort.get("emulated_ms")),
                "host_ms": ratio(lite.get("host_ms"), ort.get("host_ms")),
                "model_bytes": ratio(lite.get("model_bytes"), ort.get("model_bytes")),
                "runtime_bytes": ratio(lite.get("runtime_bytes"), ort.get("runtime_bytes")),
                "peak_rss_mb": ratio(lite.get("peak_rss_mb"), ort.get("peak_rss_mb")),
                "start_ms": ratio(lite.get("start_ms"), ort.get("start_ms")),
            },
            "choice": doc["choice"],
        }
        said = [
            f"{r['runtime']} {r['emulated_ms']} ms" if r["passes"] else f"{r['runtime']} out"
            for r in doc["rows"]
        ]
        print(f"{doc['model']}: {', '.join(said)} -> {doc['choice']['runtime']}", flush=True)
        models.append(entry)
    out = ROOT / "bench" / "results" / "runtimes.json"
    write_json(
        out,
        {
            "target": target.name,
            "runs_on": target.runs_on,
            "host": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"),
            "runs": {"host": args.runs, "qemu": args.qemu_runs, "threads": 1},
            "note": "medians after a warm-up, batch 1, one thread; QEMU time is emulation's, good for ratios",
            "models": models,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
