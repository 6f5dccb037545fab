"""Recipes: typed, frozen, validated at load with file:line and a did-you-mean."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgepack.errors import ConfigError
from edgepack.wheels.recipes import BUNDLED, load_recipe, recipe_names, recipes_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def wheels_dir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "wheels", tmp_path / "wheels")
    return tmp_path / "wheels"


def write(wheels_dir: Path, name: str, text: str) -> Path:
    path = wheels_dir / f"{name}.yaml"
    path.write_text(text)
    return path


GOOD = 'description: x\nversion: "1.0"\nsdist_sha256: ' + "a" * 64 + "\ntest: import x\n"


def test_shipped_recipes_load_with_defaults() -> None:
    assert recipe_names(REPO / "wheels") == ["pyaudio", "webrtcvad"]
    vad = load_recipe(REPO / "wheels", "webrtcvad")
    assert (vad.version, vad.source, vad.system) == ("2.0.10", "pypi", ())
    assert vad.build_requires == ("setuptools==84.2.1", "wheel==0.48.0", "packaging==26.3")
    assert vad.patch_paths()[0].is_file()
    audio = load_recipe(REPO / "wheels", "PyAudio")  # PyPI names are case-insensitive
    assert audio.name == "pyaudio" and audio.system == ("portaudio19-dev",)


def test_recipe_is_frozen_and_its_digest_follows_content(wheels_dir: Path) -> None:
    vad = load_recipe(wheels_dir, "webrtcvad")
    with pytest.raises(AttributeError):
        vad.version = "2"  # type: ignore[misc]
    before = vad.digest()
    (wheels_dir / "patches/webrtcvad-no-pkg-resources.patch").write_text("--- a/x\n+++ b/x\n")
    assert load_recipe(wheels_dir, "webrtcvad").digest() != before


def test_unknown_recipe_suggests_the_closest(wheels_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no wheel recipe for 'webrtcvda'") as err:
        load_recipe(wheels_dir, "webrtcvda")
    assert "Did you mean 'webrtcvad'?" in err.value.render()


def test_unknown_key_names_file_line_and_suggestion(wheels_dir: Path) -> None:
    path = write(wheels_dir, "x", GOOD + "sytem: [libfoo-dev]\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(wheels_dir, "x")
    assert str(err.value) == f"{path}:5: unknown key 'sytem'. Did you mean 'system'?"


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("build_requires: [setuptools>=60]\n", 5, "must be pinned exactly"),
        ('version: "01.0"\n', 5, "is not normalised"),
        ("system: [Not_A_Package]\n", 5, "is not a Debian package name"),
        ("patches: [nope.patch]\n", 5, "does not exist"),
        ("test: 'import (x'\n", 5, "is not valid Python"),
        ("source: ../nowhere\n", 5, "does not exist"),
    ],
)
def test_bad_values_name_their_line(wheels_dir: Path, extra: str, line: int, message: str) -> None:
    text = GOOD.replace('version: "1.0"\n', "") if extra.startswith("version") else GOOD
    text = text.replace("test: import x\n", "") if extra.startswith("test") else text  # one key, once
    path = write(wheels_dir, "x", text + extra)
    with pytest.raises(ConfigError, match=message) as err:
        load_recipe(wheels_dir, "x")
    assert str(err.value).startswith(f"{path}:")


def test_pypi_source_needs_the_sdist_hash(wheels_dir: Path) -> None:
    write(wheels_dir, "x", 'description: x\nversion: "1.0"\ntest: import x\n')
    with pytest.raises(ConfigError, match="needs 'sdist_sha256'"):
        load_recipe(wheels_dir, "x")


def test_a_project_without_wheels_uses_edgepacks_recipes(tmp_path: Path) -> None:
    assert (
        recipes_dir(tmp_path) == BUNDLED and BUNDLED.resolve() == REPO / "wheels"
    )  # the same files, via _data
    (tmp_path / "wheels").mkdir()
    assert recipes_dir(tmp_path) == tmp_path / "wheels"
