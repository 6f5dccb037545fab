"""Several targets at once: ``edgepack build --target all`` (or ``rpi4,rpi5``).

1. plan each target (pure) and check its platform (binfmt, builder);
2. run the host-side steps (base, deps, wheels, model stages, app) of all
   targets on ``jobs`` threads; they share build/cache, and a step whose key
   two targets share runs once (StepCache.run locks the key);
3. build the images of all targets with one ``docker buildx bake`` from the
   generated build/bake.json (edgepack.bake);
4. smoke-test the images on ``jobs`` threads.

A target that fails stops there with its reason; the others go on. Each
target gets build/<target>/report.json (failed or not) and the caller
renders one summary row per target.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepack import bake
from edgepack.build import Build, ImageJob, finish_image, image_job, plan, publish
from edgepack.config import Project, load_target
from edgepack.errors import CommandError, EdgepackError
from edgepack.fsutil import write_json
from edgepack.host import doctor
from edgepack.locks.drift import Drift
from edgepack.plan import Step, StepRecord
from edgepack.runner import Runner

HOST_STEPS_END = -2  # plan(): [..host steps.., image, smoke]
Announce = Callable[[str, str], None]  # (target, message)


@dataclass
class TargetRun:
    """One target's progress through a multi-target build."""

    name: str
    build: Build | None = None
    steps: list[Step] = field(default_factory=list)
    records: list[StepRecord] = field(default_factory=list)
    failed_step: str = ""
    error: EdgepackError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str:
        """One line: the first line of the error's message, and a failed tool's last ERROR line."""
        if self.error is None:
            return ""
        first = self.error.message.strip().splitlines()[0]
        if isinstance(self.error, CommandError):
            lines = [line.strip() for line in self.error.output.splitlines()]
            tool = [line for line in lines if line.startswith("ERROR")]
            return f"{first} {tool[-1]}" if tool else first
        return first

    def fail(self, step: str, error: EdgepackError) -> None:
        self.failed_step, self.error = step, error


def build_many(
    names: Sequence[str],
    *,
    project: Project,
    runner: Runner,
    jobs: int,
    model: str | None = None,
    announce: Announce = lambda target, message: None,
    drift: Mapping[str, tuple[Drift, ...]] | None = None,
) -> list[TargetRun]:
    drift = drift or {}
    runs = [_prepare(name, project=project, runner=runner, model=model, drift=drift.get(name, ()))
            for name in names]  # fmt: skip
    lock = threading.Lock()

    def say(target: str, message: str) -> None:
        with lock:  # one line at a time from the worker threads
            announce(target, message)

    _each(runs, jobs, lambda r: _host_steps(r, say))
    _images(runs, project=project, runner=runner, announce=say)
    _each(runs, jobs, lambda r: _smoke(r, say))
    return runs


def _prepare(
    name: str, *, project: Project, runner: Runner, model: str | None, drift: tuple[Drift, ...] = ()
) -> TargetRun:
    run = TargetRun(name)
    t0 = time.perf_counter()
    try:
        target = load_target(project, name)
        run.build = Build(target=target, project=project, runner=runner, model=model or target.model,
                          drift=drift)  # fmt: skip
        run.steps = plan(run.build)
        doctor.require_toolchain(runner=runner, platform=target.platform, target=name)
    except EdgepackError as exc:
        run.fail("plan", exc)
    run.seconds += time.perf_counter() - t0
    return run


def _each(runs: Sequence[TargetRun], jobs: int, work: Callable[[TargetRun], None]) -> None:
    """``work`` on every target still ok, ``jobs`` at a time; each records its own failure."""
    live = [r for r in runs if r.ok]
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="edgepack") as pool:
        list(pool.map(lambda r: _timed(r, work), live))


def _timed(run: TargetRun, work: Callable[[TargetRun], None]) -> None:
    t0 = time.perf_counter()
    try:
        work(run)
    finally:
        run.seconds += time.perf_counter() - t0


def _execute(run: TargetRun, steps: Sequence[Step], say: Announce) -> None:
    assert run.build is not None
    cache = run.build.cache
    for step in steps:
        t0 = time.perf_counter()
        say(
            run.name,
            f"{step.name:>8} {'cached' if cache.lookup(step) is not None else 'running'}: {step.summary}",
        )
        try:
            outputs, hit = cache.run(step)
        except EdgepackError as exc:
            run.fail(step.name, exc)
            say(run.name, f"{step.name:>8} FAILED: {run.reason}")
            return
        run.records.append(StepRecord(step.name, step.key, hit, round(time.perf_counter() - t0, 3), outputs))


def _host_steps(run: TargetRun, say: Announce) -> None:
    _execute(run, run.steps[:HOST_STEPS_END], say)


def _smoke(run: TargetRun, say: Announce) -> None:
    _execute(run, run.steps[-1:], say)


# -- images: one bake for every target ------------------------------------------------------------


def _images(runs: Sequence[TargetRun], *, project: Project, runner: Runner, announce: Announce) -> None:
    """One bake for the images it can build; those that RUN something are built alone, at the same time."""
    todo: dict[str, tuple[TargetRun, Step, ImageJob]] = {}
    alone: list[TargetRun] = []
    dockerfile = project.root / "docker" / "runtime.Dockerfile"
    for run in (r for r in runs if r.ok):
        assert run.build is not None
        step = run.steps[HOST_STEPS_END]
        cached = run.build.cache.lookup(step)
        if cached is not None:
            announce(run.name, f"{step.name:>8} cached: {step.summary}")
            run.records.append(StepRecord(step.name, step.key, True, 0.0, cached))
        elif bake.run_lines(dockerfile, json.loads(step.inputs["build_args"])):
            alone.append(run)  # bake (buildx 0.13) cannot give a RUN --network none: buildx build can
        else:
            try:
                todo[run.name] = (run, step, image_job(run.build, step))
            except EdgepackError as exc:
                run.fail(step.name, exc)
    with ThreadPoolExecutor(max_workers=1 + len(alone), thread_name_prefix="edgepack-image") as pool:
        for run in alone:
            pool.submit(_timed, run, lambda r: _execute(r, r.steps[HOST_STEPS_END:-1], announce))
        if todo:
            pool.submit(_bake_images, todo, project=project, runner=runner, announce=announce).result()


def _bake_images(todo: dict[str, tuple[TargetRun, Step, ImageJob]], *, project: Project, runner: Runner,
                 announce: Announce) -> None:  # fmt: skip
    file = project.build_dir / "bake.json"
    write_json(file, bake.bake_file([job for _, _, job in todo.values()]))
    t0 = time.perf_counter()
    failures = run_bake(list(todo), file=file, runner=runner, announce=announce)
    seconds = round(time.perf_counter() - t0, 3)
    for name, (run, step, job) in todo.items():
        if name in failures:
            run.fail(step.name, failures[name])
            continue
        try:
            assert run.build is not None
            outputs = finish_image(run.build, job, step)
            run.build.cache.store(step, outputs)
            run.records.append(StepRecord(step.name, step.key, False, seconds, outputs))
        except EdgepackError as exc:
            run.fail(step.name, exc)


def run_bake(
    names: list[str], *, file: Path, runner: Runner, announce: Announce = lambda target, message: None
) -> dict[str, EdgepackError]:
    """Bake ``names`` together; after a failure, bake each one alone (bake cancels a failure's siblings)."""
    for name in names:
        announce(name, f"{'image':>8} running: docker buildx bake ({len(names)} targets, {file.name})")
    metadata = file.with_name("bake-metadata.json")
    try:
        runner.run(bake.bake_argv(file=file, targets=names, metadata=metadata),
                   what=f"docker buildx bake of {', '.join(names)}")  # fmt: skip
        return {}
    except CommandError as together:
        if len(names) == 1:
            return {names[0]: together}
    failures: dict[str, EdgepackError] = {}
    for name in names:
        try:
            runner.run(bake.bake_argv(file=file, targets=[name], metadata=metadata),
                       what=f"docker buildx bake of {name}")  # fmt: skip
        except CommandError as alone:
            failures[name] = alone
    return failures


# -- reports --------------------------------------------------------------------------------------


def failure_report(run: TargetRun) -> dict[str, Any]:
    """build/<target>/report.json of a target that failed: where, why, and the steps that ran."""
    assert run.error is not None
    return {
        "target": run.name,
        "ok": False,
        "failed_step": run.failed_step,
        "reason": run.reason,
        "error": run.error.render(),
        "exit_code": run.error.exit_code,
        "seconds": round(run.seconds, 3),
        "steps": [
            {"name": r.name, "key": r.key, "cached": r.cached, "seconds": r.seconds} for r in run.records
        ],
    }


def write_failure(run: TargetRun, project: Project) -> Path:
    path = project.build_dir / run.name / "report.json"
    write_json(path, failure_report(run))
    return path


def published(run: TargetRun) -> Path:
    assert run.build is not None
    image = next(r for r in run.records if r.name == "image")
    return publish(run.build, image.outputs)


def summary_rows(runs: Sequence[TargetRun], reports: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """(target, platform, runs on, result, seconds, detail) per target, in the order asked."""
    rows = []
    for run in runs:
        target = run.build.target if run.build else None
        platform = target.platform if target else "?"
        runs_on = target.runs_on if target else "?"
        if run.ok:
            image, smoke = reports[run.name]["image"], reports[run.name]["smoke"]
            ran = (smoke.get("providers") or ["?"])[0]
            detail = f"{image['tag']}  {image['bytes'] / 1e6:.1f} MB, smoke on {ran}"
            rows.append((run.name, platform, runs_on, "ok", f"{run.seconds:.1f}", detail))
        else:
            rows.append((run.name, platform, runs_on, f"failed ({run.failed_step})", f"{run.seconds:.1f}",
                         run.reason))  # fmt: skip
    return rows


def exit_code(runs: Sequence[TargetRun]) -> int:
    """0 when every target passed; else the first failed target's error code."""
    return next((r.error.exit_code for r in runs if r.error is not None), 0)
