"""A recipe's sources on the host: the pinned sdist and its build requirements as wheels.

pip downloads them on the host (the only place with a network), and the
sdist, pinned by sha256, is kept in the machine's package store; builds then
run offline: the cross build from a host venv, the emulated one in a
container with ``--network none`` that sees the same files mounted.
"""

from __future__ import annotations

import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from edgepack.errors import CommandError, ConfigError, InputError
from edgepack.fsutil import atomic_path, held, sha256_file
from edgepack.locks.store import Store
from edgepack.pipeline.steps import digest
from edgepack.runner import Runner
from edgepack.wheels.recipes import Recipe
from edgepack.wheels.strategy import Sources

_VERSIONS = re.compile(r"\(from versions: (?P<versions>[^)]*)\)")


def pip_download_argv(*args: str | Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        *map(str, args),
    ]


def sdist_argv(recipe: Recipe, dest: Path) -> list[str]:
    # --no-build-isolation: pip reads the sdist's metadata with the host's setuptools, offline.
    return pip_download_argv(
        "--no-deps", "--no-binary=:all:", "--no-build-isolation", "--dest", dest, recipe.requirement
    )


def deps_argv(recipe: Recipe, dest: Path) -> list[str]:
    return pip_download_argv("--no-deps", "--only-binary=:all:", "--dest", dest, *recipe.build_requires)


def fetch(recipe: Recipe, *, cache: Path, runner: Runner) -> Sources:
    """The recipe's source (patched, when it has patches) and build requirements, cached and checked.

    Builds for two architectures fetch the same sources at once (--target all): one at a time.
    """
    with held(cache / "locks" / f"{recipe.name}.lock"):
        source = _source(recipe, cache=cache, runner=runner)
        if recipe.patches:
            source = _patched(recipe, source, cache=cache, runner=runner)
        return Sources(source=source, deps=_deps(recipe, cache=cache, runner=runner))


def patch_argv(patch: Path, folder: Path) -> list[str]:
    return ["patch", "--batch", "--forward", "--strip=1", "--directory", str(folder), "--input", str(patch)]


def _patched(recipe: Recipe, source: Path, *, cache: Path, runner: Runner) -> Path:
    """The source unpacked into a folder with the recipe's patches applied (patch -p1)."""
    out = cache / f"patched-{recipe.digest()[:16]}"
    if (out / ".complete").is_file():
        return out / "src"
    with atomic_path(out, is_dir=True) as tmp:
        if source.is_dir():
            shutil.copytree(source, tmp / "src")
        else:
            with tarfile.open(source) as tar:
                tar.extractall(tmp / "unpacked", filter="data")
            (top,) = list((tmp / "unpacked").iterdir())  # an sdist holds one <name>-<version>/ folder
            top.rename(tmp / "src")
        for patch in recipe.patch_paths():
            runner.run(
                patch_argv(patch, tmp / "src"),
                what=f"applying {patch.name} to {recipe.requirement}",
                hint=f"The patch no longer applies to this version: update it ({recipe.line('patches')}).",
            )
        (tmp / ".complete").write_text("ok\n")
    return out / "src"


def _source(recipe: Recipe, *, cache: Path, runner: Runner) -> Path:
    local = recipe.source_path()
    if local is not None:
        return local
    folder = cache / f"sdist-{recipe.name}-{recipe.version}-{recipe.sdist_sha256[:16]}"
    found = sorted(folder.glob("*.tar.gz")) + sorted(folder.glob("*.zip"))
    if found and sha256_file(found[0]) == recipe.sdist_sha256:
        return found[0]
    store = Store.default()
    stored = store.get(recipe.sdist_sha256)
    if stored is not None and _is_sdist_of(stored.name, recipe):  # fetched before, by any clone
        with atomic_path(folder, is_dir=True) as staged:
            shutil.copyfile(stored, staged / stored.name)
        return folder / stored.name
    with tempfile.TemporaryDirectory(prefix="sdist-", dir=_mkdir(cache)) as tmp:
        try:
            runner.run(sdist_argv(recipe, Path(tmp)), what=f"downloading the {recipe.requirement} sdist")
        except CommandError as exc:
            raise unknown_release(recipe, exc) from None
        files = sorted(Path(tmp).iterdir())
        if runner.dry_run:
            return folder / f"{recipe.name}-{recipe.version}.tar.gz"
        if len(files) != 1:
            raise InputError(f"downloading the {recipe.requirement} sdist left {len(files)} files, not one.")
        got = sha256_file(files[0])
        if got != recipe.sdist_sha256:
            raise InputError(
                f"{recipe.line('sdist_sha256')}: the sdist {files[0].name} has sha256 {got}, not the pin.",
                hint="If the release was really replaced on PyPI, check it, then update sdist_sha256.",
            )
        store.adopt(files[0], sha256=got, name=files[0].name)
        with atomic_path(folder, is_dir=True) as staged:
            shutil.move(files[0], staged / files[0].name)
    return folder / files[0].name


def _is_sdist_of(filename: str, recipe: Recipe) -> bool:
    """The stored file is this recipe's release (a pin left over from another version is not)."""
    try:
        name, version = parse_sdist_filename(filename)
    except (InvalidSdistFilename, InvalidVersion):
        return False
    return name == canonicalize_name(recipe.name) and version == Version(recipe.version)


def unknown_release(recipe: Recipe, exc: CommandError) -> Exception:
    """pip's "no matching distribution" as a line that names the recipe, the version and what exists."""
    if "No matching distribution" not in exc.output and "Could not find a version" not in exc.output:
        return exc
    versions = _VERSIONS.search(exc.output)
    listed = versions["versions"].strip() if versions else "none"
    if listed == "none":
        return ConfigError(
            f"{recipe.line('name')}: PyPI has no sdist of a project named '{recipe.name}'.",
            hint="Check the spelling against https://pypi.org.",
        )
    last = ", ".join(v.strip() for v in listed.split(",")[-5:])
    return ConfigError(
        f"{recipe.line('version')}: PyPI has no sdist of {recipe.name} {recipe.version}.",
        hint=f"Its latest sdist versions: {last}.",
    )


def _deps(recipe: Recipe, *, cache: Path, runner: Runner) -> Path:
    folder = cache / f"deps-{digest(*recipe.build_requires)[:16]}"
    if (folder / ".complete").is_file():
        return folder
    with atomic_path(folder, is_dir=True) as tmp:
        runner.run(deps_argv(recipe, tmp), what=f"downloading the build requirements of {recipe.name}")
        (tmp / ".complete").write_text("\n".join(recipe.build_requires) + "\n")
    return folder


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
