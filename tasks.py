"""edgepack's tasks: a table of contents. The logic lives in src/edgepack/.

invoke build --target rpi4        model + app -> smoke-tested board image
invoke doctor [--fix]             check / install the host toolchain
invoke targets                    list targets
invoke lock.base|lock.deps        refresh a target's pinned packages
invoke test                       unit and integration tests
"""

from invoke import Collection, task

from edgepack import cli


@task(
    help={
        "target": "target name (targets/NAME.yaml)",
        "model": "an .onnx file instead of the target's model",
        "dry": "print the plan and what is cached; run nothing",
        "verbose": "echo every command",
    }
)
def build(c, target="rpi4", model=None, dry=False, verbose=False):
    """Build the target's image with the model baked in, and smoke-test it under QEMU."""
    with cli.guard():
        cli.build(target, model=model, dry=dry, verbose=verbose)


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


@task(help={"target": "target name"})
def lock_base(c, target="rpi4"):
    """Re-resolve the target's Debian base packages into targets/locks/debian-*.json."""
    with cli.guard():
        cli.lock_base(target)


@task(help={"target": "target name"})
def lock_deps(c, target="rpi4"):
    """Re-resolve the target's Python wheels (with hashes) into targets/locks/requirements-*.txt."""
    with cli.guard():
        cli.lock_deps(target)


@task(help={"unit": "unit tests only (no docker)", "k": "pytest -k expression"})
def test(c, unit=False, k=""):
    """Run the test suite: unit tests, then integration tests with the real docker, buildx and QEMU."""
    cli.run_tests(unit_only=unit, keyword=k)


lock = Collection("lock")
lock.add_task(lock_base, "base")
lock.add_task(lock_deps, "deps")
ns = Collection(build, doctor, targets, test, lock)
