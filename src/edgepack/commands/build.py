"""``edgepack build``, ``lock`` and ``targets``: flags in, the library called, the result rendered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from invoke.context import Context
from rich.markup import escape

from edgepack.commands.boundary import command, given, integer, project, runner
from edgepack.config import Project, Target, load_target, select_targets, target_schema
from edgepack.errors import ConfigError, EdgepackError, Reported
from edgepack.fsutil import write_text
from edgepack.host import builders, doctor, gpu
from edgepack.locks import catalog as lock_catalog
from edgepack.locks.drift import Drift
from edgepack.pipeline import parallel, report, smoke
from edgepack.pipeline.context import Build, ModelOptions
from edgepack.pipeline.docker import BuildxOptions
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import cached_state
from edgepack.runner import Runner
from edgepack.ui import build as ui_build
from edgepack.ui import console, errors
from edgepack.ui import model as ui_model
from edgepack.wheels import preflight


@command(
    iterable=["cache_from", "cache_to", "samples"],
    help={
        "target": "target name (targets/NAME.yaml), a comma-separated list, or all (see: edgepack targets)",
        "model": "a model spec (models/NAME.yaml) or an .onnx file instead of the target's model",
        "dry_run": "print the plan and what is cached; run nothing",
        "dry": "the same as --dry-run",
        "verbose": "echo every command",
        "jobs": "targets built at once (host steps, smoke tests) with several targets",
        "variant": "cpu or gpu (a target's gpu section: its vendor base must be loaded locally)",
        "builder": "buildx builder for the image (default: a native node, else the local engine under QEMU)",
        "cache_from": "buildx layer cache to read, e.g. type=gha,scope=rpi4 (repeatable)",
        "cache_to": "buildx layer cache to write, e.g. type=gha,scope=rpi4,mode=max (repeatable)",
        "locked": "refuse to build when a locked package can no longer be fetched (release builds)",
        "samples": "recorded inputs for the model: FILE.npz, a folder of them, or package.module:fn "
        "(repeatable); they feed calibration, validation and the smoke test",
        "quantize": "none, dynamic, static, fp16 or auto (default: the spec's; a bare .onnx: dynamic)",
    },
    required=("target",),
)
def build(
    c: Context,
    target: str | None = None,
    model: str | None = None,
    dry_run: bool = False,
    dry: bool = False,
    verbose: bool = False,
    jobs: str = "2",
    variant: str = "cpu",
    builder: str | None = None,
    cache_from: list[str] | None = None,
    cache_to: list[str] | None = None,
    locked: bool = False,
    samples: list[str] | None = None,
    quantize: str = "",
) -> None:
    """Build the targets' images with the model baked in, and smoke-test them (QEMU with the board's CPU)."""
    run_build(
        given(target),
        model=model,
        dry=dry_run or dry,
        verbose=verbose,
        jobs=integer("jobs", jobs, minimum=1),
        variant=variant,
        builder=builder,
        cache_from=tuple(cache_from or ()),
        cache_to=tuple(cache_to or ()),
        locked=locked,
        model_options=model_options(samples, quantize),
    )


def model_options(samples: list[str] | None, quantize: str) -> ModelOptions:
    """--samples / --quantize, checked here: a wrong value is exit 2 naming the flag."""
    modes = ("none", "dynamic", "static", "fp16", "auto")
    if quantize and quantize not in modes:
        raise ConfigError(f"--quantize {quantize}: expected one of {', '.join(modes)}.")
    return ModelOptions(samples=tuple(samples or ()), quantize=quantize)


@command(
    help={
        "target": "target name, a comma-separated list, or all",
        "all": "every target in targets/",
        "only": "only these kinds: base,requirements,sysroot,builder,sdcard",
        "dry_run": "echo the commands; write nothing",
    }
)
def lock(c: Context, target: str = "", all: bool = False, only: str = "", dry_run: bool = False) -> None:
    """Re-resolve every lock the target uses (Debian base, PyPI wheels, wheel sysroot/builder, SD card)."""
    if not target and not all:
        raise ConfigError("lock: which target? Give --target NAME (or a list), or --all.")
    refresh_locks(target, all_targets=all, only=only, dry=dry_run)


@command(help={"schema": "write targets/target.schema.json instead of listing", "json": "print JSON"})
def targets(c: Context, schema: bool = False, json: bool = False) -> None:
    """List the targets: board, platform, CPU, model."""
    list_targets(schema=schema, as_json=json)


def run_build(
    target_spec: str,
    *,
    model: str | None,
    dry: bool,
    verbose: bool,
    jobs: int = 2,
    variant: str = "cpu",
    builder: str | None = None,
    cache_from: tuple[str, ...] = (),
    cache_to: tuple[str, ...] = (),
    locked: bool = False,
    model_options: ModelOptions | None = None,
) -> None:
    """One target or many, through the one executor; a table per target set, a report per target."""
    proj = project()
    names = select_targets(proj, target_spec)
    several = len(names) > 1 or target_spec.strip() == "all"
    if variant == "gpu":
        gpu.require_base(proj, names, runner=runner())
    elif variant != "cpu":
        raise ConfigError(f"--variant {variant}: expected cpu or gpu.")
    if several and (
        builder or cache_from or cache_to
    ):  # bake runs on the local engine; CI builds one per job
        raise ConfigError(
            "--builder, --cache-from and --cache-to take one target, not a list or all.",
            hint="Build the targets one at a time (as the CI matrix does).",
        )
    run = runner(echo=verbose)
    if dry:
        for name in names:
            target = load_target(proj, name)
            b = Build(
                target=target,
                project=proj,
                runner=runner(),
                model=model or target.model,
                model_options=model_options or ModelOptions(),
            )
            steps = plan(b)
            title = f"{name}: build plan" if several else "build plan"
            console.print(ui_build.plan_table(steps, cached_state(steps, b.cache), title=title))
            for line in ui_model.fed_lines(smoke.planned_input(b)):
                console.print(line)
        return
    drift = sync_locks(proj, names, runner=run, locked=locked)
    targets = []
    for name in names:
        buildx = None
        if not several:
            target = load_target(proj, name)
            if target.deps == "wheels" and not proj.lock_path(target, "requirements").is_file():
                # Before anything runs: name what PyPI lacks for the board (an armv7 onnxruntime).
                preflight.require_wheels(target, project=proj, runner=run)
            unchanged = parallel.prepare(
                name,
                project=proj,
                runner=run,
                model=model,
                drift=drift.get(name, ()),
                preflight=False,
                model_options=model_options,
                target=target,
            )
            if not (builder or cache_from or cache_to) and parallel.all_cached(unchanged):
                targets.append(unchanged)  # nothing to build: no buildx, so no toolchain preflight either
                continue
            buildx = BuildxOptions(
                _toolchain_and_builder(target, run=run, named=builder), cache_from, cache_to
            )
        targets.append(
            parallel.prepare(
                name,
                project=proj,
                runner=run,
                model=model,
                drift=drift.get(name, ()),
                buildx=buildx,
                preflight=several,
                model_options=model_options,
            )
        )
    if several:
        console.print(f"building {len(names)} targets, {jobs} at a time: {', '.join(names)}")
    elif (failure := targets[0].failure) is not None:
        raise failure[1]
    parallel.build_targets(
        targets, project=proj, runner=run, jobs=jobs, events=ui_build.progress(console, several)
    )
    reports: dict[str, dict[str, Any]] = {}
    for t in targets:
        if t.ok and t.build is not None:
            reports[t.name] = report.finish(
                t.build, t.records, seconds=t.seconds, image_tar=parallel.published(t)
            )
        else:
            parallel.write_failure(t, proj)
    if not several:
        t = targets[0]
        if t.failure is not None:
            raise t.failure[1]
        ui_build.render_summary(reports[t.name], console)
        for line in ui_model.fed_lines(reports[t.name].get("smoke_input") or {}):
            console.print(line)
        console.print(f"report  {proj.build_dir / t.name / 'report.json'}")
        return
    console.print(ui_build.targets_table(parallel.summary_rows(targets, reports)))
    for t in targets:
        if t.failure is not None:
            step, error = t.failure
            errors.print(f"[bold red]{t.name}[/] failed at {step}: {escape(error.render())}", soft_wrap=True)
    console.print(f"reports {proj.build_dir}/<target>/report.json")
    if any(t.failure for t in targets):
        raise Reported(parallel.exit_code(targets))


def sync_locks(
    proj: Project, names: list[str], *, runner: Runner, locked: bool
) -> dict[str, tuple[Drift, ...]]:
    """Before any plan: every lock of each target fetchable, re-resolved, or refused (``locked``)."""

    def say(line: str) -> None:
        errors.print(escape(line), soft_wrap=True)

    drift: dict[str, tuple[Drift, ...]] = {}
    for name in names:
        try:
            target = load_target(proj, name)
            drift[name] = tuple(lock_catalog.sync(proj, target, runner=runner, locked=locked, say=say))
        except EdgepackError:
            if len(names) == 1:
                raise
            continue  # with several targets, this one fails at its own step and the others go on
        if drift[name]:
            console.print(ui_build.drift_table(drift[name]))
    return drift


def refresh_locks(target_spec: str, *, all_targets: bool, only: str, dry: bool) -> None:
    """Re-resolve every lock the targets use (each shared lock once) from today's indexes."""
    proj = project()
    kinds = lock_catalog.check_kinds(only)
    names = proj.target_names() if all_targets else select_targets(proj, target_spec)
    done: set[Path] = set()
    for name in names:
        target = load_target(proj, name)
        todo = [f for f in lock_catalog.locks_of(proj, target, kinds) if f.path not in done]
        if any(f.kind == "requirements" for f in todo):  # name what PyPI lacks before anything is written
            preflight.require_wheels(target, project=proj, runner=runner())
        for lock_file in todo:
            done.add(lock_file.path)
            run = runner(dry=dry)
            [(_, summary)] = lock_catalog.refresh(proj, target, runner=run, kinds=[lock_file.kind])
            console.print(f"{lock_file.kind:>12} {lock_file.path.relative_to(proj.root)}: {summary}")


def _toolchain_and_builder(target: Target, *, run: Runner, named: str | None) -> str:
    """Preflight, then a native node when one builds the platform, else the local engine under QEMU."""
    doctor.require_toolchain(runner=run, platform=target.platform, target=target.name)
    choice = builders.choose_for(target, runner=run, named=named)
    console.print(f"[dim]builder[/] {choice.describe()}")
    return choice.builder


def list_targets(*, schema: bool, as_json: bool = False) -> None:
    proj = project()
    if schema:
        path = proj.targets_dir / "target.schema.json"
        write_text(path, json.dumps(target_schema(), indent=2) + "\n")
        console.print(f"wrote {path}")
        return
    rows = []
    own = set(proj.target_names()) if proj.targets_dir.is_dir() else set()
    for name in proj.known_targets():
        t: Target = load_target(proj, name)
        rows.append(
            {
                "name": t.name,
                "platform": t.platform,
                "cpu": t.cpu_model,
                "smoke": t.runs_on,
                "model": t.model,
                "gpu": t.gpu.base_image if t.gpu else None,
                "description": t.description,
                "source": "project" if name in own else "built-in",
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    console.print(ui_build.targets_list(rows))
