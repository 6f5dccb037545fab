"""Benchmark: the 32-bit board (rpi-zero2w, qemu-arm cortex-a7) beside rpi4 (qemu-aarch64 cortex-a72).

    .venv/bin/python bench/armv7.py [--repeats 3] [--smoke-runs 5] [--start-runs 5]

On a machine shared with others, so every figure is a median and paired runs
are interleaved (A,B then B,A ...):

cold build   rpi-zero2w from a fresh copy of the project (the integration
             test's copy_project) with an empty build/, every step run, and
             `docker buildx build --no-cache` (so the image's bytecode is
             compiled under QEMU each time, as on a first build); --repeats.
smoke        the smoke command of each built image (rpi4's is built first in
             this checkout if needed, untimed): per-chunk latency p50/p95, RTF,
             model load, peak RSS; QEMU's time, not a board's.
start        `python3 -I -c "import numpy, onnxruntime, edgepack_runtime.smoke"`
             in the rpi-zero2w image under cortex-a7, with the bytecode the
             image build compiled, and without it (-X pycache_prefix at an
             empty path: every module is compiled in memory at each start, as
             a read-only image without bytecode would): docker run wall time
             and the in-process import time.

Results: bench/results/armv7.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "runtime" / "src")]

from tests.integration.test_build import copy_project  # noqa: E402

from edgepack.config import Project, Target, load_target  # noqa: E402
from edgepack.fsutil import write_json  # noqa: E402
from edgepack.pipeline import smoke  # noqa: E402
from edgepack.pipeline.context import Build  # noqa: E402
from edgepack.pipeline.docker import run_argv  # noqa: E402
from edgepack.pipeline.image import publish  # noqa: E402
from edgepack.pipeline.plan import plan  # noqa: E402
from edgepack.pipeline.steps import execute  # noqa: E402
from edgepack.runner import Result, Runner  # noqa: E402

BOARD, REFERENCE = "rpi-zero2w", "rpi4"
IMPORTS = "import time; t = time.perf_counter(); import numpy, onnxruntime, edgepack_runtime.smoke; "
IMPORTS += "print(round((time.perf_counter() - t) * 1e3, 1))"


class NoCacheRunner(Runner):
    """edgepack's runner, adding --no-cache to `docker buildx build`: a cold image build each time."""

    def run(self, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Result:
        args = [str(a) for a in argv]
        if args[:3] == ["docker", "buildx", "build"]:
            args.insert(3, "--no-cache")
        return super().run(args, **kwargs)


def built(project: Project, target: Target, runner: Runner) -> dict[str, Any]:
    """Build (or reuse) the target in ``project``; per-step seconds and the image."""
    b = Build(target=target, project=project, runner=runner, model=target.model)
    t0 = time.perf_counter()
    records = execute(plan(b), b.cache)
    total = time.perf_counter() - t0
    image = next(r for r in records if r.name == "image").outputs
    publish(b, image)
    return {"seconds": round(total, 1), "steps": {r.name: r.seconds for r in records},
            "image": image, "cached": [r.name for r in records if r.cached]}  # fmt: skip


def cold_builds(target_name: str, repeats: int) -> list[dict[str, Any]]:
    runs = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory(prefix="edgepack-bench-armv7-") as tmp:
            project = copy_project(Path(tmp))
            result = built(project, load_target(project, target_name), NoCacheRunner(echo=False))
        assert not result["cached"], result["cached"]
        img = result.pop("image")
        runs.append({**result, "image_bytes": img["bytes"], "tar_bytes": img["tar_bytes"], "tag": img["tag"]})
        print(
            f"cold build {i + 1}/{repeats}: {result['seconds']} s, image {img['bytes'] / 1e6:.1f} MB",
            flush=True,
        )
    return runs


def smoke_run(tag: str, target: Target, runner: Runner) -> dict[str, Any]:
    result = smoke.run_in_image(tag, target, runner=runner)
    lat = result["latency_ms"]
    return {"p50_ms": lat["p50"], "p95_ms": lat["p95"], "rtf": result["rtf"], "load_ms": result["load_ms"],
            "peak_rss_mb": result.get("peak_rss_mb")}  # fmt: skip


def start_run(tag: str, target: Target, *, bytecode: bool) -> dict[str, float]:
    code = ["-I", *([] if bytecode else ["-X", "pycache_prefix=/nonexistent"]), "-c", IMPORTS]
    argv = run_argv(image=tag, platform=target.platform, qemu_cpu=target.qemu_cpu, command=code)
    argv[argv.index(tag) : argv.index(tag)] = ["--entrypoint", "/usr/bin/python3"]
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return {"wall_s": round(time.perf_counter() - t0, 3), "import_ms": float(out.strip().splitlines()[-1])}


def median(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold builds of rpi-zero2w")
    parser.add_argument("--smoke-runs", type=int, default=5, help="smoke runs per image, interleaved")
    parser.add_argument(
        "--start-runs", type=int, default=5, help="interpreter starts per variant, interleaved"
    )
    args = parser.parse_args()
    runner = Runner(echo=False)
    project = Project(ROOT)
    targets = {n: load_target(project, n) for n in (BOARD, REFERENCE)}
    cold = cold_builds(BOARD, args.repeats)
    # The images the smoke and start runs use: this checkout's build/ (built now if missing, untimed).
    images = {n: built(project, t, runner)["image"] for n, t in targets.items()}
    smokes: dict[str, list[dict[str, Any]]] = {n: [] for n in targets}
    for i in range(args.smoke_runs):
        for name in (BOARD, REFERENCE) if i % 2 == 0 else (REFERENCE, BOARD):
            smokes[name].append(smoke_run(images[name]["id"], targets[name], runner))
    starts: dict[str, list[dict[str, float]]] = {"bytecode": [], "no_bytecode": []}
    for i in range(args.start_runs):
        for variant in ("bytecode", "no_bytecode") if i % 2 == 0 else ("no_bytecode", "bytecode"):
            starts[variant].append(
                start_run(images[BOARD]["id"], targets[BOARD], bytecode=variant == "bytecode")
            )
    doc = summary(args, targets, cold, images, smokes, starts)
    out = ROOT / "bench" / "results" / "armv7.json"
    write_json(out, doc)
    print(f"wrote {out}")
    return 0


def summary(
    args: Any, targets: dict[str, Target], cold: list, images: dict, smokes: dict, starts: dict
) -> dict:
    keys = ("p50_ms", "p95_ms", "rtf", "load_ms", "peak_rss_mb")
    smoke_doc: dict[str, Any] = {}
    for name, rows in smokes.items():
        t, img = targets[name], images[name]
        medians = {k: median(rows, k) for k in keys}
        smoke_doc[name] = {"qemu_cpu": t.qemu_cpu, "platform": t.platform, "image_id": img["id"],
                           "image_bytes": img["bytes"], "runs": rows, **medians}  # fmt: skip
    board, ref = smoke_doc[BOARD], smoke_doc[REFERENCE]
    smoke_doc["board_over_reference"] = {k: round(board[k] / ref[k], 2) for k in ("p50_ms", "p95_ms", "rtf")}
    start: dict[str, Any] = {
        v: {"runs": rows, "wall_s": median(rows, "wall_s"), "import_ms": median(rows, "import_ms")}
        for v, rows in starts.items()
    }
    start["no_bytecode_over_bytecode"] = round(
        start["no_bytecode"]["wall_s"] / start["bytecode"]["wall_s"], 2
    )
    build = {"target": BOARD, "runs": cold, "seconds": median(cold, "seconds"),
             "image_bytes": median(cold, "image_bytes"), "tar_bytes": median(cold, "tar_bytes"),
             "image_step_s": round(statistics.median(r["steps"]["image"] for r in cold), 1)}  # fmt: skip
    machine = {"cpus": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version()}
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "args": vars(args),
        "cold_build": build,
        "smoke": smoke_doc,
        "start": start,
        "note": "QEMU user-mode times on a shared 2-core x86 host: they rank, they do not predict a board. "
        "peak_rss_mb is the QEMU process's VmHWM (the emulator's memory included).",
    }


if __name__ == "__main__":
    sys.exit(main())
