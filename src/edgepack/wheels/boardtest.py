"""Prove each repaired wheel on the board: installed into the target runtime, its test run under QEMU.

The runtime is the target's own distroless base (the locked Debian rootfs
that ``edgepack build`` uses) plus the wheelhouse's wheels, installed by hash
exactly as the image build installs them; the recipe's ``test`` runs with
``QEMU_CPU`` set to the board's core (cortex-a72 for a Pi 4), so code built
for a newer CPU fails here as it would on the board.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepack import debian
from edgepack.config import Project, Target
from edgepack.fsutil import atomic_path, write_text
from edgepack.pipeline.docker import buildx_argv, run_argv
from edgepack.pipeline.pip import hashed_install_argv
from edgepack.pipeline.steps import digest
from edgepack.runner import Runner
from edgepack.wheels.recipes import Recipe
from edgepack.wheels.wheelhouse import Entry

# An import and a few calls take seconds under QEMU; a hang must not cost minutes.
TEST_TIMEOUT_S = 120
DOCKERFILE = """\
# A target runtime for wheel tests: the board's base rootfs + the wheels.
FROM scratch
ADD rootfs.tar /
COPY site-packages/ /usr/local/lib/python{python}/dist-packages/
USER 1000:1000
ENTRYPOINT ["/usr/bin/python3", "-I"]
"""


@dataclass(frozen=True)
class TestResult:
    package: str
    ok: bool
    output: str


def python_argv(image: str, target: Target, code: str) -> list[str]:
    """``python3 -I -c CODE`` in ``image``, locked down, under QEMU with the board's CPU."""
    return run_argv(
        image=image,
        platform=target.platform,
        qemu_cpu=target.qemu_cpu if target.emulated else None,
        entrypoint="/usr/bin/python3",
        command=["-I", "-c", code],
    )


def install_argv(target: Target, index: Path, dest: Path) -> list[str]:
    """The wheelhouse's wheels, by hash, for the board's platform (as the deps layer does)."""
    return hashed_install_argv(target, dest, "--find-links", index, "-r", index / "requirements.txt")


def run_tests(image: str, target: Target, recipes: Sequence[Recipe], *, runner: Runner) -> list[TestResult]:
    """Each recipe's test in ``image``; a failure raises with the test's output."""
    results = []
    for recipe in recipes:
        result = runner.run(
            python_argv(image, target, recipe.test),
            timeout=TEST_TIMEOUT_S,
            what=f"the {recipe.name} test, {target.runs_on}",
            hint=f"The test is in {recipe.line('test')}.",
        )
        results.append(TestResult(recipe.name, True, result.stdout.strip()))
    return results


def verify(
    target: Target,
    entries: Sequence[Entry],
    recipes: Sequence[Recipe],
    *,
    project: Project,
    runner: Runner,
    index: Path,
) -> list[TestResult]:
    """Build the test runtime image from the base rootfs and ``index``, and run every test."""
    tag = f"edgepack/wheels-test-{target.name}:{digest(*(e.sha256 for e in entries))[:12]}"
    context = project.build_dir / target.name / "wheels-test"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    try:
        (context / "rootfs.tar").hardlink_to(base_rootfs(target, project=project, runner=runner))
        runner.run(
            install_argv(target, index, context / "site-packages"),
            what=f"installing the wheelhouse for {target.platform}",
        )
        write_text(context / "Dockerfile", DOCKERFILE.format(python=target.python))
        runner.run(
            buildx_argv(
                context=context,
                dockerfile=context / "Dockerfile",
                platform=target.platform,
                tags=[tag],
                labels={"io.edgepack.target": target.name},
                build_args={},
                iidfile=context / "image.iid",
            ),
            what=f"docker buildx build of {tag}",
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    try:
        return run_tests(tag, target, recipes, runner=runner)
    finally:
        runner.run(["docker", "image", "rm", "--force", tag], check=False, what="removing the test image")


def base_rootfs(target: Target, *, project: Project, runner: Runner) -> Path:
    """The target's distroless base rootfs.tar (from its committed Debian lock), cached."""
    lock = debian.read_lock(project.lock_path(target, "debian"), target=target.name)
    out = project.cache_dir("wheels-base", lock.digest()) / "rootfs.tar"
    if out.is_file():
        return out
    debs = debian.fetch_debs(
        lock,
        sources=target.debian.sources,
        runner=runner,
        target=target.name,
    )
    with atomic_path(out) as tmp:
        debian.build_rootfs_tar(lock, debs, out=tmp, python=target.python, runner=runner)
    return out
