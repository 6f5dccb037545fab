"""Benchmark: every target built one `edgepack build` after another vs `edgepack build --target all`.

    .venv/bin/python bench/build_all.py [--repeats N] [--jobs 2] [--targets all]

What is measured, exactly: the working tree's project (its build/) is
built once for every target (the warm-up, timed but apart: it is as cold as
build/ was), so the host-side steps (base, deps, wheels, model stages, app)
are cached. Then each repeat
drops the image and smoke steps' stamps and image tars of every target
(those steps run again: buildx or bake, `docker save`, the smoke test under
QEMU or native) and times:

A  sequential: `edgepack build --target T` for each target in turn;
B  parallel: `edgepack build --target all --jobs J` (one buildx bake, J smoke
   tests at a time).

Interleaved (A,B then B,A ...), on a machine shared with others: medians and
ratios are what to quote. buildkit's layer cache is the engine's and is not
pruned (other users share the engine): the image steps rebuild from an
identical context, so their layers are cache hits and what they cost is the
context transfer, the export to the engine and `docker save`. A cold build of
the host-side steps is not what this measures (see the integration test's
duration in the report of the change).

The working tree's edgepack is measured (PYTHONPATH); its commit and whether
it was dirty are in bench/results/build_all.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "runtime" / "src")]

from edgepack.config import Project, select_targets  # noqa: E402
from edgepack.fsutil import write_json  # noqa: E402

INVOKE = Path(sys.executable).parent / "edgepack"  # the installed command (usage errors exit 2)
RESULTS = REPO / "bench" / "results" / "build_all.json"


def invoke(proj: Project, *args: str) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[:2])}
    t0 = time.perf_counter()
    done = subprocess.run([str(INVOKE), *args], cwd=proj.root, env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"invoke {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.returncode


def drop_image_and_smoke(proj: Project) -> int:
    """Forget the image and smoke steps of every target: their stamps and image tars."""
    cache = proj.cache_root
    stamps = [*cache.glob("steps/image-*.json"), *cache.glob("steps/smoke-*.json")]
    for stamp in stamps:
        stamp.unlink()
    shutil.rmtree(cache / "image", ignore_errors=True)
    return len(stamps)


def sequential(proj: Project, names: list[str]) -> dict[str, Any]:
    drop_image_and_smoke(proj)
    per_target = {name: round(invoke(proj, "build", "--target", name)[0], 2) for name in names}
    return {"seconds": round(sum(per_target.values()), 2), "per_target": per_target}


def parallel(proj: Project, jobs: int) -> dict[str, Any]:
    drop_image_and_smoke(proj)
    return {"seconds": round(invoke(proj, "build", "--target", "all", "--jobs", str(jobs))[0], 2)}


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    proj = Project(REPO)
    names = select_targets(proj, "all")
    warm_up, _ = invoke(proj, "build", "--target", "all", "--jobs", str(args.jobs))
    rounds = []
    for i in range(args.repeats):
        order = ("sequential", "parallel") if i % 2 == 0 else ("parallel", "sequential")
        row: dict[str, Any] = {"order": list(order)}
        for which in order:
            row[which] = sequential(proj, names) if which == "sequential" else parallel(proj, args.jobs)
            print(f"round {i + 1} {which}: {row[which]['seconds']:.1f} s", flush=True)
        row["ratio"] = round(row["sequential"]["seconds"] / row["parallel"]["seconds"], 3)
        rounds.append(row)
    seq = statistics.median(r["sequential"]["seconds"] for r in rounds)
    par = statistics.median(r["parallel"]["seconds"] for r in rounds)
    result = {
        "what": "image + smoke steps of every target rebuilt (host-side steps cached): "
        "one `edgepack build --target T` per target vs `edgepack build --target all --jobs J` (buildx bake)",
        "targets": names,
        "jobs": args.jobs,
        "repeats": args.repeats,
        "warm_up_seconds": round(warm_up, 2),
        "median_seconds": {"sequential": seq, "parallel": par},
        "median_ratio_sequential_over_parallel": round(statistics.median(r["ratio"] for r in rounds), 3),
        "rounds": rounds,
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "finished_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_json(RESULTS, result)
    print(json.dumps(result["median_seconds"]), "ratio", result["median_ratio_sequential_over_parallel"])


if __name__ == "__main__":
    main()
