"""edgepack's tasks: a table of contents. The logic lives in src/edgepack/.

invoke build --target rpi4        model + app -> smoke-tested board image
invoke build --target all         every target, in parallel (docker buildx bake)
invoke doctor [--fix]             check / install the host toolchain
invoke targets                    list targets
invoke lock [--target T|--all]    refresh every lock a target uses (Debian, PyPI, sysroot, card)
invoke test                       unit and integration tests
invoke device.deploy|smoke|bench|metrics|regress   real boards over SSH (inventory: boards.yaml)
invoke model.export|quantize|validate|report|schema   the model stages of a spec, alone
invoke wheels [--strategy emulated]|wheels.preflight   native wheels for the board
invoke asr.demo-rate|demo-latency|demo-blocks   the speech demonstrations (docs/speech.md)
invoke ci.matrix|ci.workflow [--check]|ci.push   GitHub Actions, generated from targets/ (docs/ci.md)
invoke builders.add|builders.ls   native buildx nodes (arm64 over SSH) instead of QEMU
invoke flash.image|boot|write   flashable SD-card image, booted under QEMU; written to a card safely
"""

from invoke import Collection, task

from edgepack import cli
from edgepack.ci import commands as ci_cli
from edgepack.device import cli as device_cli
from edgepack.wheels import commands as wheels_cli


@task(
    iterable=["cache_from", "cache_to"],
    help={
        "target": "target name (targets/NAME.yaml), a comma-separated list, or all",
        "model": "an .onnx file instead of the target's model",
        "dry": "print the plan and what is cached; run nothing",
        "verbose": "echo every command",
        "jobs": "targets built at once (host steps, smoke tests) with several targets",
        "variant": "cpu (default) or gpu (a target's gpu section: its vendor base must be loaded locally)",
        "builder": "buildx builder for the image (default: a native node, else the local engine under QEMU)",
        "cache_from": "buildx layer cache to read, e.g. type=gha,scope=rpi4 (repeatable)",
        "cache_to": "buildx layer cache to write, e.g. type=gha,scope=rpi4,mode=max (repeatable)",
        "locked": "refuse to build when a locked package can no longer be fetched (release builds)",
    },
)
def build(c, target="rpi4", model=None, dry=False, verbose=False, jobs=2, variant="cpu", builder=None,
          cache_from=None, cache_to=None, locked=False):  # fmt: skip
    """Build the targets' images with the model baked in, and smoke-test them (QEMU with the board's CPU)."""
    with cli.guard():
        cli.build(target, model=model, dry=dry, verbose=verbose, jobs=int(jobs), variant=variant,
                  builder=builder, cache_from=tuple(cache_from), cache_to=tuple(cache_to),
                  locked=locked)  # fmt: skip


@task(help={"fix": "install and start what is missing (Debian 12/13, as root)"})
def doctor(c, fix=False):
    """Check the host toolchain: docker engine, buildx, QEMU >= 8 in binfmt_misc."""
    with cli.guard():
        cli.run_doctor(fix=fix)


@task(help={"schema": "write targets/target.schema.json instead of listing"})
def targets(c, schema=False):
    """List the targets."""
    with cli.guard():
        cli.targets(schema=schema)


@task(help={"target": "target name, a comma-separated list, or all", "all": "every target in targets/",
            "only": "only these kinds: base,requirements,sysroot,builder,sdcard",
            "dry": "echo the commands; write nothing"})  # fmt: skip
def lock(c, target="rpi4", all=False, only="", dry=False):
    """Re-resolve every lock the target uses (Debian base, PyPI wheels, wheel sysroot/builder, SD card)."""
    with cli.guard():
        cli.lock(target, all_targets=all, only=only, dry=dry)


@task(help={"unit": "unit tests only (no docker)", "k": "pytest -k expression"})
def test(c, unit=False, k=""):
    """Run the test suite: unit tests, then integration tests with the real docker, buildx and QEMU."""
    cli.run_tests(unit_only=unit, keyword=k)


MODEL_HELP = {"target": "target name (its CPU and onnxruntime)", "spec": "model spec; default: the target's"}


@task(help=MODEL_HELP)
def model_export(c, target="rpi4", spec=None):
    """Export the spec's model to ONNX and verify it against eager torch at every check size."""
    with cli.guard():
        cli.model_stage("export", target_name=target, spec=spec)


@task(help=MODEL_HELP)
def model_quantize(c, target="rpi4", spec=None):
    """Export, then quantize as the spec asks (dynamic / static QDQ int8, fp16)."""
    with cli.guard():
        cli.model_stage("quantize", target_name=target, spec=spec)


@task(help=MODEL_HELP)
def model_validate(c, target="rpi4", spec=None):
    """Export, quantize, then validate against fp32: outputs, per-layer SQNR, task metric (gates)."""
    with cli.guard():
        cli.model_stage("validate", target_name=target, spec=spec)


@task(help={"target": "target name"})
def model_report(c, target="rpi4"):
    """Show the last model validation report of a target (build/<target>/model/report.json)."""
    with cli.guard():
        cli.model_show(target_name=target)


@task
def model_schema(c):
    """Regenerate models/model.schema.json from the spec's types."""
    with cli.guard():
        cli.model_schema()


model = Collection("model")
for _name, _task in (("export", model_export), ("quantize", model_quantize), ("validate", model_validate),
                     ("report", model_report), ("schema", model_schema)):  # fmt: skip
    model.add_task(_task, _name)

BOARDS = {
    "target": "target name (required with --host; with an inventory, only boards of that target)",
    "host": "user@address[:port] of a one-off board (repeatable)",
    "board": "a board of the inventory, by name (repeatable)",
    "label": "boards of the inventory with this label (repeatable)",
    "all": "every board of the inventory",
    "inventory": "inventory file (default: boards.yaml, or $EDGEPACK_INVENTORY)",
    "key": "private key for --host",
    "known_hosts": "known_hosts file for --host (default: ~/.ssh/known_hosts)",
    "mode": "docker (docker load) or bundle (rootfs run with chroot): overrides the inventory",
    "jobs": "boards worked on at the same time",
}
MANY = ["host", "board", "label"]


def _boards(target, host, board, label, all, inventory, key, known_hosts, mode, jobs):
    return device_cli.Selection(target=target, hosts=tuple(host), boards=tuple(board), labels=tuple(label),
                                all=all, inventory=inventory, key=key, known_hosts=known_hosts, mode=mode,
                                jobs=int(jobs))  # fmt: skip


@task(iterable=MANY, help=BOARDS)
def device_deploy(c, target=None, host=None, board=None, label=None, all=False, inventory=None, key=None,
                  known_hosts=None, mode=None, jobs=4):  # fmt: skip
    """Deploy the smoke-tested image to boards over SSH: arch and space checked first; resumable, atomic."""
    with cli.guard():
        device_cli.deploy(_boards(target, host, board, label, all, inventory, key, known_hosts, mode, jobs))


@task(iterable=MANY, help={**BOARDS, "runs": "timed passes (default: the target's smoke.runs)"})
def device_smoke(c, target=None, host=None, board=None, label=None, all=False, inventory=None, key=None,
                 known_hosts=None, mode=None, jobs=4, runs=None):  # fmt: skip
    """The QEMU smoke test on the boards themselves: outputs against the host reference, into report.json."""
    with cli.guard():
        sel = _boards(target, host, board, label, all, inventory, key, known_hosts, mode, jobs)
        device_cli.smoke(sel, runs=int(runs) if runs else None)


@task(iterable=MANY, help={**BOARDS, "runs": "timed passes over the smoke input", "warmup": "untimed passes"})
def device_bench(c, target=None, host=None, board=None, label=None, all=False, inventory=None, key=None,
                 known_hosts=None, mode=None, jobs=4, runs=5, warmup=1):  # fmt: skip
    """Benchmark on the boards: latency p50/p95/p99, peak RSS, CPU, temperature and throttling."""
    with cli.guard():
        sel = _boards(target, host, board, label, all, inventory, key, known_hosts, mode, jobs)
        device_cli.bench(sel, runs=int(runs), warmup=int(warmup))


@task(iterable=MANY, help={**BOARDS, "seconds": "how long the metrics service runs"})
def device_metrics(c, target=None, host=None, board=None, label=None, all=False, inventory=None, key=None,
                   known_hosts=None, mode=None, jobs=4, seconds=10):  # fmt: skip
    """Run the runtime's metrics service (Prometheus text on 127.0.0.1, JSON lines) on the boards; show it."""
    with cli.guard():
        sel = _boards(target, host, board, label, all, inventory, key, known_hosts, mode, jobs)
        device_cli.metrics(sel, seconds=float(seconds))


@task(iterable=["board"], help={"target": "target name", "board": "only this board (repeatable)",
                                "update_baseline": "record the latest benches as the baseline"})  # fmt: skip
def device_regress(c, target="rpi4", board=None, update_baseline=False):
    """Compare the boards' latest bench with baselines/<target>/<model>.json; exit 7 on a regression."""
    with cli.guard():
        device_cli.run_regress(target, boards=board, update_baseline=update_baseline)


device = Collection("device")
for _name, _task in (("deploy", device_deploy), ("smoke", device_smoke), ("bench", device_bench),
                     ("metrics", device_metrics), ("regress", device_regress)):  # fmt: skip
    device.add_task(_task, _name)


WHEELS_HELP = {"target": "target name", "strategy": "cross (default: cross compiler + sysroot) or emulated "
               "(cibuildwheel under QEMU)", "package": "only this recipe (wheels/NAME.yaml)",
               "no_test": "skip the tests on the board (QEMU)", "verbose": "echo every command"}  # fmt: skip


@task(help=WHEELS_HELP)
def wheels_build(c, target="rpi4", strategy="cross", package=None, no_test=False, verbose=False):
    """Build the target's wheels from wheels/*.yaml, repair them (auditwheel), test them under QEMU."""
    with cli.guard():
        wheels_cli.build(target, strategy=strategy, package=package, verify=not no_test, verbose=verbose)


@task(help={"target": "target name", "verbose": "echo every command"})
def wheels_preflight(c, target="rpi4", verbose=False):
    """Which of the target's requirements have a wheel for the board, and which need building."""
    with cli.guard():
        wheels_cli.preflight(target, verbose=verbose)


wheels = Collection("wheels")
wheels.add_task(wheels_build, "build", default=True)
wheels.add_task(wheels_preflight, "preflight")


@task(help={"target": "target name", "json": "one JSON object instead of the table"})
def asr_demo_rate(c, target="rpi4", json=False):
    """WER of the held-out set: explicit resampling vs the same audio at 44.1 kHz fed as 16 kHz."""
    with cli.guard():
        cli.asr_demo("rate", target_name=target, as_json=json)


@task(help={"target": "target name", "json": "one JSON object instead of the table"})
def asr_demo_latency(c, target="rpi4", json=False):
    """Streaming (per chunk, end of speech to text) vs whole-file latency, host, 1 thread."""
    with cli.guard():
        cli.asr_demo("latency", target_name=target, as_json=json)


@task(help={"target": "target name", "json": "one JSON object instead of the table"})
def asr_demo_blocks(c, target="rpi4", json=False):
    """Capture latency by callback block size (128..2048), a file driven at real-time pace."""
    with cli.guard():
        cli.asr_demo("blocks", target_name=target, as_json=json)


asr = Collection("asr")
for _name, _task in (("demo-rate", asr_demo_rate), ("demo-latency", asr_demo_latency),
                     ("demo-blocks", asr_demo_blocks)):  # fmt: skip
    asr.add_task(_task, _name)


@task(help={"only": "one target's entry (default: all)"})
def ci_matrix(c, only="all"):
    """Print the CI matrix (JSON) from targets/ and .github/matrix.yaml: the workflow's first job runs it."""
    with cli.guard():
        ci_cli.print_matrix(only=only)


@task(help={"check": "fail (exit 2) when .github/workflows/build.yml is not what targets/ generate"})
def ci_workflow(c, check=False):
    """Regenerate .github/workflows/build.yml from targets/, .github/matrix.yaml and the pinned actions."""
    with cli.guard():
        ci_cli.write_workflow(check=check)


@task(iterable=["cache_from"], help={"target": "target name", "image": "registry/name:tag to push to",
                                     "builder": "a docker-container buildx builder (attestations need one)",
                                     "model": "the model the build used, when not the target's",
                                     "cache_from": "buildx layer cache to read (repeatable)",
                                     "verbose": "echo every command"})  # fmt: skip
def ci_push(c, target, image, builder, model=None, cache_from=None, verbose=False):
    """Push a smoke-tested build with SBOM and provenance; writes build/<target>/pushed.txt (image@digest)."""
    with cli.guard():
        ci_cli.push(target, image=image, builder=builder, model=model, cache_from=tuple(cache_from),
                    verbose=verbose)  # fmt: skip


ci = Collection("ci")
ci.add_task(ci_matrix, "matrix")
ci.add_task(ci_workflow, "workflow")
ci.add_task(ci_push, "push")


@task(iterable=["platform"], help={"node": "node name", "endpoint": "ssh://user@host (Docker) or a context",
                                   "platform": "what the node builds natively, e.g. linux/arm64 (repeatable)",
                                   "no_bootstrap": "do not start BuildKit on the node now",
                                   "verbose": "echo every command"})  # fmt: skip
def builders_add(c, node, endpoint, platform=None, no_bootstrap=False, verbose=False):
    """Add a native builder node (docker buildx create --append) to the edgepack builder."""
    with cli.guard():
        ci_cli.add_builder(node, endpoint=endpoint, platforms=tuple(platform), bootstrap=not no_bootstrap,
                           verbose=verbose)  # fmt: skip


@task
def builders_ls(c):
    """buildx nodes and what each builds natively; where each target would build (native or QEMU)."""
    with cli.guard():
        ci_cli.list_builders()


builders = Collection("builders")
builders.add_task(builders_add, "add")
builders.add_task(builders_ls, "ls")


@task(help={"target": "target name (with an sdcard: section)", "dry": "print the plan and what is cached",
            "verbose": "echo every command"})  # fmt: skip
def flash_image(c, target="rpi4", dry=False, verbose=False):
    """Build the target's SD-card image: .img, .img.xz, sha256, rpi-imager entry (build/<target>/sdcard/)."""
    with cli.guard():
        cli.flash_image(target, dry=dry, verbose=verbose)


@task(
    help={"target": "target name", "image": "an .img (default: the target's last build)", "verbose": "echo"}
)
def flash_boot(c, target="rpi4", image=None, verbose=False):
    """Boot the card image under qemu-system-aarch64 (virt, the board's CPU) until its smoke test reports."""
    with cli.guard():
        cli.flash_boot(target, image=image, verbose=verbose)


@task(help={"image": "the .img to write", "device": "the card's disk, e.g. /dev/sdb",
            "force": "allow a non-removable disk", "yes": "do not ask for confirmation",
            "dry": "check and show, write nothing"})  # fmt: skip
def flash_write(c, image, device, force=False, yes=False, dry=False):
    """Write an image to a card: refuses system, mounted, small or fixed disks; verifies by reading back."""
    with cli.guard():
        cli.flash_write(image=image, device=device, force=force, yes=yes, dry=dry)


flash = Collection("flash")
for _name, _task in (
    ("image", flash_image),
    ("boot", flash_boot),
    ("write", flash_write),
):
    flash.add_task(_task, _name)

ns = Collection(build, doctor, targets, test, lock, model, device, wheels, asr, ci, builders, flash)
