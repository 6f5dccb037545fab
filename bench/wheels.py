"""Benchmark: the same wheels built by the `cross` and the `emulated` strategy, in one run.

    .venv/bin/python bench/wheels.py [--rounds N] [--target rpi4] [--package NAME ...]

Each round builds every package with both strategies, interleaved (cross then
emulated, then emulated then cross...), from scratch: the wheelhouse is not
used, only what both share is prepared once and left out of the timings (the
sources on the host, the cross sysroot, the builder image). Timed: the build
(setuptools in a host venv vs cibuildwheel in the builder container under
QEMU) and the auditwheel repair. Each strategy's per-build set-up is in its
time as it is in a real build: cibuildwheel's container and the pinned build
requirements installed in it (under QEMU); `cross` reuses its build venv. The
machine is shared with others: medians and ratios are what to quote (the
ratio of the medians, and the median of the per-round ratios). Sizes: the
wheel before and after repair. It measures the working tree (the commit is
recorded). Results: bench/results/wheels.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from edgepack.config import Project, load_target  # noqa: E402
from edgepack.fsutil import write_json  # noqa: E402
from edgepack.runner import Runner  # noqa: E402
from edgepack.wheels import make_strategy, repair, sources, wheelhouse  # noqa: E402
from edgepack.wheels.strategy import TRIPLETS  # noqa: E402


def one_build(strategy, recipe, src, target, runner, workdir: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t0 = time.perf_counter()
        built = strategy.build(recipe, src, out_dir=Path(tmp) / "built")
        built = repair.fix_tags(built, repair.target_tags(target))
        t1 = time.perf_counter()
        fixed = repair.repair(
            built, target=target, out_dir=Path(tmp) / "out", ldpaths=strategy.ldpaths(), runner=runner
        )
        t2 = time.perf_counter()
        return {
            "build_s": round(t1 - t0, 2),
            "repair_s": round(t2 - t1, 2),
            "total_s": round(t2 - t0, 2),
            "wheel": fixed.name,
            "built_bytes": built.stat().st_size,
            "repaired_bytes": fixed.stat().st_size,
            "grafted": list(wheelhouse.grafted_libraries(fixed)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", default="rpi4")
    parser.add_argument("--package", action="append", default=[])
    args = parser.parse_args()
    project = Project(REPO)
    target = load_target(project, args.target)
    runner = Runner(echo=False)
    recipes = wheelhouse.selected(target, project, args.package)
    strategies = {
        n: make_strategy(n, target=target, project=project, runner=runner) for n in ("cross", "emulated")
    }
    for s in strategies.values():
        s.prepare(recipes)
    srcs = {r.name: sources.fetch(r, cache=project.cache_dir("sources"), runner=runner) for r in recipes}
    workdir = project.build_dir / "bench-wheels"
    workdir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, list[dict[str, object]]]] = {
        r.name: {"cross": [], "emulated": []} for r in recipes
    }
    for i in range(args.rounds):
        order = ("cross", "emulated") if i % 2 == 0 else ("emulated", "cross")
        for recipe in recipes:
            for name in order:
                run = one_build(strategies[name], recipe, srcs[recipe.name], target, runner, workdir)
                runs[recipe.name][name].append(run)
                print(f"round {i + 1} {recipe.name:10} {name:8} {run['total_s']:7.1f} s", flush=True)
    doc = summarise(runs, target=target, rounds=args.rounds)
    doc["tools"] = tool_versions(runner, target)
    write_json(REPO / "bench" / "results" / "wheels.json", doc)
    print(f"wrote {REPO / 'bench' / 'results' / 'wheels.json'}")


def tool_versions(runner: Runner, target) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from importlib.metadata import version

    def first_line(argv: list[str]) -> str:
        result = runner.run(argv, check=False, mutates=False)
        return (result.stdout.strip().splitlines() or ["absent"])[0]

    # The QEMU that runs the builds is the one binfmt_misc names, not necessarily the one on PATH.
    binfmt = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    lines = binfmt.read_text().splitlines() if binfmt.is_file() else []
    interpreter = next((ln.split()[1] for ln in lines if ln.startswith("interpreter ")), "qemu-aarch64")
    return {
        "commit": first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "cibuildwheel": version("cibuildwheel"),
        "auditwheel": version("auditwheel"),
        "docker": first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "qemu": first_line([interpreter, "--version"]),
        "cross_gcc": first_line([f"{TRIPLETS[target.arch]}-gcc", "--version"]),
    }


def summarise(runs, *, target, rounds: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    packages = {}
    for package, by in runs.items():
        med = {
            n: {k: statistics.median(r[k] for r in rs) for k in ("build_s", "repair_s", "total_s")}
            for n, rs in by.items()
        }
        last = {n: rs[-1] for n, rs in by.items()}
        packages[package] = {
            "median": med,
            "emulated_over_cross": {
                "build": round(med["emulated"]["build_s"] / med["cross"]["build_s"], 2),
                "total": round(med["emulated"]["total_s"] / med["cross"]["total_s"], 2),
                "median_of_round_ratios_total": round(
                    statistics.median(
                        e["total_s"] / c["total_s"] for e, c in zip(by["emulated"], by["cross"], strict=True)
                    ),
                    2,
                ),
            },
            "sizes": {
                n: {
                    "built_bytes": r["built_bytes"],
                    "repaired_bytes": r["repaired_bytes"],
                    "wheel": r["wheel"],
                    "grafted": r["grafted"],
                }
                for n, r in last.items()
            },
            "runs": by,
        }
    total = {n: sum(p["median"][n]["total_s"] for p in packages.values()) for n in ("cross", "emulated")}
    return {
        "what": "build + auditwheel repair of the same wheels, cross vs emulated (cibuildwheel under QEMU)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "target": {"name": target.name, "platform": target.platform, "python": target.python},
        "rounds": rounds,
        "interleaved": True,
        "packages": packages,
        "all_packages_median_total_s": total,
        "all_packages_emulated_over_cross": round(total["emulated"] / total["cross"], 2),
    }


if __name__ == "__main__":
    main()
