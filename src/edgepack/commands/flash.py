"""``edgepack flash.*``: SD-card images, booted under QEMU, written to a card safely."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from edgepack.commands.boundary import command, given, project, runner
from edgepack.config import load_target
from edgepack.errors import ConfigError
from edgepack.locks import catalog as lock_catalog
from edgepack.pipeline.context import Build
from edgepack.pipeline.steps import Step, cached_state, execute
from edgepack.ui import build as ui_build
from edgepack.ui import console, errors


@command(
    help={
        "target": "target name (with an sdcard: section)",
        "dry_run": "print the plan and what is cached",
        "dry": "the same as --dry-run",
        "verbose": "echo every command",
    },
    required=("target",),
)
def image(
    c: Context, target: str | None = None, dry_run: bool = False, dry: bool = False, verbose: bool = False
) -> None:
    """Build the target's SD-card image: .img, .img.xz, sha256, rpi-imager entry (build/<target>/sdcard/)."""
    flash_image(given(target), dry=dry_run or dry, verbose=verbose)


@command(
    help={"target": "target name", "image": "an .img (default: the target's last build)", "verbose": "echo"},
    required=("target",),
)
def boot(c: Context, target: str | None = None, image: str | None = None, verbose: bool = False) -> None:
    """Boot the card image under qemu-system-aarch64 (virt, the board's CPU) until its smoke test reports."""
    flash_boot(given(target), image=image, verbose=verbose)


@command(
    help={
        "image": "the .img to write",
        "device": "the card's disk, e.g. /dev/sdb",
        "force": "allow a non-removable disk",
        "yes": "do not ask for confirmation",
        "dry_run": "check and show, write nothing",
        "dry": "the same as --dry-run",
    },
    required=("image", "device"),
)
def write(
    c: Context,
    image: str | None = None,
    device: str | None = None,
    force: bool = False,
    yes: bool = False,
    dry_run: bool = False,
    dry: bool = False,
) -> None:
    """Write an image to a card: refuses system, mounted, small or fixed disks; verifies by reading back."""
    flash_write(image=given(image), device=given(device), force=force, yes=yes, dry=dry_run or dry)


def flash_image(target_name: str, *, dry: bool, verbose: bool) -> Path:
    """Plan and run the card image's steps; publish to build/<target>/sdcard/."""
    from edgepack.flash import steps as flash_steps

    proj = project()
    target = load_target(proj, target_name)
    run = runner(echo=verbose)
    drift = (
        ()
        if dry
        else tuple(
            lock_catalog.sync(
                proj,
                target,
                runner=run,
                locked=False,
                kinds=(*lock_catalog.BUILD_KINDS, "sdcard"),
                say=errors.print,
            )
        )
    )
    if drift:
        console.print(ui_build.drift_table(drift))
    b = Build(target=target, project=proj, runner=run, model=target.model, drift=drift)
    steps = flash_steps.plan(b)
    if dry:
        console.print(ui_build.plan_table(steps, cached_state(steps, b.cache)))
        return b.out_dir / "sdcard"

    def announce(step: Step, hit: bool) -> None:
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
        raise ConfigError(
            f"no card image at {path}, or its app step is not built.",
            hint=f"Build it: edgepack flash.image --target {target.name}",
        )
    if target.qemu_cpu is None:  # config.py requires it of every emulated target: a card's board is one
        raise ConfigError(f"{target.name} names no qemu_cpu: its card image cannot boot under QEMU.")
    result = qemu.boot(
        path,
        workdir=proj.build_dir / target.name / "sdcard-boot",
        cpu=target.qemu_cpu,
        timeout_s=card.boot_timeout_s,
        runner=b.runner,
    )
    checks = qemu.check_against(result, reference, atol=target.smoke.atol, rtol=target.smoke.rtol)
    console.print(
        f"booted  {path.name} under QEMU -M virt -cpu {target.qemu_cpu} in {result.seconds:.0f} s "
        f"(hostname {result.host})"
    )
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
