"""Benchmark of the bundled ASR model (models/cmdasr.yaml): WER, RTF, chunk latency, size.

    .venv/bin/python bench/asr.py [--target rpi4] [--qemu-files 3]

* held-out WER (assets/eval/cmdasr, streaming, the runtime's own decoder), fp32 export and int8;
* host, 1 thread: RTF of streaming (320 ms chunks) and whole-file runs, per-chunk latency p50/p95,
  and how many utterances give the same text streamed and whole;
* QEMU cortex-a72: the built image's ``transcribe --json`` (streaming and whole file) on the first
  --qemu-files utterances, mounted read-only (`docker run --network none --platform linux/arm64
  -e QEMU_CPU=cortex-a72`); the RTF is the runtime's compute time over the audio's duration;
* model sizes. Medians, in one run. Needs the target's image (invoke build --target rpi4).
Results: bench/results/asr.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.dont_write_bytecode = True  # the runtime package's folder is hashed by the build
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgepack import asrdemo  # noqa: E402
from edgepack.config import Project, load_target  # noqa: E402
from edgepack_runtime.asr import Recognizer, transcribe_stream  # noqa: E402
from edgepack_runtime.asrcli import corpus_wer  # noqa: E402

CHUNK_MS = 320


def host(model: Path, data: list[tuple[np.ndarray, str]]) -> dict[str, Any]:
    rec = Recognizer.load(model, threads=1)
    rec.transcribe(data[0][0])  # warm-up
    refs = [t for _, t in data]
    streams = [transcribe_stream(rec, x, chunk_ms=CHUNK_MS) for x, _ in data]
    batches = [rec.transcribe(x) for x, _ in data]
    chunk_ms = [ms for s in streams for ms in s.chunk_ms]
    return {
        "wer_stream": round(corpus_wer(refs, [s.text for s in streams]), 4),
        "wer_batch": round(corpus_wer(refs, [b.text for b in batches]), 4),
        "same_text_stream_vs_batch": sum(s.text == b.text for s, b in zip(streams, batches, strict=True)),
        "rtf_stream_p50": round(statistics.median(s.rtf for s in streams), 4),
        "rtf_batch_p50": round(statistics.median(b.rtf for b in batches), 4),
        "chunk_latency_ms_p50": round(float(np.percentile(chunk_ms, 50)), 3),
        "chunk_latency_ms_p95": round(float(np.percentile(chunk_ms, 95)), 3),
        "bytes": model.stat().st_size,
    }


def qemu(image: str, cpu: str, files: list[str]) -> dict[str, Any]:
    eval_dir = ROOT / asrdemo.MANIFEST.parent
    out: dict[str, Any] = {"image": image, "qemu_cpu": cpu, "files": files}
    for mode, extra in (("stream", ["--stream", "--chunk-ms", str(CHUNK_MS)]), ("batch", [])):
        rtf, lat = [], []
        for name in files:
            argv = ["docker", "run", "--rm", "--network", "none", "--platform", "linux/arm64", "-e",
                    f"QEMU_CPU={cpu}", "-v", f"{eval_dir}:/eval:ro", image, "transcribe", f"/eval/{name}",
                    "--json", *extra]  # fmt: skip
            t0 = time.perf_counter()
            r = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)
            result = json.loads(r.stdout.strip().splitlines()[-1])
            rtf.append(result["rtf"])
            lat += [result["chunk_latency_ms"]["p50"]] if mode == "stream" else []
            out.setdefault("wall_s_per_run", []).append(round(time.perf_counter() - t0, 2))
        out[f"rtf_{mode}_p50"] = round(statistics.median(rtf), 4)
        if lat:
            out["chunk_latency_ms_p50_median"] = round(statistics.median(lat), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="rpi4")
    parser.add_argument("--qemu-files", type=int, default=3)
    args = parser.parse_args()
    project = Project(ROOT)
    target = load_target(project, args.target)
    models = asrdemo.models(project, target=args.target)
    data = asrdemo.heldout(project)
    report = json.loads((project.build_dir / args.target / "report.json").read_text())
    rows = [json.loads(line) for line in (ROOT / asrdemo.MANIFEST).read_text().splitlines() if line.strip()]
    result = {
        "model": asrdemo.SPEC,
        "training_test_wer": json.loads((ROOT / "speech/weights/cmdasr.json").read_text()).get("test_wer"),
        "utterances": len(data),
        "chunk_ms": CHUNK_MS,
        "host": {"machine": platform.machine(), "processor": platform.processor(), "threads": 1},
        "fp32": host(models["fp32"], data),
        "int8": host(models["int8"], data),
        "qemu_int8": qemu(
            report["image"]["tag"], target.qemu_cpu, [r["audio"] for r in rows[: args.qemu_files]]
        ),
    }
    out = ROOT / "bench" / "results" / "asr.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
