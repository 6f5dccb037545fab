"""Benchmark: each real model, fp32 vs int8: size, latency (host and QEMU cortex-a72), task metric.

    .venv/bin/python bench/models.py [--target rpi4] [--runs 20] [--qemu-runs 5] [--whisper-qemu-runs N]

Needs the target's image built (edgepack build --target rpi4): the QEMU figures
run its `bench-model` command (edgepack_runtime, numpy + onnxruntime only)
with QEMU_CPU=<the target's CPU>, one thread, on the same inputs as the host.
The image is resolved to its id once, at the start (and recorded), so that a
build retagging `<image>:latest` meanwhile cannot change the runtime measured.
The models are files mounted into it: the model the image bakes is not used.
The int8 variant of a model is the one its spec bakes, or dynamic int8 for a
spec that keeps fp32 (Whisper). Results: bench/results/models.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.dont_write_bytecode = True  # the runtime package's folder is hashed by the build

from edgepack.config import Project, load_target  # noqa: E402
from edgepack.fsutil import write_json  # noqa: E402
from edgepack.modelpipe import inputs, quantize, samples, steps, taskmetric  # noqa: E402
from edgepack.modelpipe.export import run_onnx, session  # noqa: E402
from edgepack.modelpipe.spec import load_spec  # noqa: E402
from edgepack.pipeline.context import Build  # noqa: E402
from edgepack.pipeline.docker import inspect_image, run_argv  # noqa: E402
from edgepack.pipeline.steps import execute  # noqa: E402
from edgepack.runner import Runner  # noqa: E402
from edgepack_runtime.benchmodel import bench_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = (
    "models/silero-vad.yaml",
    "models/whisper-tiny-encoder.yaml",
    "models/whisper-tiny-decoder.yaml",
    # The guide's models (docs/your-model.md): real samples, quantize.mode auto.
    "models/magika.yaml",
    "models/ppocr-det.yaml",
    "models/minilm.yaml",
)


def variants(project: Project, target: str, spec_file: str, work: Path) -> tuple[Path, Path, Any, dict]:
    b = Build(
        target=load_target(project, target), project=project, runner=Runner(echo=False), model=spec_file
    )
    out = {r.name: r.outputs for r in execute(steps.plan_model(b), b.cache)}
    spec = load_spec(ROOT / spec_file)
    fp32 = Path(out["export"]["dir"]) / "model.onnx"
    if spec.quantize.mode != "none":
        record = json.loads((Path(out["quantize"]["dir"]) / "quantize.json").read_text())
        return fp32, Path(out["quantize"]["dir"]) / "model.onnx", spec, record
    dyn = dataclasses.replace(spec, quantize=dataclasses.replace(spec.quantize, mode="dynamic"))
    int8 = work / f"{spec.name}.int8.onnx"
    quantize.quantize(dyn, fp32, int8, calibration=[], cpu=quantize.cpu_info(b.target.cpu_model),
                      runtime=steps.target_onnxruntime(b))  # fmt: skip
    return fp32, int8, dyn, {"mode": "dynamic (bench only: the spec keeps fp32)"}


def feeds_for(spec: Any, fp32: Path) -> dict[str, np.ndarray]:
    """Batch 1 at the export sizes (a board runs one stream); Silero: a real chunk of speech."""
    if spec.task == "vad":
        kept: list[dict[str, np.ndarray]] = []
        audio = taskmetric.read_audio(ROOT / spec.evaluate.audio[0], spec, what="bench")
        taskmetric.vad_probs(fp32, audio, keep=kept)
        return kept[len(kept) // 2]
    if spec.samples:  # the smoke input: the first sample set
        return samples.load(spec.samples, spec, root=ROOT)[0].feeds
    return inputs.make_feeds(spec, {**inputs.export_sizes(spec), "batch": 1}, seed=spec.seed)


def emulated(image: str, target: Any, model: Path, npz: Path, runs: int, runner: Runner) -> dict[str, Any]:
    argv = run_argv(
        image=image,
        platform=target.platform,
        qemu_cpu=target.qemu_cpu,
        command=[
            "bench-model",
            "--model",
            f"/bench/{model.name}",
            "--inputs",
            f"/bench/{npz.name}",
            "--runs",
            str(runs),
            "--threads",
            "1",
        ],
        volumes={model.parent: "/bench"},
    )
    result = runner.run(argv, what=f"bench-model under QEMU ({target.qemu_cpu})", timeout=1800)
    return json.loads(result.stdout.strip().splitlines()[-1])


def metric(spec: Any, fp32: Path, int8: Path, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    if spec.task == "vad":
        return {m.name: m.value for m in taskmetric.vad_agreement(spec, fp32, int8, ROOT)}
    if spec.samples:  # the task metric over every sample, as the validate step computes it
        ref_s, got_s = session(fp32), session(int8)
        sets = [(s.label, run_onnx(ref_s, s.feeds), run_onnx(got_s, s.feeds))
                for s in samples.load(spec.samples, spec, root=ROOT)]  # fmt: skip
        return {m.name: m.value for m in taskmetric.task_metrics(spec, fp32, int8, ROOT, sets)}
    ref, got = run_onnx(session(fp32), feeds), run_onnx(session(int8), feeds)
    cos = [
        float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))
        for a, b in zip(ref, got, strict=True)
    ]
    return {"output cosine (no task metric: random weights)": min(cos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="rpi4")
    parser.add_argument("--runs", type=int, default=20, help="timed runs on the host (median)")
    parser.add_argument("--qemu-runs", type=int, default=5, help="timed runs under QEMU (median)")
    parser.add_argument(
        "--whisper-qemu-runs",
        type=int,
        help="timed runs under QEMU for the Whisper models (default: --qemu-runs)",
    )
    parser.add_argument("--only", default="", help="comma-separated model names (e.g. magika,minilm)")
    args = parser.parse_args()
    project = Project(ROOT)
    target = load_target(project, args.target)
    runner = Runner(echo=False)
    image = inspect_image(f"{target.image}:latest", runner=runner)
    if image is None:
        sys.exit(f"no image {target.image}:latest: run edgepack build --target {target.name} first")
    qemu_runs = {s: args.qemu_runs for s in SPECS}
    if args.whisper_qemu_runs is not None:
        qemu_runs.update({s: args.whisper_qemu_runs for s in SPECS if "whisper" in s})
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # the image runs as uid 1000
        only = {n.strip() for n in args.only.split(",") if n.strip()}
        for spec_file in [s for s in SPECS if not only or Path(s).stem in only]:
            fp32, int8, spec, record = variants(project, args.target, spec_file, work)
            feeds = feeds_for(spec, fp32)
            row: dict[str, Any] = {"model": spec.name, "spec": spec_file, "quantize": spec.quantize.mode}
            row["chosen"] = record.get("chosen", record.get("mode"))
            row["auto_attempts"] = [
                {
                    k: a[k]
                    for k in ("label", "ok", "bytes", "host_ms", "quantized_nodes", "least_cosine", "why")
                }
                for a in record.get("attempts", [])
            ]
            row["feeds"] = {k: list(v.shape) for k, v in feeds.items()}
            npz = work / f"{spec.name}.npz"
            np.savez(npz, **feeds)
            for label, model in (("fp32", fp32), ("int8", int8)):
                staged = work / f"{spec.name}.{label}.onnx"
                if model != staged:
                    staged.write_bytes(model.read_bytes())
                for p in (staged, npz):
                    p.chmod(0o644)
                host = bench_model(staged, npz, runs=args.runs, threads=1)
                t0 = time.perf_counter()
                qemu = emulated(image.id, target, staged, npz, qemu_runs[spec_file], runner)
                qemu_wall = time.perf_counter() - t0
                row[label] = {
                    "bytes": staged.stat().st_size,
                    "host_ms": round(host["median_ms"], 3),
                    "qemu_ms": round(qemu["median_ms"], 3),
                    "qemu_min_ms": round(qemu["min_ms"], 3),
                    "qemu_runs": qemu["runs"],
                    "qemu_wall_s": round(qemu_wall, 1),
                    "qemu_cpu_features": qemu["runtime"]["cpu_features"],
                }
                print(
                    f"{spec.name:<24} {label}: {row[label]['bytes'] / 1e6:7.2f} MB  "
                    f"host {row[label]['host_ms']:9.3f} ms  qemu {row[label]['qemu_ms']:10.3f} ms",
                    flush=True,
                )
            row["int8_over_fp32"] = {
                k: round(row["int8"][k] / row["fp32"][k], 3) for k in ("bytes", "host_ms", "qemu_ms")
            }
            row["metric"] = metric(spec, fp32, int8, feeds)
            print(f"{'':<24} metric {row['metric']}", flush=True)
            rows.append(row)
    doc = {
        "target": target.name,
        "qemu_cpu": target.qemu_cpu,
        "host": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "image": {
            "ref": f"{target.image}:latest",
            "id": image.id,
            "revision": image.labels.get("org.opencontainers.image.revision", ""),
        },
        "runs": {"host": args.runs, "qemu": args.qemu_runs, "qemu_by_spec": qemu_runs},
        "note": "median of runs after a warm-up, 1 thread, batch 1; QEMU time is emulation's, not a board's",
        "models": rows,
    }
    out = ROOT / "bench" / "results" / "models.json"
    if only and out.is_file():  # a partial run replaces its own rows, keeps the others'
        old = json.loads(out.read_text())
        doc["models"] = [r for r in old.get("models", []) if r["model"] not in only] + rows
    write_json(out, doc)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
