"""Building one target or several (``edgepack build --target all`` or ``rpi4,rpi5``) through one executor.

1. plan each target (pure) and check its platform (binfmt, builder);
2. run every target's steps in the DAG executor on ``jobs`` threads: base,
   deps and the model chain of all targets at once; they share build/cache,
   and a step whose key two targets share runs once (StepCache.run locks it);
3. with several targets, their images are built by one ``docker buildx bake``
   from the generated build/bake.json (pipeline.bake); one target builds its
   own with ``buildx build`` (on a native node when one builds its platform);
4. smoke tests run as their images are ready.

A target that fails stops there with its reason; the others go on. Each
target gets build/<target>/report.json (failed or not) and the caller
renders one summary row per target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepack.config import Project, Target, load_target
from edgepack.errors import CommandError, EdgepackError
from edgepack.fsutil import write_json
from edgepack.host import doctor
from edgepack.locks.drift import Drift
from edgepack.pipeline import bake
from edgepack.pipeline.context import Build, ModelOptions
from edgepack.pipeline.docker import BuildxOptions
from edgepack.pipeline.executor import NO_EVENTS, Events, TargetRun, execute_many
from edgepack.pipeline.image import ImageJob, finish_image, image_job
from edgepack.pipeline.outputs import publish_outputs
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import Outputs, Step, StepRecord
from edgepack.runner import Runner


@dataclass
class TargetBuild:
    """One target of a build: its context and steps (once planned), and its run through the executor."""

    name: str
    build: Build | None = None
    run: TargetRun | None = None
    failed_step: str = ""
    error: EdgepackError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.run is None or self.run.ok)

    @property
    def failure(self) -> tuple[str, EdgepackError] | None:
        if self.error is not None:
            return self.failed_step, self.error
        if self.run is not None and self.run.error is not None:
            return self.run.failed_step, self.run.error
        return None

    @property
    def records(self) -> list[StepRecord]:
        return self.run.ordered_records() if self.run else []

    @property
    def seconds(self) -> float:
        return self.run.seconds if self.run else 0.0

    @property
    def reason(self) -> str:
        """One line: the first line of the error's message, and a failed tool's last ERROR line."""
        failure = self.failure
        if failure is None:
            return ""
        error = failure[1]
        first = error.message.strip().splitlines()[0]
        if isinstance(error, CommandError):
            lines = [line.strip() for line in error.output.splitlines()]
            tool = [line for line in lines if line.startswith("ERROR")]
            return f"{first} {tool[-1]}" if tool else first
        return first


def prepare(
    name: str,
    *,
    project: Project,
    runner: Runner,
    model: str | None,
    drift: tuple[Drift, ...] = (),
    buildx: BuildxOptions | None = None,
    preflight: bool = True,
    model_options: ModelOptions | None = None,
    target: Target | None = None,
) -> TargetBuild:
    """Load (unless ``target`` is given), plan and (``preflight``) check the toolchain for one target;
    a failure is kept, not raised."""
    result = TargetBuild(name)
    try:
        target = target or load_target(project, name)
        result.build = Build(
            target=target,
            project=project,
            runner=runner,
            model=model or target.model,
            buildx=buildx or BuildxOptions(),
            drift=drift,
            model_options=model_options or ModelOptions(),
        )
        if preflight:
            doctor.require_toolchain(runner=runner, platform=target.platform, target=name)
        steps = plan(result.build)
        result.run = TargetRun(name, steps, result.build.cache)
    except EdgepackError as exc:
        result.failed_step, result.error = "plan", exc
    return result


def all_cached(t: TargetBuild) -> bool:
    """Every step of a planned target would be reused (a no-change rebuild): nothing will run."""
    from edgepack.pipeline.steps import cached_state

    return (
        t.run is not None and t.build is not None and all(cached_state(t.run.steps, t.build.cache).values())
    )


def build_targets(
    targets: Sequence[TargetBuild], *, project: Project, runner: Runner, jobs: int, events: Events = NO_EVENTS
) -> None:
    """Run the planned targets through the one executor; several targets' images go through one bake."""
    runs = [t.run for t in targets if t.run is not None and t.error is None]
    builds = {t.name: t.build for t in targets if t.build is not None}
    batch = None
    if len(runs) > 1:

        def batch(items: Sequence[tuple[TargetRun, Step]]) -> dict[str, Outputs | EdgepackError]:
            return bake_images(items, builds=builds, project=project, runner=runner, jobs=jobs)

    execute_many(runs, jobs=jobs, events=events, batch=batch)


# -- images: one bake for every target ------------------------------------------------------------


def bake_images(
    items: Sequence[tuple[TargetRun, Step]],
    *,
    builds: Mapping[str, Build | None],
    project: Project,
    runner: Runner,
    jobs: int,
) -> dict[str, Outputs | EdgepackError]:
    """One bake for the images it can build; those that RUN something are built alone, at the same time."""
    results: dict[str, Outputs | EdgepackError] = {}
    dockerfile = project.find("docker/runtime.Dockerfile")
    todo: dict[str, tuple[Build, Step, ImageJob]] = {}
    alone: list[tuple[TargetRun, Step]] = []
    for run, step in items:
        b = builds[run.name]
        assert b is not None
        if bake.run_lines(dockerfile, json.loads(step.inputs["build_args"])):
            alone.append((run, step))  # bake (buildx 0.13) cannot give a RUN --network none: buildx build can
            continue
        try:
            todo[run.name] = (b, step, image_job(b, step))
        except EdgepackError as exc:
            results[run.name] = exc

    def build_alone(run: TargetRun, step: Step) -> None:
        try:
            results[run.name] = run.cache.run(step)[0]
        except EdgepackError as exc:
            results[run.name] = exc

    with ThreadPoolExecutor(max_workers=1 + len(alone), thread_name_prefix="edgepack-image") as pool:
        futures = [pool.submit(build_alone, run, step) for run, step in alone]
        if todo:
            results.update(_bake(todo, project=project, runner=runner))
        for future in futures:
            future.result()
    return results


def _bake(
    todo: dict[str, tuple[Build, Step, ImageJob]], *, project: Project, runner: Runner
) -> dict[str, Outputs | EdgepackError]:
    file = project.build_dir / "bake.json"
    write_json(file, bake.bake_file([job for _, _, job in todo.values()]))
    failures = run_bake(list(todo), file=file, runner=runner)
    results: dict[str, Outputs | EdgepackError] = {}
    for name, (b, step, job) in todo.items():
        if name in failures:
            results[name] = failures[name]
            continue
        try:
            outputs = finish_image(b, job, step)
            b.cache.store(step, outputs)
            results[name] = outputs
        except EdgepackError as exc:
            results[name] = exc
    return results


def run_bake(names: list[str], *, file: Path, runner: Runner) -> dict[str, EdgepackError]:
    """Bake ``names`` together; after a failure, bake each one alone (bake cancels a failure's siblings)."""
    metadata = file.with_name("bake-metadata.json")
    try:
        runner.run(
            bake.bake_argv(file=file, targets=names, metadata=metadata),
            what=f"docker buildx bake of {', '.join(names)}",
        )
        return {}
    except CommandError as together:
        if len(names) == 1:
            return {names[0]: together}
    failures: dict[str, EdgepackError] = {}
    for name in names:
        try:
            runner.run(
                bake.bake_argv(file=file, targets=[name], metadata=metadata),
                what=f"docker buildx bake of {name}",
            )
        except CommandError as alone:
            failures[name] = alone
    return failures


# -- reports --------------------------------------------------------------------------------------


def failure_report(run: TargetBuild) -> dict[str, Any]:
    """build/<target>/report.json of a target that failed: where, why, and the steps that ran."""
    assert run.failure is not None
    failed_step, error = run.failure
    return {
        "target": run.name,
        "ok": False,
        "failed_step": failed_step,
        "reason": run.reason,
        "error": error.render(),
        "exit_code": error.exit_code,
        "seconds": round(run.seconds, 3),
        "steps": [
            {"name": r.name, "key": r.key, "cached": r.cached, "seconds": r.seconds} for r in run.records
        ],
    }


def write_failure(run: TargetBuild, project: Project) -> Path:
    path = project.build_dir / run.name / "report.json"
    write_json(path, failure_report(run))
    return path


def published(run: TargetBuild) -> Path:
    """build/<target>/: the image tar, the model, the smoke spec, run.sh (pipeline.outputs)."""
    assert run.build is not None
    return publish_outputs(run.build, run.records)


def summary_rows(runs: Sequence[TargetBuild], reports: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """(target, platform, runs on, result, seconds, detail) per target, in the order asked."""
    rows: list[tuple[str, ...]] = []
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
            step = run.failure[0] if run.failure else "?"
            rows.append((run.name, platform, runs_on, f"failed ({step})", f"{run.seconds:.1f}", run.reason))
    return rows


def exit_code(runs: Sequence[TargetBuild]) -> int:
    """0 when every target passed; else the first failed target's error code."""
    return next((r.failure[1].exit_code for r in runs if r.failure is not None), 0)
