"""Recipes: ``wheels/<package>.yaml`` over ``wheels/defaults.yaml``, as frozen models.

One small file per package that edgepack builds for a board: where its
source comes from (an sdist from PyPI at a pinned version and sha256, or a
local folder), its build requirements (exact pins), the Debian -dev packages
of the target architecture it links against, and a test run on the board.
Validated at load like targets: file:line and a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from edgepack.errors import ConfigError
from edgepack.yamlconf import Located, build, json_schema, load_yaml

# edgepack's own recipes: used by a project that has no wheels/ folder (as runtime/ is).
BUNDLED = Path(__file__).resolve().parents[1] / "_data" / "wheels"  # edgepack's own recipes
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass(frozen=True)
class Recipe:
    name: str = field(metadata={"doc": "the PyPI project name: the file name without .yaml"})
    description: str = field(metadata={"doc": "what the package is, for humans"})
    version: str = field(metadata={"doc": "the exact version built (PEP 440)"})
    test: str = field(metadata={"doc": "Python code run on the board (under QEMU): imports and exercises it"})
    source: str = field(
        metadata={"doc": "'pypi' (the sdist of that version) or a folder, relative to the recipe"}
    )
    sdist_sha256: str = field(default="", metadata={"doc": "sha256 of the PyPI sdist (required for 'pypi')"})
    build_requires: tuple[str, ...] = field(
        default=(), metadata={"doc": "build backend packages, each pinned with =="}
    )
    system: tuple[str, ...] = field(
        default=(), metadata={"doc": "Debian -dev packages of the target architecture it links against"}
    )
    patches: tuple[str, ...] = field(
        default=(),
        metadata={"doc": "unified diffs (patch -p1) applied to the source, relative to the recipe"},
    )
    origin: Path = field(default=Path(), compare=False, metadata={"yaml": False})

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def source_path(self) -> Path | None:
        """The local source folder, or None for a PyPI sdist."""
        return None if self.source == "pypi" else (self.origin.parent / self.source).resolve()

    def patch_paths(self) -> list[Path]:
        return [(self.origin.parent / p).resolve() for p in self.patches]

    def digest(self) -> str:
        """sha256 of every field that changes the built wheel (not the file's location), patches included."""
        data: dict[str, object] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "origin"
        }
        data["patch_texts"] = [p.read_text(encoding="utf-8") for p in self.patch_paths()]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()

    def line(self, key: str) -> str:
        """``file:line`` of a key, for messages that point into the recipe."""
        return f"{self.origin}:{_line_of(self.origin, key)}"


def recipes_dir(project_root: Path) -> Path:
    """The project's wheels/ folder, or edgepack's own recipes when it has none."""
    own = project_root / "wheels"
    return own if own.is_dir() else BUNDLED


def recipe_names(wheels_dir: Path) -> list[str]:
    return sorted(p.stem for p in wheels_dir.glob("*.yaml") if p.stem != "defaults")


def load_recipe(wheels_dir: Path, name: str) -> Recipe:
    """Load and validate ``wheels/<name>.yaml``; ConfigError names file, line and fix."""
    stem = _file_stem(wheels_dir, name)
    path = wheels_dir / f"{stem}.yaml"
    doc = load_yaml(path)
    if not isinstance(doc.data, dict) or not doc.data:
        raise ConfigError(f"{path}:1: expected a mapping of recipe settings.")
    merged: Located = doc.over(load_yaml(wheels_dir / "defaults.yaml"))
    merged.data.setdefault("name", stem)
    recipe = dataclasses.replace(build(Recipe, merged.data, where=merged), origin=path)
    _validate(recipe, merged)
    return recipe


def load_recipes(wheels_dir: Path, names: tuple[str, ...] | list[str]) -> list[Recipe]:
    return [load_recipe(wheels_dir, name) for name in names]


def recipe_schema() -> dict[str, object]:
    return json_schema(Recipe, title="edgepack wheel recipe (wheels/<package>.yaml over defaults.yaml)")


def _file_stem(wheels_dir: Path, name: str) -> str:
    known = recipe_names(wheels_dir)
    by_canonical = {canonicalize_name(k): k for k in known}
    if (found := by_canonical.get(canonicalize_name(name))) is not None:
        return found
    close = difflib.get_close_matches(name.lower(), known, n=1)
    tip = f"Did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"no wheel recipe for '{name}' (no {wheels_dir / name}.yaml).",
        hint=f"{tip}Known recipes: {', '.join(known) or 'none'}. Add one: see wheels/webrtcvad.yaml.",
    )


def _validate(recipe: Recipe, where: Located) -> None:
    def fail(key: tuple[str, ...], message: str) -> None:
        path, line = where.lines.get(key) or where.lines.get(key[:1]) or (where.path, 1)
        raise ConfigError(f"{path}:{line}: {message}")

    if canonicalize_name(recipe.name) != canonicalize_name(recipe.origin.stem):
        fail(("name",), f"name '{recipe.name}' must match the file name '{recipe.origin.stem}'.")
    try:
        if str(Version(recipe.version)) != recipe.version:
            fail(
                ("version",),
                f"version '{recipe.version}' is not normalised: write '{Version(recipe.version)}'.",
            )
    except InvalidVersion:
        fail(("version",), f"version '{recipe.version}' is not a PEP 440 version.")
    if recipe.source == "pypi" and not _SHA256.match(recipe.sdist_sha256):
        fail(("sdist_sha256",), "a 'pypi' source needs 'sdist_sha256': the sdist's sha256 (64 hex digits).")
    if (path := recipe.source_path()) is not None and not path.is_dir():  # None: a 'pypi' source
        fail(("source",), f"source folder {path} does not exist (use 'pypi' or a folder).")
    for i, req in enumerate(recipe.build_requires):
        if not _is_pinned(req):
            fail(
                ("build_requires", str(i)),
                f"build requirement '{req}' must be pinned exactly (name==version).",
            )
    for i, patch in enumerate(recipe.patch_paths()):
        if not patch.is_file():
            fail(("patches", str(i)), f"patch {patch} does not exist.")
    for i, package in enumerate(recipe.system):
        if not _DEBIAN_NAME.match(package):
            fail(("system", str(i)), f"'{package}' is not a Debian package name.")
    try:
        compile(recipe.test, f"{recipe.origin}:test", "exec")
    except SyntaxError as exc:
        fail(("test",), f"'test' is not valid Python: {exc.msg} (line {exc.lineno} of the test).")


def _is_pinned(text: str) -> bool:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return False
    specs = list(req.specifier)
    return len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version


def _line_of(path: Path, key: str) -> int:
    try:
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if text.startswith(f"{key}:"):
                return number
    except OSError:
        pass
    return 1
