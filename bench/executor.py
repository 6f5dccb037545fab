"""Benchmark: a cold rpi4 build with the DAG executor running independent steps at once vs one at a time.

    .venv/bin/python bench/executor.py [--repeats 3] [--model models/silero-vad.yaml]

Same code, same machine, same run: A is `edgepack build --jobs 1` (one step at a time, as the
build ran before the executor), B is `--jobs 2` (base, deps and the model chain at once: the
default). Each repeat builds both from fresh copies of the project with empty build folders
(every step runs); the package store is warm (fetching is not what is compared). Interleaved
A,B then B,A; medians and the ratio A/B go to bench/results/executor.json. The machine is shared
(2 cores): quote medians, not single runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EDGEPACK = Path(sys.executable).parent / "edgepack"
RESULTS = REPO / "bench" / "results" / "executor.json"


def fresh_project(dest: Path) -> Path:
    for part in ("targets", "docker", "assets", "models", "speech/weights", "wheels"):
        shutil.copytree(REPO / part, dest / part, symlinks=True)
    (dest / "runtime").mkdir()
    shutil.copy(REPO / "runtime" / "requirements.in", dest / "runtime")
    (dest / "edgepack.toml").write_text("")
    return dest


def cold_build(jobs: int, model: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"bench-jobs{jobs}-") as tmp:
        project = fresh_project(Path(tmp))
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(EDGEPACK), "build", "--target", "rpi4", "--model", model, "--jobs", str(jobs)],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - t0
        report = project / "build/rpi4/report.json"
        steps = json.loads(report.read_text())["steps"] if report.is_file() else []
    return {
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "ok": done.returncode == 0,
        "exit": done.returncode,
        "steps": {s["name"]: s["seconds"] for s in steps},
        "error": "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="models/silero-vad.yaml")
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    for i in range(args.repeats):
        order = (1, 2) if i % 2 == 0 else (2, 1)
        for jobs in order:
            result = cold_build(jobs, args.model)
            print(json.dumps(result), flush=True)
            runs.append(result)
    a = [float(r["seconds"]) for r in runs if r["jobs"] == 1]  # type: ignore[arg-type]
    b = [float(r["seconds"]) for r in runs if r["jobs"] == 2]  # type: ignore[arg-type]
    summary = {
        "what": "cold rpi4 build, fresh project copy, warm package store: --jobs 1 (A) vs --jobs 2 (B)",
        "command": f".venv/bin/python bench/executor.py --repeats {args.repeats} --model {args.model}",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} cores, shared",
        "median_s": {"A_jobs1": statistics.median(a), "B_jobs2": statistics.median(b)},
        "ratio_A_over_B": round(statistics.median(a) / statistics.median(b), 2),
        "all_ok": all(r["ok"] for r in runs),
        "runs": runs,
    }
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(json.dumps({k: summary[k] for k in ("median_s", "ratio_A_over_B", "all_ok")}))


if __name__ == "__main__":
    main()
