"""Benchmark: edgepack's rpi4 build against the usual `RUN pip install` under emulation.

    .venv/bin/python bench/build_rpi4.py [--repeats N]

Each repeat runs both approaches, interleaved (A,B then B,A ...), on a machine
shared with others: medians and ratios are what to quote.

A  edgepack: a fresh copy of the project (the integration test's copy_project)
   with an empty build/ on a machine whose package store holds the downloads
   but which has built nothing (an empty cache of built wheels: every step
   runs, the native wheels are compiled), then a no-change rebuild in the
   same folder (every step must be a cache hit), then another fresh copy on
   the machine that has now built once (fresh_clone_s), and a fresh copy on an
   empty machine (empty package store and nothing built: every .deb and wheel
   downloaded from Debian and PyPI, empty_machine_s).
C  the usual approach with the same content: B's base, apt-get install of
   build-essential, python3-dev and portaudio19-dev, pip install of every
   requirement including webrtcvad and pyaudio from their sdists, under QEMU,
   then the same app folder; the ratios C/A are the ones to quote.
B  the usual approach: FROM a Debian bookworm arm64 base with python3-pip,
   COPY the same wheels, RUN pip install under QEMU, COPY the same model,
   runtime package and smoke input as A, same ENTRYPOINT; `buildx --no-cache`,
   then the same command again (every layer cached).

Both images then run the same smoke command under QEMU -cpu cortex-a72 and
are compared with the host reference. Results: bench/results/build_rpi4.json.

What is measured is the repository's HEAD commit, not the working tree: the
script extracts HEAD (git archive) into a temporary folder and re-runs itself
with that copy of edgepack first on PYTHONPATH, so that edits made by others
while it runs (10-20 minutes) cannot change the code or the cache keys.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import io
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT_ENV = "EDGEPACK_BENCH_SNAPSHOT"  # "<commit>:<folder>" once re-run on a snapshot of HEAD


def rerun_on_head_snapshot() -> None:
    """Extract HEAD and re-run this script with that edgepack; edgepack is not imported yet.

    Plain subprocess, not edgepack's runner: which edgepack to import is what
    this decides. PYTHONPATH comes before the editable install's finder.
    """
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    snapshot = Path(tempfile.mkdtemp(prefix="edgepack-bench-head-"))
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                                 capture_output=True, check=True).stdout  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(snapshot, filter="data")
        path = os.pathsep.join(str(snapshot / p) for p in ("src", "runtime/src"))
        env = {**os.environ, SNAPSHOT_ENV: f"{commit}:{snapshot}", "PYTHONPATH": path,
               "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
        code = subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env, check=False).returncode
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__" and SNAPSHOT_ENV not in os.environ:
    rerun_on_head_snapshot()

COMMIT, _, _src = os.environ.get(SNAPSHOT_ENV, f"working-tree:{REPO}").partition(":")
SRC = Path(_src)  # the project as of COMMIT: targets/, docker/, assets/, models/, runtime/
# The host reference imports edgepack_runtime from SRC: no __pycache__ may
# appear there (the app step's key hashes that folder, __pycache__ included).
sys.dont_write_bytecode = True

import edgepack  # noqa: E402
from edgepack.config import Project, Target, load_target  # noqa: E402
from edgepack.errors import EdgepackError  # noqa: E402
from edgepack.fsutil import sha256_file  # noqa: E402
from edgepack.locks import catalog as lock_catalog  # noqa: E402
from edgepack.pipeline import smoke  # noqa: E402
from edgepack.pipeline.context import Build  # noqa: E402
from edgepack.pipeline.docker import inspect_image  # noqa: E402
from edgepack.pipeline.image import publish  # noqa: E402
from edgepack.pipeline.plan import plan  # noqa: E402
from edgepack.pipeline.steps import StepRecord, execute  # noqa: E402
from edgepack.runner import Result, Runner  # noqa: E402

RESULTS = REPO / "bench" / "results" / "build_rpi4.json"
NS = "edgepack-bench"
BASE_TAG = f"{NS}/debian-bookworm-py:arm64"
A_IMAGE = f"{NS}/rpi4"
B_IMAGE = f"{NS}/usual-rpi4"
C_IMAGE = f"{NS}/same-rpi4"
# C's build dependencies, as a user's Dockerfile would apt-get install them (Depends only, as
# --no-install-recommends): the compilers, Python's headers, PortAudio's (pyaudio), on top of B's base.
C_DEBS = ("build-essential", "python3-dev", "portaudio19-dev")
BASE_INCLUDES = ("python3", "python3-pip", "python3-venv")
# The target's native packages, built from their sdists by pip under QEMU in C (A cross-builds them).
C_SDISTS = ("webrtcvad==2.0.10", "pyaudio==0.2.14")
C_BUILD_REQUIRES = ("setuptools==75.8.0", "wheel==0.45.1")  # pip's build isolation, offline
DEBIAN_MIRROR = "http://deb.debian.org/debian"
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")

_STEP_LINE = re.compile(r"^#(\d+) \[\s*\d+/\d+\] (.*)$")
_DONE_LINE = re.compile(r"^#(\d+) DONE ([\d.]+)s$")
_CACHED_LINE = re.compile(r"^#(\d+) CACHED$")


@dataclasses.dataclass
class TimedRunner(Runner):
    """edgepack's runner, timing every command; optionally forcing `buildx --no-cache`."""

    no_cache_buildx: bool = False
    step: str = ""
    log: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def run(self, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Result:
        args = [os.fspath(a) for a in argv]
        buildx = args[:3] == ["docker", "buildx", "build"]
        if buildx and self.no_cache_buildx:
            args.insert(3, "--no-cache")
        t0 = time.perf_counter()
        result = super().run(args, **kwargs)
        entry = {"step": self.step, "what": kwargs.get("what") or args[0],
                 "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
        if buildx:
            entry["buildx"] = buildx_steps(result.stdout + result.stderr)
        self.log.append(entry)
        return result


def buildx_steps(output: str) -> list[dict[str, Any]]:
    """The Dockerfile instructions of a plain-progress buildx log: cached or seconds taken.

    FROM is left out: it makes no layer (a local base prints CACHED even under --no-cache).
    """
    steps: dict[str, dict[str, Any]] = {}
    for line in output.splitlines():
        if (m := _STEP_LINE.match(line)) and not m[2].startswith("FROM "):
            steps.setdefault(m[1], {"instruction": m[2][:100], "cached": False, "seconds": 0.0})
        elif (m := _CACHED_LINE.match(line)) and m[1] in steps:
            steps[m[1]]["cached"] = True
        elif (m := _DONE_LINE.match(line)) and m[1] in steps:
            steps[m[1]]["seconds"] = float(m[2])
    return list(steps.values())


def sh(runner: Runner, argv: Sequence[str | os.PathLike[str]], what: str, **kw: Any) -> Result:
    return runner.run(argv, what=what, **kw)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - t0, 3)


# --- A: edgepack ---------------------------------------------------------------------------------


def copy_project(dest: Path) -> Project:
    """The integration test's own copy_project (tests/integration/test_build.py, as of COMMIT): no build/.

    Imported rather than restated, so that what a project needs (targets/,
    docker/, assets/, models/, weights, requirements) stays the test's call.
    """
    spec = importlib.util.spec_from_file_location(
        "_bench_test_build", SRC / "tests/integration/test_build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project: Project = module.copy_project(dest)
    return project


@contextlib.contextmanager
def machine_caches(**env: Path) -> Iterator[None]:
    """EDGEPACK_STORE / EDGEPACK_BUILT pointed elsewhere for the block (the machine's caches)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def edgepack_build(b: Build) -> tuple[dict[str, StepRecord], float]:
    """What `edgepack build` does: the locks' files in the store, plan, execute, publish the smoke-tested
    tar. Wall time included."""
    runner = b.runner
    assert isinstance(runner, TimedRunner)

    def on_start(step: Any, hit: bool) -> None:
        runner.step = step.name

    t0 = time.perf_counter()
    runner.step = "sync"
    lock_catalog.sync(b.project, b.target, runner=runner, locked=False, say=lambda line: None)
    runner.step = "plan"
    records = execute(plan(b), b.cache, on_start=on_start)
    runner.step = "publish"
    publish(b, next(r for r in records if r.name == "image").outputs)
    return {r.name: r for r in records}, round(time.perf_counter() - t0, 3)


def fresh_build(
    work: Path, target: Target, *, taken: bool = False
) -> tuple[dict[str, StepRecord], float, TimedRunner, Build]:
    """A fresh copy of the project built once: its records, its build time (smoke phase left out).

    ``taken``: the machine has built this before: every host step must come from its shared steps."""
    project = copy_project(work)
    assert not project.build_dir.exists()
    runner = TimedRunner(echo=False, no_cache_buildx=True)
    b = Build(target=target, project=project, runner=runner, model=target.model)
    records, wall = edgepack_build(b)
    host = {s.name for s in plan(b) if s.phase == "host"}
    if taken:
        missed = [name for name, r in records.items() if name in host and not r.cached]
        assert not missed, f"a fresh clone on a machine that has built ran {missed} again"
        assert not any(r.cached for name, r in records.items() if name not in host)
    else:
        assert not any(r.cached for r in records.values()), "a fresh copy reused a step"
    after_image = records["smoke"].seconds + records["latency"].seconds  # they run the image: not building it
    return records, round(wall - after_image, 3), runner, b


def run_a(work: Path, target: Target) -> dict[str, Any]:
    with machine_caches(EDGEPACK_BUILT=work.with_name(f"{work.name}-built")):  # nothing built on this machine
        cold_figures = run_a_cold(work, target)
        # the machine has built once: another fresh copy (a new clone) takes what it can from its caches
        fresh, fresh_s, fresh_runner, _ = fresh_build(
            work.with_name(f"{work.name}-clone"), target, taken=True
        )
    empty = work.with_name(f"{work.name}-empty")
    with machine_caches(EDGEPACK_STORE=empty / "store", EDGEPACK_BUILT=empty / "built"):
        _, empty_s, empty_runner, _ = fresh_build(empty / "project", target)
    downloads = [e for e in empty_runner.log if e["step"] == "sync"]
    return {
        **cold_figures,
        "fresh_clone_s": fresh_s,
        "fresh_clone_steps_s": {name: r.seconds for name, r in fresh.items()},
        "fresh_clone_commands": fresh_runner.log,
        "empty_machine_s": empty_s,
        "empty_machine_sync_s": round(sum(e["seconds"] for e in downloads), 3),
    }


def run_a_cold(work: Path, target: Target) -> dict[str, Any]:
    cold, build_s, cold_runner, b = fresh_build(work, target)
    cold_wall = build_s + cold["smoke"].seconds + cold["latency"].seconds
    assert list(cold)[-3:] == ["image", "smoke", "latency"] and "app" in cold, list(cold)
    warm_runner = TimedRunner(echo=False)
    again, warm_wall = edgepack_build(dataclasses.replace(b, runner=warm_runner))
    missed = [r.name for r in again.values() if not r.cached]
    changed = [name for name, r in again.items() if r.key != cold[name].key]
    assert not missed, f"no-change rebuild re-ran {missed} (keys changed: {changed})"
    image = cold["image"].outputs
    info = inspect_json(image["tag"], runner=warm_runner)
    buildx = next(e["buildx"] for e in cold_runner.log if "buildx" in e)
    save = sum(e["seconds"] for e in cold_runner.log if e["what"].startswith("docker save"))
    extra = work_beyond_b(cold, cold_runner.log)
    return {
        "cold_build_s": build_s,
        "cold_build_no_save_s": round(build_s - save, 3),
        "cold_build_b_scope_s": round(build_s - sum(extra.values()), 3),
        "rebuild_s": round(warm_wall - again["smoke"].seconds - again["latency"].seconds, 3),
        "smoke_s": cold["smoke"].seconds,
        "image_bytes": info["Size"],
        "tar_bytes": image["tar_bytes"],
        "layers": len(info["RootFS"]["Layers"]),
        "cold_steps_s": {name: r.seconds for name, r in cold.items()},
        "rebuild_steps_s": {name: r.seconds for name, r in again.items()},
        "plan_and_publish_s": round(cold_wall - sum(r.seconds for r in cold.values()), 3),
        **extra,
        "cold_commands": cold_runner.log,
        "buildx_cached_instructions": sum(s["cached"] for s in buildx),
        "smoke_max_abs": max(c["max_abs"] for c in cold["smoke"].outputs["checks"]),
        "smoke_in_image": smoke_timings(cold["smoke"].outputs["emulated"]),
        "tags": [image["tag"], f"{target.image}:latest"],
        "app_root": cold["app"].outputs["root"],
        "reference": cold["app"].outputs["reference"],
        "step_keys": {name: r.key[:12] for name, r in cold.items()},
    }


def work_beyond_b(cold: dict[str, StepRecord], log: list[dict[str, Any]]) -> dict[str, float]:
    """What A's cold build does that B is handed: the model steps and the native wheels' builds.

    B takes A's app folder (model made by the model steps, runtime, smoke input)
    and installs only the wheels PyPI has for the board; A's deps step also
    cross-builds the target's `wheels:` (sysroot, toolchain, compile, repair).
    """
    install = sum(
        e["seconds"]
        for e in log
        # by what the command is, not by the runner's step label: the executor runs base, deps and the
        # model chain at once, so a label set when a step starts may name another one
        if e["what"].startswith(("installing the locked wheels", "precompiling site-packages"))
    )
    assert install > 0, "no wheel installation found in the deps step's commands: update work_beyond_b"
    model = [name for name in cold if name not in ("base", "deps", "image", "smoke", "latency")]
    return {
        "native_wheels_s": round(cold["deps"].seconds - install, 3),
        "model_and_app_s": round(sum(cold[name].seconds for name in model), 3),
    }


def inspect_json(image: str, *, runner: Runner) -> dict[str, Any]:
    out = sh(runner, ["docker", "image", "inspect", image], "docker image inspect", mutates=False)
    return json.loads(out.stdout)[0]


# --- B: the usual approach -----------------------------------------------------------------------


def ensure_base(work: Path, runner: TimedRunner) -> dict[str, Any]:
    """Stands for `docker pull debian:bookworm` (+ python3-pip): built once, never timed, then reused."""
    if (info := inspect_image(BASE_TAG, runner=runner)) is not None:
        return {"tag": BASE_TAG, "reused": True, "id": info.id, "image_bytes": info.size}
    if shutil.which("debootstrap") is None:
        sh(runner, ["apt-get", "install", "-y", "-q", "debootstrap"], "installing debootstrap on the host")
    rootfs, ctx = work / "rootfs", work / "base-context"
    ctx.mkdir(parents=True)
    try:
        debootstrap = [
            "debootstrap",
            "--arch=arm64",
            "--variant=minbase",
            "--include=python3,python3-pip,python3-venv",
            "bookworm",
            rootfs,
            DEBIAN_MIRROR,
        ]
        _, seconds = timed(
            lambda: sh(runner, debootstrap, "debootstrap arm64 bookworm (2nd stage under QEMU)")
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):  # as Debian's own images ship
            for path in (rootfs / junk).glob("*.deb" if "archives" in junk else "*_*"):
                path.unlink()
        sh(
            runner,
            ["tar", "-C", rootfs, "--numeric-owner", "-cf", ctx / "rootfs.tar", "."],
            "tar of the rootfs",
        )
    finally:
        _unmount_below(rootfs, runner)
        shutil.rmtree(rootfs, ignore_errors=True)
    (ctx / "Dockerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n')
    sh(runner, buildx_argv(ctx, tags=[BASE_TAG]), f"buildx of {BASE_TAG}")
    shutil.rmtree(ctx)
    info = inspect_json(BASE_TAG, runner=runner)
    return {"tag": BASE_TAG, "reused": False, "id": info["Id"], "image_bytes": info["Size"],
            "debootstrap_s": seconds}  # fmt: skip


def _unmount_below(root: Path, runner: Runner) -> None:
    """debootstrap mounts /proc and /sys in the target: never rmtree through a mount."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        sh(runner, ["umount", "-l", mount], f"umount {mount}")


def buildx_argv(
    ctx: Path, *, tags: Sequence[str], no_cache: bool = False, iidfile: Path | None = None
) -> list[str]:
    argv = ["docker", "buildx", "build", "--builder", "default", "--platform", "linux/arm64"]
    argv += ["--network", "none", "--pull=false", "--load", "--progress", "plain"]
    argv += ["--no-cache"] if no_cache else []
    argv += ["--iidfile", str(iidfile)] if iidfile else []
    for tag in tags:
        argv += ["--tag", tag]
    return [*argv, str(ctx)]


def usual_dockerfile(target: Target) -> str:
    return "\n".join(
        [
            "# The usual approach: a Debian base with Python, then pip, run under emulation.",
            f"FROM {BASE_TAG}",
            "COPY wheels/ /wheels/",
            "COPY requirements.in /tmp/requirements.in",
            "RUN pip install --break-system-packages --no-index --find-links /wheels -r /tmp/requirements.in",
            "COPY app/ /",
            f"ENV EDGEPACK_THREADS={target.threads} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
            "USER 1000:1000",
            "WORKDIR /home/edge",
            'ENTRYPOINT ["/usr/bin/python3", "-I", "-m", "edgepack_runtime"]',
            'CMD ["smoke"]',
            "",
        ]
    )


def smoke_timings(result: dict[str, Any]) -> dict[str, Any]:
    """What the runtime measured inside the container: model load and per-call latency."""
    return {"load_ms": result.get("load_ms"), "latency_ms_p50": result.get("latency_ms", {}).get("p50"),
            "rtf": result.get("rtf")}  # fmt: skip


def wheel_hashes(folder: Path) -> set[str]:
    return {sha256_file(p) for p in folder.glob("*.whl")}


def locked_hashes(target: Target) -> set[str]:
    text = Project(SRC).lock_path(target, "requirements").read_text()
    return set(re.findall(r"--hash=sha256:([0-9a-f]{64})", text))


def pip_download_argv(requirements: Path, dest: Path) -> list[str]:
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    return [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", *platforms, "--python-version", "3.11", "--implementation", "cp",
            "-r", str(requirements), "-d", str(dest)]  # fmt: skip


def run_b(work: Path, target: Target, *, app_root: Path, reference: Path, tag: str) -> dict[str, Any]:
    runner = TimedRunner(echo=False)
    work.mkdir(parents=True)
    (work / "Dockerfile").write_text(usual_dockerfile(target))
    shutil.copy(SRC / target.requirements, work / "requirements.in")
    shutil.copytree(app_root, work / "app", copy_function=os.link)
    _, download = timed(
        lambda: sh(
            runner,
            pip_download_argv(work / "requirements.in", work / "wheels"),
            "pip download of the aarch64 wheels on the host",
        )
    )
    iid = work / "image.iid"
    cold, buildx = timed(
        lambda: sh(runner, buildx_argv(work, tags=[tag], no_cache=True, iidfile=iid), "buildx")
    )
    first_id = iid.read_text().strip()
    _, save = timed(
        lambda: sh(runner, ["docker", "save", "--output", work / "image.tar", tag], "docker save")
    )
    again, rebuild = timed(
        lambda: sh(runner, buildx_argv(work, tags=[tag], iidfile=iid), "buildx, no change")
    )
    steps_again = buildx_steps(again.stdout + again.stderr)
    assert steps_again and all(s["cached"] for s in steps_again), f"B rebuild missed: {steps_again}"
    assert iid.read_text().strip() == first_id, "B rebuild made a different image"
    emulated, smoke_s = timed(lambda: smoke.run_in_image(tag, target, runner=runner))
    checks = smoke.compare(
        json.loads(reference.read_text()), emulated, atol=target.smoke.atol, rtol=target.smoke.rtol
    )
    smoke.require_match(checks, image=tag)
    info = inspect_json(tag, runner=runner)
    steps = buildx_steps(cold.stdout + cold.stderr)
    return {
        "cold_build_s": round(download + buildx + save, 3),
        "cold_build_no_save_s": round(download + buildx, 3),
        "cold_build_b_scope_s": round(download + buildx + save, 3),
        "rebuild_s": rebuild,
        "smoke_s": smoke_s,
        "image_bytes": info["Size"],
        "tar_bytes": (work / "image.tar").stat().st_size,
        "layers": len(info["RootFS"]["Layers"]),
        "download_s": download,
        "buildx_s": buildx,
        "save_s": save,
        "pip_install_under_qemu_s": sum(
            s["seconds"] for s in steps if s["instruction"].startswith("RUN pip")
        ),
        "buildx_instructions": steps,
        "buildx_cached_instructions": sum(s["cached"] for s in steps),
        "smoke_max_abs": max(c.max_abs for c in checks),
        "smoke_in_image": smoke_timings(emulated),
        "wheels": sorted(p.name for p in (work / "wheels").glob("*.whl")),
        "wheels_are_a_locked_ones": wheel_hashes(work / "wheels") == locked_hashes(target),
        "tags": [tag],
    }


def same_content_dockerfile(target: Target) -> str:
    return "\n".join(
        [
            "# The usual approach with the same content as edgepack's image: a Debian base with Python,",
            "# the build dependencies by apt-get (their .debs copied in: builds have no network here),",
            "# then every requirement by pip, the native ones built from their sdists, under emulation.",
            f"FROM {BASE_TAG}",
            "COPY debs/ /tmp/debs/",
            "RUN apt-get install -y --no-install-recommends /tmp/debs/*.deb && rm -rf /tmp/debs",
            "COPY wheels/ /wheels/",
            "COPY sdists/ /sdists/",
            "COPY requirements.txt /tmp/requirements.txt",
            "RUN pip install --break-system-packages --no-index --find-links /wheels --find-links /sdists "
            "-r /tmp/requirements.txt",
            "COPY app/ /",
            f"ENV EDGEPACK_THREADS={target.threads} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
            "USER 1000:1000",
            "WORKDIR /home/edge",
            'ENTRYPOINT ["/usr/bin/python3", "-I", "-m", "edgepack_runtime"]',
            'CMD ["smoke"]',
            "",
        ]
    )


def build_debs(work: Path, runner: Runner) -> tuple[Path, float]:
    """The .debs C's apt-get installs: C_DEBS' closure for arm64 less what B's base has (debootstrap
    --download-only both ways). Fetched once per run; the seconds are recorded, not in C's cold time."""
    found = {}
    t0 = time.perf_counter()
    for label, includes in (("base", BASE_INCLUDES), ("with-build-deps", (*BASE_INCLUDES, *C_DEBS))):
        root = work / f"debs-{label}"
        sh(
            runner,
            [
                "debootstrap",
                "--arch=arm64",
                "--variant=minbase",
                f"--include={','.join(includes)}",
                "--download-only",
                "bookworm",
                root,
                DEBIAN_MIRROR,
            ],
            f"debootstrap --download-only ({label})",
        )
        found[label] = {p.name: p for p in (root / "var/cache/apt/archives").glob("*.deb")}
    debs = work / "c-debs"
    debs.mkdir()
    for name in sorted(set(found["with-build-deps"]) - set(found["base"])):
        shutil.copy(found["with-build-deps"][name], debs / name)
    for label in found:
        shutil.rmtree(work / f"debs-{label}", ignore_errors=True)
    return debs, round(time.perf_counter() - t0, 3)


def run_c(
    work: Path, target: Target, *, app_root: Path, reference: Path, debs: Path, tag: str
) -> dict[str, Any]:
    runner = TimedRunner(echo=False)
    work.mkdir(parents=True)
    (work / "Dockerfile").write_text(same_content_dockerfile(target))
    shutil.copytree(debs, work / "debs", copy_function=os.link)
    shutil.copy(SRC / target.requirements, work / "requirements.in")
    names = [line.split("#", 1)[0].strip() for line in (work / "requirements.in").read_text().splitlines()]
    (work / "requirements.txt").write_text("\n".join([*(n for n in names if n), *C_SDISTS]) + "\n")
    shutil.copytree(app_root, work / "app", copy_function=os.link)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]

    def download() -> None:
        sh(runner, pip_download_argv(work / "requirements.in", work / "wheels"), "pip download (wheels)")
        sh(
            runner,
            [*pip, "--no-deps", "--no-binary=:all:", *C_SDISTS, "-d", work / "sdists"],
            "pip download (sdists)",
        )
        sh(
            runner,
            [*pip, "--no-deps", "--only-binary=:all:", *C_BUILD_REQUIRES, "-d", work / "wheels"],
            "pip download (build requirements)",
        )

    _, download_s = timed(download)
    iid = work / "image.iid"
    cold, buildx = timed(
        lambda: sh(runner, buildx_argv(work, tags=[tag], no_cache=True, iidfile=iid), "buildx (same content)")
    )
    first_id = iid.read_text().strip()
    _, save = timed(
        lambda: sh(runner, ["docker", "save", "--output", work / "image.tar", tag], "docker save")
    )
    again, rebuild = timed(
        lambda: sh(runner, buildx_argv(work, tags=[tag], iidfile=iid), "buildx, no change")
    )
    steps_again = buildx_steps(again.stdout + again.stderr)
    assert steps_again and all(s["cached"] for s in steps_again), f"C rebuild missed: {steps_again}"
    assert iid.read_text().strip() == first_id, "C rebuild made a different image"
    emulated, smoke_s = timed(lambda: smoke.run_in_image(tag, target, runner=runner))
    checks = smoke.compare(
        json.loads(reference.read_text()), emulated, atol=target.smoke.atol, rtol=target.smoke.rtol
    )
    smoke.require_match(checks, image=tag)
    info = inspect_json(tag, runner=runner)
    steps = buildx_steps(cold.stdout + cold.stderr)
    return {
        "cold_build_s": round(download_s + buildx + save, 3),
        "cold_build_no_save_s": round(download_s + buildx, 3),
        "cold_build_b_scope_s": round(download_s + buildx + save, 3),
        "rebuild_s": rebuild,
        "smoke_s": smoke_s,
        "image_bytes": info["Size"],
        "tar_bytes": (work / "image.tar").stat().st_size,
        "layers": len(info["RootFS"]["Layers"]),
        "download_s": download_s,
        "buildx_s": buildx,
        "save_s": save,
        "apt_get_under_qemu_s": sum(
            s["seconds"] for s in steps if s["instruction"].startswith("RUN apt-get")
        ),
        "pip_install_under_qemu_s": sum(
            s["seconds"] for s in steps if s["instruction"].startswith("RUN pip")
        ),
        "buildx_instructions": steps,
        "buildx_cached_instructions": sum(s["cached"] for s in steps),
        "smoke_max_abs": max(c.max_abs for c in checks),
        "smoke_in_image": smoke_timings(emulated),
        "debs": len(list((work / "debs").glob("*.deb"))),
        "tags": [tag],
    }


# --- one run: repeats, medians, ratios -----------------------------------------------------------

FIGURES = (
    "cold_build_s",
    "cold_build_no_save_s",
    "cold_build_b_scope_s",
    "rebuild_s",
    "smoke_s",
    "image_bytes",
    "tar_bytes",
    "layers",
)
A_DETAILS = (
    "native_wheels_s",
    "model_and_app_s",
    "plan_and_publish_s",
    "buildx_cached_instructions",
    "fresh_clone_s",
    "empty_machine_s",
    "empty_machine_sync_s",
)
B_DETAILS = ("download_s", "buildx_s", "save_s", "pip_install_under_qemu_s", "buildx_cached_instructions")
C_DETAILS = (*B_DETAILS, "apt_get_under_qemu_s")


@dataclasses.dataclass
class Shared:
    """A's app folder and host reference, kept for B (hard links: they outlive A's project copy)."""

    work: Path
    debs: Path | None = None  # C's .debs, fetched once (build_debs)
    app_root: Path | None = None
    reference: Path | None = None
    app_key: str = ""

    def keep(self, a: dict[str, Any]) -> None:
        if self.app_root is None:
            self.app_root, self.reference = self.work / "app-root", self.work / "reference.json"
            shutil.copytree(a["app_root"], self.app_root, copy_function=os.link)
            shutil.copy(a["reference"], self.reference)
            self.app_key = a["step_keys"]["app"]
        assert a["step_keys"]["app"] == self.app_key, "the app step's key changed between repeats"


def one_repeat(index: int, target: Target, shared: Shared) -> dict[str, Any]:
    # the first A makes the app folder B and C reuse; then each arm takes each place once
    order = (("A", "B", "C"), ("C", "B", "A"), ("B", "A", "C"))[index % 3]
    run: dict[str, Any] = {"repeat": index + 1, "order": "".join(order)}
    try:
        for side in order:
            print(f"repeat {index + 1}: {side} ...", file=sys.stderr, flush=True)
            if side == "A":
                run["a"] = run_a(shared.work / f"a{index}", target)
                shared.keep(run["a"])
            elif side == "C":
                assert shared.app_root is not None and shared.reference is not None and shared.debs
                run["c"] = run_c(
                    shared.work / f"c{index}",
                    target,
                    app_root=shared.app_root,
                    reference=shared.reference,
                    debs=shared.debs,
                    tag=f"{C_IMAGE}:r{index + 1}",
                )
            else:
                assert shared.app_root is not None and shared.reference is not None
                run["b"] = run_b(
                    shared.work / f"b{index}",
                    target,
                    app_root=shared.app_root,
                    reference=shared.reference,
                    tag=f"{B_IMAGE}:r{index + 1}",
                )
        for side in order:
            figures = {
                k: run[side.lower()][k] for k in ("cold_build_s", "rebuild_s", "smoke_s", "image_bytes")
            }
            print(f"repeat {index + 1}: {side} {figures}", file=sys.stderr, flush=True)
    finally:
        remove_images(leftover_tags())
        for folder in (
            f"a{index}",
            f"a{index}-built",
            f"a{index}-clone",
            f"a{index}-empty",
            f"b{index}",
            f"c{index}",
        ):
            shutil.rmtree(shared.work / folder, ignore_errors=True)
    for side in ("a", "b", "c"):
        for key in ("app_root", "reference", "tags"):
            run[side].pop(key, None)
    return run


def remove_images(tags: Sequence[str]) -> None:
    """Only this benchmark's images (edgepack-bench/...), never the base it reuses."""
    ours = [t for t in tags if t.startswith(f"{NS}/") and t != BASE_TAG]
    if ours:
        Runner(echo=False).run(
            ["docker", "image", "rm", *ours], what="removing benchmark images", check=False
        )


def leftover_tags() -> list[str]:
    out = Runner(echo=False).run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], mutates=False)
    return [t for t in out.stdout.split() if t.split(":")[0] in (A_IMAGE, B_IMAGE, C_IMAGE)]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in runs)

    medians = {side: {k: med(side, k) for k in (*FIGURES, *details)}
               for side, details in (("a", A_DETAILS), ("b", B_DETAILS), ("c", C_DETAILS))}  # fmt: skip
    medians["a"]["cold_steps_s"] = {
        step: statistics.median(r["a"]["cold_steps_s"][step] for r in runs)
        for step in runs[0]["a"]["cold_steps_s"]
    }

    def ratios(side: str) -> dict[str, Any]:
        return {
            "of_medians": {k: round(medians[side][k] / medians["a"][k], 3) for k in FIGURES},
            "median_of_per_repeat": {
                k: round(statistics.median(r[side][k] / r["a"][k] for r in runs), 3) for k in FIGURES
            },
        }

    a = medians["a"]
    machine_ratios = {
        "empty_machine_over_fresh_clone": round(a["empty_machine_s"] / a["fresh_clone_s"], 3),
        "cold_over_fresh_clone": round(a["cold_build_s"] / a["fresh_clone_s"], 3),
        "c_over_fresh_clone": round(medians["c"]["cold_build_s"] / a["fresh_clone_s"], 3),
        "median_of_per_repeat": {
            "empty_machine_over_fresh_clone": round(
                statistics.median(r["a"]["empty_machine_s"] / r["a"]["fresh_clone_s"] for r in runs), 3
            ),
            "cold_over_fresh_clone": round(
                statistics.median(r["a"]["cold_build_s"] / r["a"]["fresh_clone_s"] for r in runs), 3
            ),
        },
    }
    return {
        "medians": medians,
        "ratios_b_over_a": ratios("b"),
        "ratios_c_over_a": ratios("c"),
        "ratios_a_machine": machine_ratios,
    }


def machine() -> dict[str, Any]:
    def out(argv: list[str]) -> str:
        return Runner(echo=False).run(argv, mutates=False, check=False).stdout.strip()

    binfmt = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").read_text().splitlines()
    qemu = next(line.split()[1] for line in binfmt if line.startswith("interpreter"))
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": int(out(["nproc"])),
        "cpu": cpu,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": f"Debian {Path('/etc/debian_version').read_text().strip()}, kernel {platform.release()}",
        "docker": out(["docker", "version", "--format", "{{.Server.Version}}"]),
        "buildx": out(["docker", "buildx", "version"]),
        "qemu": out([qemu, "--version"]).splitlines()[0],
        "binfmt_flags": next(line.split()[1] for line in binfmt if line.startswith("flags")),
        "host_python": platform.python_version(),
        "shared": "2 cores shared with other engineers' jobs: A and B interleaved, medians quoted",
    }


CONDITIONS = {
    "network caches": "warm, except for A's empty-machine build",
    "network": (
        "pip's HTTP cache (~/.cache/pip) is warm for all; A's cold and fresh-clone builds read the "
        "machine's package store; B's base is not timed."
    ),
    "A cold": (
        "fresh copy of the project by tests/integration/test_build.py's copy_project (targets/, docker/, "
        "assets/, models/, the model's weights, runtime/requirements.in) with no build/; every step runs; "
        "the bench's runner adds --no-cache to edgepack's `docker buildx build` (a byte-identical context "
        "would otherwise reuse the layers of an earlier build); image tag renamed to edgepack-bench/rpi4"
    ),
    "A rebuild": "plan + execute again in the same folder: every step a cache hit (asserted)",
    "A cold, machine": (
        "the package store (~/.cache/edgepack/store: every locked .deb and wheel, by sha256) is warm, as "
        "B's and C's downloads are; the machine's cache of built wheels (EDGEPACK_BUILT) is empty: the "
        "native wheels are compiled"
    ),
    "A fresh clone": (
        "after A's cold build, another fresh copy of the project (new folder, no build/) on the same "
        "machine: the package store, the built wheels and the host steps A ran (base, deps, the model "
        "chain, app: EDGEPACK_BUILT) are there and taken, not run; the image is built (buildx "
        "--no-cache) and published"
    ),
    "A empty machine": (
        "a fresh copy with an empty package store and no built wheels (EDGEPACK_STORE and EDGEPACK_BUILT "
        "pointed at empty folders): every locked .deb (deb.debian.org) and wheel (PyPI) is downloaded "
        "(empty_machine_sync_s), the native wheels compiled; pip's own HTTP cache is warm"
    ),
    "B base": (
        f"{BASE_TAG}: debootstrap --variant=minbase --include=python3,python3-pip,python3-venv bookworm, "
        "FROM scratch + ADD; built once, reused across runs, NOT timed: "
        "it stands for `docker pull debian:bookworm`"
    ),
    "B cold": (
        "pip download of the aarch64 wheels on the host (replaces the network step) + `docker buildx build "
        "--no-cache` (RUN pip install under QEMU) + docker save; "
        "same app folder (model, runtime, smoke input) as A's app step; the wheels are those of "
        "runtime/requirements.in (numpy, onnxruntime and their dependencies), checked equal to A's lock: "
        "the target's cross-built native wheels (wheels: in targets/rpi4.yaml) are in A's image only"
    ),
    "B rebuild": (
        "the same buildx command without --no-cache: every instruction CACHED and same image id (asserted)"
    ),
    "C cold": (
        "the usual way with the same content as A's image: B's base, `apt-get install "
        "--no-install-recommends` of build-essential, python3-dev and portaudio19-dev (their .debs: "
        "debootstrap --download-only, less what the base has; copied into the context, since builds "
        "have no network here; fetched once per run, c_debs_fetch_s, NOT in C's cold time), then pip "
        "install of runtime/requirements.in plus webrtcvad and pyaudio from their sdists (built by pip "
        "under QEMU; setuptools and wheel offline for its build isolation); timed: pip download on the "
        "host + `docker buildx build --no-cache` + docker save"
    ),
    "C rebuild": "as B's: every instruction CACHED and the same image id (asserted)",
    "smoke": "the same `smoke --spec` command, docker run --network none --read-only, QEMU_CPU=cortex-a72, "
    "outputs compared with the host reference; excluded from build times",
}

DEFINITIONS = {
    "cold_build_s": "A: plan + base..image steps (image includes docker save); B: download + buildx + save",
    "cold_build_no_save_s": "the same without docker save of the image tar",
    "cold_build_b_scope_s": (
        "like for like: A's cold build less what B is handed or skips (A's model steps and app step, "
        "whose output B copies, and the cross-build of the target's native wheels, which B's image lacks); "
        "B: as cold_build_s"
    ),
    "rebuild_s": "no-change rebuild (A: plan + cached steps, smoke excluded; B: buildx, all cached)",
    "smoke_s": "the smoke inference under QEMU -cpu cortex-a72, once",
    "image_bytes": "docker image inspect .Size",
    "tar_bytes": "bytes of `docker save` of the image",
    "layers": "len(RootFS.Layers)",
}


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(data, indent=2) + "\n")
    Path(tmp).chmod(0o644)
    Path(tmp).replace(path)


def table(summary: dict[str, Any]) -> str:
    med, rb, rc = summary["medians"], summary["ratios_b_over_a"], summary["ratios_c_over_a"]
    rows = [f"{'median of N repeats':<22}{'A edgepack':>13}{'B usual':>13}{'C same':>13}{'B/A':>8}{'C/A':>8}"]
    for key in FIGURES:
        a, b, c = med["a"][key], med["b"][key], med["c"][key]
        fmt = (lambda v: f"{v / 1e6:,.1f} MB") if key.endswith("bytes") else (lambda v: f"{v:,.1f}")
        rows.append(
            f"{key:<22}{fmt(a):>13}{fmt(b):>13}{fmt(c):>13}{rb['of_medians'][key]:>8.2f}"
            f"{rc['of_medians'][key]:>8.2f}"
        )
    am = summary["ratios_a_machine"]
    rows += [
        "",
        f"A, empty machine (downloads every .deb and wheel, compiles): {med['a']['empty_machine_s']:,.1f} s",
        f"A, cold (store warm, nothing built):                        {med['a']['cold_build_s']:,.1f} s",
        f"A, fresh clone on a machine that has built:                 {med['a']['fresh_clone_s']:,.1f} s",
        f"empty / fresh clone {am['empty_machine_over_fresh_clone']:.2f}x, "
        f"cold / fresh clone {am['cold_over_fresh_clone']:.2f}x",
    ]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved A/B repeats (default 3)")
    args = parser.parse_args(argv)
    assert SRC in Path(edgepack.__file__).parents, f"edgepack imported from {edgepack.__file__}, not {SRC}"
    target = dataclasses.replace(load_target(Project(SRC), "rpi4"), image=A_IMAGE)
    work = Path(tempfile.mkdtemp(prefix="edgepack-bench-"))
    remove_images(leftover_tags())
    load_before = os.getloadavg()
    try:
        base = ensure_base(work, TimedRunner(echo=False))
        debs, debs_s = build_debs(work, TimedRunner(echo=False))
        base = {**base, "c_debs": len(list(debs.glob("*.deb"))), "c_debs_fetch_s": debs_s}
        shared = Shared(work, debs=debs)
        runs = [one_repeat(i, target, shared) for i in range(args.repeats)]
    except EdgepackError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except AssertionError as exc:
        print(f"error: a benchmark check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(runs)
    write_atomically(
        RESULTS,
        {
            "benchmark": "build_rpi4",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": shlex.join(
                [
                    os.path.relpath(sys.executable, REPO),
                    os.path.relpath(__file__, REPO),
                    *(argv if argv is not None else sys.argv[1:]),
                ]
            ),
            "commit": COMMIT,
            "measured": "the HEAD commit, extracted with git archive (not the working tree)",
            "repeats": args.repeats,
            "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
            "conditions": CONDITIONS,
            "definitions": DEFINITIONS,
            "base_image": base,
            **summary,
            "runs": runs,
        },
    )
    print(table(summary).replace("N repeats", f"{args.repeats} repeats"))
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
