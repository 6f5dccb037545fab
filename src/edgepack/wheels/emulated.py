"""The ``emulated`` strategy: cibuildwheel in a builder image made from Debian packages, under QEMU.

No registry is reachable, so cibuildwheel's manylinux images are replaced by
a local one, passed as its custom image (``CIBW_MANYLINUX_AARCH64_IMAGE``):
the target's Debian Python, pip, gcc and the recipes' -dev packages,
unpacked on the host from ``wheels/locks/builder-*.json`` (no emulation, no
maintainer scripts), plus the layout cibuildwheel expects of a manylinux
image (``/opt/python/cp311-cp311/bin/{python,pip}``, and the utility Python
it runs for globs, ``/opt/python/cp39-cp39/bin/python``). The container has
``--network none``: pip builds in its isolated env from the recipe's pinned
build requirements, mounted read-only (``PIP_NO_INDEX``/``PIP_FIND_LINKS``).
auditwheel runs on the host afterwards, as for ``cross``
(``CIBW_REPAIR_WHEEL_COMMAND=""``), against the builder's own libraries.
"""

from __future__ import annotations

import inspect
import io
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path

from edgepack.config import Project, Target
from edgepack.debian.rootfs import Account, source_date_epoch, write_tar
from edgepack.errors import CommandError
from edgepack.fsutil import atomic_path, write_text
from edgepack.pipeline.docker import buildx_argv, inspect_image
from edgepack.pipeline.steps import digest
from edgepack.runner import Runner
from edgepack.wheels import sysroot as trees
from edgepack.wheels.recipes import Recipe
from edgepack.wheels.strategy import TRIPLETS, Sources, StrategyName, compile_failure, single_wheel

DEPS_IN_CONTAINER = "/edgepack-deps"
DOCKERFILE = """\
# cibuildwheel's builder for {arch}: Debian {suite} packages (wheels/locks/builder-*.json).
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
CMD ["/bin/bash"]
"""
PIP_SCRIPT = """#!/opt/python/{tag}/bin/python
# cibuildwheel checks that `which pip` is this interpreter's own pip.
import sys
from pip._internal.cli.main import main
sys.exit(main())
"""


def identifier(target: Target) -> str:
    """cibuildwheel's build identifier, e.g. cp311-manylinux_aarch64."""
    return f"cp{target.python.replace('.', '')}-manylinux_{target.wheel_arch}"


def python_tag(target: Target) -> str:
    py = "cp" + target.python.replace(".", "")
    return f"{py}-{py}"


def cibuildwheel_env(
    target: Target, *, image: str, deps: Path, build_requires: Sequence[str] = ()
) -> dict[str, str]:
    """CIBW_* settings: the local builder image, no network, no repair in the container."""
    engine = ["docker", "; create_args: --network=none", f"--volume={deps}:{DEPS_IN_CONTAINER}:ro"]
    return {
        "CIBW_PLATFORM": "linux",
        "CIBW_ARCHS": target.wheel_arch,
        "CIBW_BUILD": identifier(target),
        f"CIBW_MANYLINUX_{target.wheel_arch.upper()}_IMAGE": image,
        "CIBW_CONTAINER_ENGINE": " ".join(engine) + "; disable_host_mount: true",
        # As in `cross`: no isolated env (in it, pip let Debian's own setuptools 66 from the
        # system site-packages satisfy the build), the recipe's pinned backend in the venv instead.
        "CIBW_BUILD_FRONTEND": "pip; args: --no-build-isolation",
        "CIBW_BEFORE_BUILD": " ".join(
            ["pip install --no-index --find-links", DEPS_IN_CONTAINER, *build_requires]
        ),
        "CIBW_DEPENDENCY_VERSIONS": "latest",  # no constraints file: the pins are the mounted wheels
        "CIBW_ENVIRONMENT": f"PIP_NO_INDEX=1 PIP_FIND_LINKS={DEPS_IN_CONTAINER}",
        "CIBW_REPAIR_WHEEL_COMMAND": "",
        "CIBW_TEST_COMMAND": "",
        "CIBW_BUILD_VERBOSITY": "0",
        "SOURCE_DATE_EPOCH": str(source_date_epoch()),
    }


def cibuildwheel_argv(source: Path, *, out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "cibuildwheel", "--output-dir", str(out_dir), str(source)]


def builder_tag(target: Target, lock_digest: str) -> str:
    """Named by the lock and by this module (which writes the image's layout)."""
    key = digest(lock_digest, inspect.getsource(sys.modules[__name__]))
    return f"edgepack/wheel-builder-{target.debian.suite}-{target.arch}:{key[:12]}"


def write_builder_tar(tree: Path, out: Path, *, target: Target) -> None:
    """The unpacked builder tree as a tar, plus the manylinux layout cibuildwheel looks for."""
    with atomic_path(out) as tmp:
        write_tar(tree, tmp, mtime=source_date_epoch(), account=Account("edge", 1000))
        with tarfile.open(tmp, "a") as tar:
            for entry in _layout(target, tree):
                tar.addfile(*entry)


def _layout(target: Target, tree: Path) -> list[tuple[tarfile.TarInfo, io.BytesIO | None]]:
    python = f"/usr/bin/python{target.python}"
    tag = python_tag(target)
    home = f"/opt/python/{tag}"
    cfg = f"home = /usr/bin\ninclude-system-site-packages = true\nversion = {target.python}\n"
    entries = [
        _dir("tmp", 0o1777),
        _dir("opt/python"),
        _dir(f"{home[1:]}"),
        _dir(f"{home[1:]}/bin"),
        _link(f"{home[1:]}/bin/python", python),
        _file(f"{home[1:]}/bin/pip", PIP_SCRIPT.format(tag=tag), 0o755),
        _file(f"{home[1:]}/pyvenv.cfg", cfg, 0o644),
        _dir("opt/python/cp39-cp39"),
        _dir("opt/python/cp39-cp39/bin"),
        _link("opt/python/cp39-cp39/bin/python", python),  # cibuildwheel's UTILITY_PYTHON
    ]
    # What maintainer scripts (update-alternatives, dash's postinst) make on a real system.
    for name, points_to in (("usr/bin/sh", "dash"), ("usr/bin/which", "which.debianutils")):
        if not (tree / name).is_symlink() and not (tree / name).exists():
            entries.append(_link(name, points_to))
    return entries


def _dir(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, source_date_epoch()
    return info, None


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, source_date_epoch()
    return info, None


def _file(name: str, text: str, mode: int) -> tuple[tarfile.TarInfo, io.BytesIO]:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, source_date_epoch()
    return info, io.BytesIO(data)


@dataclass
class EmulatedStrategy:
    target: Target
    project: Project
    runner: Runner
    name: StrategyName = "emulated"
    image: str = field(default="", init=False)
    _tree: Path | None = field(default=None, init=False)

    def toolchain_id(self) -> str:
        lock = trees.lock_path(self.project, self.target, "builder")
        lock_text = lock.read_text() if lock.is_file() else "missing"
        cpu = self.target.qemu_cpu or "native"  # a native target's wheels are tested on the host's CPU
        return digest(lock_text, f"cibuildwheel {dist_version('cibuildwheel')}", cpu)

    def prepare(self, recipes: Sequence[Recipe]) -> None:
        """The builder image, built once per builder lock (reused while the engine has it)."""
        lock = trees.read_lock(self.project, self.target, "builder", recipes)
        self._tree = trees.ensure_tree(
            lock, target=self.target, project=self.project, runner=self.runner, kind="builder"
        )
        self.image = builder_tag(self.target, lock.digest())
        if inspect_image(self.image, runner=self.runner) is not None:
            return
        context = self._tree.parent / f"{self._tree.name}.context"
        write_builder_tar(self._tree, context / "rootfs.tar", target=self.target)
        write_text(
            context / "Dockerfile", DOCKERFILE.format(arch=self.target.arch, suite=self.target.debian.suite)
        )
        self.runner.run(
            buildx_argv(
                context=context,
                dockerfile=context / "Dockerfile",
                platform=self.target.platform,
                tags=[self.image],
                labels={"io.edgepack.lock-sha256": lock.digest()},
                build_args={},
                iidfile=context / "image.iid",
            ),
            what=f"docker buildx build of the builder image {self.image}",
        )

    def ldpaths(self) -> list[Path]:
        assert self._tree is not None, "prepare() first"
        return trees.library_dirs(self._tree, TRIPLETS[self.target.arch])

    def build(self, recipe: Recipe, sources: Sources, *, out_dir: Path) -> Path:
        env = cibuildwheel_env(
            self.target, image=self.image, deps=sources.deps, build_requires=recipe.build_requires
        )
        # cibuildwheel copies its working folder into the container: a source folder's parent, or
        # (for an sdist) the folder it unpacks the sdist into.
        cwd = sources.source.parent
        try:
            self.runner.run(
                cibuildwheel_argv(sources.source, out_dir=out_dir),
                env=env,
                cwd=cwd,
                what=f"cibuildwheel {identifier(self.target)} of {recipe.requirement} (QEMU)",
                hint="Run it again with --verbose to see every command in the container.",
            )
        except CommandError as exc:
            raise compile_failure(recipe, self.name, exc) from None
        return single_wheel(out_dir, what=f"cibuildwheel of {recipe.requirement}")
