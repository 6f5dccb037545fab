"""What the invoke tasks call: one function per task, and the one error boundary."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

from invoke.exceptions import Exit
from rich.console import Console
from rich.table import Table

from edgepack import debian, doctor, pydeps, report
from edgepack.build import Build, plan, publish
from edgepack.config import Project, Target, load_target, target_schema
from edgepack.errors import ConfigError, EdgepackError
from edgepack.fsutil import write_text
from edgepack.plan import cached_state, execute
from edgepack.runner import Runner

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


def build(target_name: str, *, model: str | None, dry: bool, verbose: bool) -> None:
    proj = project()
    target = load_target(proj, target_name)
    run = runner(echo=verbose)
    b = Build(target=target, project=proj, runner=run, model=model or target.model)
    steps = plan(b)
    if dry:
        console.print(report.plan_table(steps, cached_state(steps, b.cache)))
        return
    doctor.require_toolchain(runner=run, platform=target.platform)
    t0 = time.perf_counter()

    def announce(step, hit):  # type: ignore[no-untyped-def]
        console.print(f"[dim]{step.name:>6}[/] {'[green]cached[/]' if hit else 'running'}: {step.summary}")

    records = execute(steps, b.cache, on_start=announce)
    published = publish(b, records[-2].outputs)
    model_report = next((r for r in records if r.name == "validate"), None)
    if model_report is not None:
        from edgepack.modelpipe.pipeline import publish_report

        publish_report(Path(model_report.outputs["dir"]), b.out_dir / "model")
    result = report.build_report(b, records, total_seconds=time.perf_counter() - t0, image_tar=published)
    report.write_report(b, result)
    report.render_summary(result, console)
    console.print(f"report  {b.out_dir / 'report.json'}")


def targets(*, schema: bool) -> None:
    proj = project()
    if schema:
        path = proj.targets_dir / "target.schema.json"
        write_text(path, json.dumps(target_schema(), indent=2) + "\n")
        console.print(f"wrote {path}")
        return
    table = Table(title="targets", title_justify="left")
    for col in ("name", "platform", "qemu cpu", "debian", "python", "runtime", "model", "description"):
        table.add_column(col)
    for name in proj.target_names():
        t: Target = load_target(proj, name)
        table.add_row(
            t.name, t.platform, t.qemu_cpu, t.debian.suite, t.python, t.runtime, t.model, t.description
        )
    console.print(table)


def run_doctor(*, fix: bool) -> None:
    checks = doctor.run_doctor(runner=runner(echo=fix), fix=fix)
    doctor.render_checks(checks, console)
    if not all(c.ok for c in checks):
        raise Exit(code=3)


def lock_base(target_name: str) -> None:
    proj = project()
    t = load_target(proj, target_name)
    workdir = proj.build_dir / "cache" / "apt" / f"{t.debian.suite}-{t.arch}"
    lock = debian.resolve_lock(suite=t.debian.suite, arch=t.arch, roots=t.debian.packages,
                               exclude=t.debian.exclude, sources=t.debian.sources, runner=runner(),
                               workdir=workdir)  # fmt: skip
    path = proj.lock_path(t, "debian")
    debian.write_lock(path, lock)
    console.print(f"wrote {path}: {len(lock.packages)} packages, digest {lock.digest()[:16]}")


def lock_deps(target_name: str) -> None:
    proj = project()
    path = pydeps.lock(load_target(proj, target_name), project=proj, runner=runner())
    console.print(f"wrote {path}")


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


def flash_lock(target_name: str) -> None:
    proj = project()
    target = load_target(proj, target_name)
    from edgepack.flash import layout

    card = layout.require_sdcard(target, proj)
    workdir = proj.build_dir / "cache" / "apt" / f"sdcard-{target.debian.suite}-{target.arch}"
    lock = debian.resolve_lock(suite=target.debian.suite, arch=target.arch, roots=card.packages,
                               exclude=card.exclude, sources=card.sources, runner=runner(),
                               workdir=workdir)  # fmt: skip
    path = proj.lock_path(target, "sdcard")
    debian.write_lock(path, lock)
    console.print(f"wrote {path}: {len(lock.packages)} packages, digest {lock.digest()[:16]}")


def flash_image(target_name: str, *, dry: bool, verbose: bool) -> Path:
    """Plan and run the card image's steps; publish to build/<target>/sdcard/."""
    from edgepack.flash import steps as flash_steps

    proj = project()
    target = load_target(proj, target_name)
    b = Build(target=target, project=proj, runner=runner(echo=verbose), model=target.model)
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
