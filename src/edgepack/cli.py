"""What the invoke tasks call: one function per task, and the one error boundary."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit
from rich.console import Console
from rich.table import Table

from edgepack import builders, doctor, gpu, multibuild, report
from edgepack.build import Build, plan, publish
from edgepack.config import Project, Target, load_target, select_targets, target_schema
from edgepack.docker import BuildxOptions
from edgepack.errors import ConfigError, EdgepackError
from edgepack.fsutil import write_text
from edgepack.locks import catalog as lock_catalog
from edgepack.locks.drift import Drift
from edgepack.plan import StepRecord, cached_state, execute
from edgepack.runner import Runner
from edgepack.wheels import preflight

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Foreseeable failures become a short message and an exit code, never a traceback."""
    try:
        yield
    except EdgepackError as exc:
        errors.print(f"[bold red]error:[/] {exc.render()}", soft_wrap=True)
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        errors.print("[bold red]interrupted[/]: finished steps stay cached; no partial output was kept.")
        raise Exit(code=130) from None


def project(root: str | None = None) -> Project:
    return Project(Path(root or ".").resolve())


def runner(*, dry: bool = False, echo: bool = False) -> Runner:
    return Runner(dry_run=dry, echo=echo or dry)


def build(target_spec: str, *, model: str | None, dry: bool, verbose: bool, jobs: int = 2,
          variant: str = "cpu", builder: str | None = None, cache_from: tuple[str, ...] = (),
          cache_to: tuple[str, ...] = (), locked: bool = False) -> None:  # fmt: skip
    proj = project()
    names = select_targets(proj, target_spec)
    drift = {} if dry else sync_locks(proj, names, runner=runner(echo=verbose), locked=locked)
    if variant == "gpu":
        gpu.require_base(proj, names, runner=runner())
    elif variant != "cpu":
        raise ConfigError(f"--variant {variant}: expected cpu or gpu.")
    if len(names) > 1 or target_spec.strip() == "all":
        if builder or cache_from or cache_to:  # bake runs on the local engine; CI builds one target per job
            raise ConfigError("--builder, --cache-from and --cache-to take one target, not a list or all.",
                              hint="Build the targets one at a time (as the CI matrix does).")  # fmt: skip
        build_several(names, model=model, dry=dry, verbose=verbose, jobs=jobs, drift=drift)
        return
    target = load_target(proj, names[0])
    run = runner(echo=verbose)
    chosen = (builder or builders.LOCAL) if dry else _toolchain_and_builder(target, run=run, named=builder)
    b = Build(target=target, project=proj, runner=run, model=model or target.model,
              buildx=BuildxOptions(chosen, cache_from, cache_to),
              drift=drift.get(target.name, ()))  # fmt: skip
    if not dry and target.deps == "wheels" and not proj.lock_path(target, "requirements").is_file():
        # Before anything runs: name what PyPI lacks for the board (an armv7 onnxruntime).
        preflight.require_wheels(target, project=proj, runner=run)
    steps = plan(b)
    if dry:
        console.print(report.plan_table(steps, cached_state(steps, b.cache)))
        return
    t0 = time.perf_counter()

    def announce(step, hit):  # type: ignore[no-untyped-def]
        console.print(f"[dim]{step.name:>6}[/] {'[green]cached[/]' if hit else 'running'}: {step.summary}")

    records = execute(steps, b.cache, on_start=announce)
    result = _finish(b, records, seconds=time.perf_counter() - t0, image_tar=publish(b, records[-2].outputs))
    report.render_summary(result, console)
    console.print(f"report  {b.out_dir / 'report.json'}")


def _finish(b: Build, records: list[StepRecord], *, seconds: float, image_tar: Path) -> dict[str, Any]:
    """Publish the model report and write build/<target>/report.json of a build that passed."""
    model_report = next((r for r in records if r.name == "validate"), None)
    if model_report is not None:
        from edgepack.modelpipe.pipeline import publish_report

        publish_report(Path(model_report.outputs["dir"]), b.out_dir / "model")
    result = report.build_report(b, records, total_seconds=seconds, image_tar=image_tar)
    report.write_report(b, result)
    return result


def sync_locks(
    proj: Project, names: list[str], *, runner: Runner, locked: bool
) -> dict[str, tuple[Drift, ...]]:
    """Before any plan: every lock of each target fetchable, re-resolved, or refused (``locked``)."""

    def say(line: str) -> None:
        errors.print(line, soft_wrap=True)

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
            console.print(report.drift_table(drift[name]))
    return drift


def lock(target_spec: str, *, all_targets: bool, only: str, dry: bool) -> None:
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


def build_several(names: list[str], *, model: str | None, dry: bool, verbose: bool, jobs: int,
                  drift: dict[str, tuple[Drift, ...]] | None = None) -> None:  # fmt: skip
    """Build the targets in parallel (bounded by ``jobs``); every target gets a row and a report."""
    proj = project()
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: expected 1 or more.")
    if dry:
        for name in names:
            target = load_target(proj, name)
            b = Build(target=target, project=proj, runner=runner(), model=model or target.model)
            steps = plan(b)
            console.print(report.plan_table(steps, cached_state(steps, b.cache), title=f"{name}: build plan"))
        return
    console.print(f"building {len(names)} targets, {jobs} at a time: {', '.join(names)}")

    def announce(target: str, message: str) -> None:
        console.print(f"[dim]{target:>18}[/] {message}", soft_wrap=True)

    runs = multibuild.build_many(names, project=proj, runner=runner(echo=verbose), jobs=jobs, model=model,
                                 announce=announce, drift=drift or {})  # fmt: skip
    reports: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.ok and run.build is not None:
            reports[run.name] = _finish(run.build, run.records, seconds=run.seconds,
                                        image_tar=multibuild.published(run))  # fmt: skip
        else:
            multibuild.write_failure(run, proj)
    console.print(report.targets_table(multibuild.summary_rows(runs, reports)))
    failed = [r for r in runs if not r.ok]
    for run in failed:
        why = run.error.render() if run.error else ""
        errors.print(f"[bold red]{run.name}[/] failed at {run.failed_step}: {why}", soft_wrap=True)
    console.print(f"reports {proj.build_dir}/<target>/report.json")
    if failed:
        raise Exit(code=multibuild.exit_code(runs))


def _toolchain_and_builder(target: Target, *, run: Runner, named: str | None) -> str:
    """Preflight, then a native node when one builds the platform, else the local engine under QEMU."""
    doctor.require_toolchain(runner=run, platform=target.platform, target=target.name)
    choice = builders.choose_for(target, runner=run, named=named)
    console.print(f"[dim]builder[/] {choice.describe()}")
    return choice.builder


def targets(*, schema: bool) -> None:
    proj = project()
    if schema:
        path = proj.targets_dir / "target.schema.json"
        write_text(path, json.dumps(target_schema(), indent=2) + "\n")
        console.print(f"wrote {path}")
        return
    table = Table(title="targets", title_justify="left")
    for col in ("name", "platform", "cpu", "smoke runs", "model", "gpu variant", "description"):
        table.add_column(col)
    for name in proj.target_names():
        t: Target = load_target(proj, name)
        gpu_base = t.gpu.base_image if t.gpu else "-"
        table.add_row(t.name, t.platform, t.cpu_model, t.runs_on, t.model, gpu_base, t.description)
    console.print(table)


def run_doctor(*, fix: bool) -> None:
    checks = doctor.run_doctor(runner=runner(echo=fix), fix=fix)
    doctor.render_checks(checks, console)
    if not all(c.ok for c in checks):
        raise Exit(code=3)


def run_tests(*, unit_only: bool, keyword: str) -> None:
    """pytest in this process: unit tests first (fast), then the CLI and integration tests."""
    import pytest

    paths = ["tests/unit"] if unit_only else ["tests/unit", "tests/cli", "tests/integration"]
    code = pytest.main([*paths, *(["-k", keyword] if keyword else [])])
    if code != 0:
        raise Exit(code=int(code))


def model_stage(stage: str, *, target_name: str, spec: str | None) -> None:
    """Run the model steps up to ``stage`` (export, quantize, validate), cached like a build's."""
    from edgepack.modelpipe import report as model_report
    from edgepack.modelpipe.spec import is_spec_path
    from edgepack.modelpipe.steps import STEP_NAMES, plan_model

    proj = project()
    target = load_target(proj, target_name)
    b = Build(target=target, project=proj, runner=runner(), model=spec or target.model)
    if not is_spec_path(b.model):
        raise ConfigError(
            f"'{b.model}' is not a model spec; the model tasks take one (models/NAME.yaml).",
            hint="Pass --spec models/NAME.yaml, or point the target's model at a spec.",
        )
    steps = plan_model(b)[: STEP_NAMES.index(stage) + 1]

    def announce(step, hit):  # type: ignore[no-untyped-def]
        console.print(f"[dim]{step.name:>8}[/] {'[green]cached[/]' if hit else 'running'}: {step.summary}")

    last = execute(steps, b.cache, on_start=announce)[-1].outputs
    record = {"export": "export.json", "quantize": "quantize.json", "validate": "report.json"}.get(stage)
    if stage == "validate":
        model_report.render(json.loads((Path(last["dir"]) / "report.json").read_text()), console)
        console.print(f"report  {b.out_dir / 'model' / 'report.json'}")
    elif record:
        console.print_json((Path(last["dir"]) / record).read_text())


def model_show(*, target_name: str) -> None:
    from edgepack.modelpipe import report as model_report

    path = project().build_dir / target_name / "model" / "report.json"
    if not path.is_file():
        raise ConfigError(
            f"no model report at {path}.", hint=f"Run: invoke model.validate --target {target_name}"
        )
    model_report.render(json.loads(path.read_text()), console)
    png = path.with_name("layers.png")
    console.print(f"report  {path}" + (f"\nplot    {png}" if png.is_file() else ""))


def model_schema() -> None:
    from edgepack.modelpipe.spec import spec_schema

    path = project().root / "models" / "model.schema.json"
    write_text(path, json.dumps(spec_schema(), indent=2) + "\n")
    console.print(f"wrote {path}")


def asr_demo(which: str, *, target_name: str, as_json: bool) -> None:
    """One of edgepack.asrdemo's demonstrations with the target's model, as a table or JSON."""
    from edgepack import asrdemo

    proj = project()
    models = asrdemo.models(proj, target=target_name)
    result = getattr(asrdemo, which)(models["int8"], proj)
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(title=f"asr.demo-{which} ({models['int8'].name}, int8)", title_justify="left")
    table.add_column("case")
    table.add_column("result")
    for key, value in (result.get("wer") or result.get("blocks") or result).items():
        table.add_row(str(key), json.dumps(value) if isinstance(value, dict | list) else str(value))
    console.print(table)


def flash_image(target_name: str, *, dry: bool, verbose: bool) -> Path:
    """Plan and run the card image's steps; publish to build/<target>/sdcard/."""
    from edgepack.flash import steps as flash_steps

    proj = project()
    target = load_target(proj, target_name)
    run = runner(echo=verbose)
    drift = () if dry else tuple(lock_catalog.sync(proj, target, runner=run, locked=False,
                                                   kinds=(*lock_catalog.BUILD_KINDS, "sdcard"),
                                                   say=errors.print))  # fmt: skip
    if drift:
        console.print(report.drift_table(drift))
    b = Build(target=target, project=proj, runner=run, model=target.model, drift=drift)
    steps = flash_steps.plan(b)
    if dry:
        console.print(report.plan_table(steps, cached_state(steps, b.cache)))
        return b.out_dir / "sdcard"

    def announce(step, hit):  # type: ignore[no-untyped-def]
        console.print(f"[dim]{step.name:>8}[/] {'[green]cached[/]' if hit else 'running'}: {step.summary}")

    records = execute(steps, b.cache, on_start=announce)
    out = flash_steps.publish_outputs(b, records[-1].outputs)
    entry, name = records[-1].outputs["manifest"], Path(records[-1].outputs["image"]).name
    mib, xz_mib = entry["extract_size"] >> 20, entry["image_download_size"] >> 20
    console.print(
        f"image   {out / name} ({mib} MiB, xz {xz_mib} MiB, sha256 {entry['extract_sha256'][:16]}…)"
    )
    return out


def flash_boot(target_name: str, *, image: str | None, verbose: bool) -> None:
    """Boot the built card image under QEMU; its smoke outputs must match the host reference."""
    from edgepack.flash import layout, qemu
    from edgepack.flash import steps as flash_steps

    proj = project()
    target = load_target(proj, target_name)
    card = layout.require_sdcard(target, proj)
    path = Path(image) if image else proj.build_dir / target.name / "sdcard" / f"{card.image_name}.img"
    b = Build(target=target, project=proj, runner=runner(echo=verbose), model=target.model)
    reference = flash_steps.reference(b)
    if not path.is_file() or reference is None:
        raise ConfigError(f"no card image at {path}, or its app step is not built.",
                          hint=f"Build it: invoke flash.image --target {target.name}")  # fmt: skip
    result = qemu.boot(path, workdir=proj.build_dir / target.name / "sdcard-boot", cpu=target.qemu_cpu,
                       timeout_s=card.boot_timeout_s, runner=b.runner)  # fmt: skip
    checks = qemu.check_against(result, reference, atol=target.smoke.atol, rtol=target.smoke.rtol)
    console.print(f"booted  {path.name} under QEMU -M virt -cpu {target.qemu_cpu} in {result.seconds:.0f} s "
                  f"(hostname {result.host})")  # fmt: skip
    for check in checks:
        console.print(
            f"  {check.name}: ok" + (f" (max abs {check.max_abs:.3g})" if check.dtype != "str" else "")
        )
    console.print(f"console {result.log}")


def flash_write(*, image: str, device: str, force: bool, yes: bool, dry: bool) -> None:
    """Write an image to a card with the safety checks of edgepack.flash.write."""
    from rich.prompt import Confirm

    from edgepack.flash import write

    def confirm(question: str) -> bool:
        console.print(question)
        return yes or Confirm.ask("Continue?", default=False, console=console)

    digest = write.write_image(Path(image), device, runner=runner(dry=dry), force=force, confirm=confirm)
    if digest:
        console.print(f"wrote   {image} to {device}; read back and verified, sha256 {digest}")
