"""Wheels for real: webrtcvad and pyaudio cross-built, repaired by auditwheel, tested on an emulated Pi 4.

The emulated strategy (cibuildwheel under QEMU) builds both too, and must match them; it
takes minutes on a 2-core host, so it runs only with EDGEPACK_TEST_EMULATED=1
(the benchmark, bench/wheels.py, runs it every time).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from edgepack import wheels
from edgepack.config import Project, load_target
from edgepack.errors import ConfigError
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner
from edgepack.wheels import repair, sources
from edgepack.wheels.cross import CrossStrategy
from edgepack.wheels.recipes import load_recipe
from edgepack.wheels.strategy import BuildError, Sources

REPO = Path(__file__).resolve().parents[2]
EMULATED = os.environ.get("EDGEPACK_TEST_EMULATED") == "1"
# What each recipe's test prints on the board when the wheel works (pyaudio's line goes on with
# PortAudio's build details).
WORKS = {"webrtcvad": "webrtcvad True", "pyaudio": "pyaudio 0.2.14 portaudio 1246720 PortAudio V19.6.0"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of the project; its build cache is the repository's (content-addressed: safe to share)."""
    root = tmp_path_factory.mktemp("wheels-project")
    for part in ("targets", "wheels", "docker", "assets", "models"):
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, root / part)
    (root / "runtime").mkdir()
    shutil.copy(REPO / "runtime" / "requirements.in", root / "runtime")
    (REPO / "build" / "cache").mkdir(parents=True, exist_ok=True)
    (root / "build").mkdir()
    (root / "build" / "cache").symlink_to(REPO / "build" / "cache")
    return Project(root)


@pytest.fixture(scope="module", autouse=True)
def machine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty cache of built wheels for this module: the wheels are really compiled here."""
    folder = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPACK_BUILT", str(folder))
        yield folder


@pytest.fixture(scope="module")
def built(project: Project) -> list[wheels.Entry]:
    target = load_target(project, "rpi4")
    return wheels.build_wheels(target, project=project, runner=Runner(echo=False))


@dataclasses.dataclass
class Recording(Runner):
    calls: list[str] = dataclasses.field(default_factory=list)

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls.append(" ".join(map(str, argv)))
        return super().run(argv, **kwargs)


def test_a_fresh_clone_takes_the_built_wheels_from_the_machine_not_the_compiler(
    built: list[wheels.Entry], machine_cache: Path, tmp_path: Path
) -> None:
    clone = Project(tmp_path / "clone")
    for part in ("targets", "wheels", "runtime"):
        shutil.copytree(REPO / part, clone.root / part, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    runner = Recording(echo=False)
    again = wheels.build_wheels(load_target(clone, "rpi4"), project=clone, runner=runner)
    assert [e.sha256 for e in again] == [e.sha256 for e in built] and all(e.cached for e in again)
    assert all(e.path.is_relative_to(clone.build_dir) for e in again)
    assert not [c for c in runner.calls if " wheel " in c or "auditwheel" in c or "download" in c], (
        runner.calls
    )
    assert {p.parent.parent.name for p in machine_cache.glob("wheels/*/cross-*/entry.json")} == {
        "webrtcvad",
        "pyaudio",
    }


def test_cross_builds_repaired_manylinux_aarch64_wheels(built: list[wheels.Entry]) -> None:
    by_name = {e.package: e for e in built}
    assert set(by_name) == {"webrtcvad", "pyaudio"}
    for entry in built:
        tags = repair.wheel_tags(entry.path)
        assert (tags.python, tags.abi) == ("cp311", "cp311")
        glibc = repair.manylinux_glibc(entry.path)
        assert tags.platform.endswith("_aarch64") and glibc is not None and glibc <= (2, 36)
        assert "is consistent with the following platform tag" in " ".join(entry.show.split())
        assert set(repair.elf_machines(entry.path).values()) == {"aarch64"}


def test_pyaudio_carries_libportaudio_grafted_in(built: list[wheels.Entry]) -> None:
    (audio,) = [e for e in built if e.package == "pyaudio"]
    assert any(name.startswith("libportaudio-") for name in audio.grafted), audio.grafted
    assert audio.repaired_bytes > audio.built_bytes * 5  # PortAudio, ALSA and JACK now travel with it
    with zipfile.ZipFile(audio.path) as zf:
        assert any(n.startswith("pyaudio.libs/libportaudio-") for n in zf.namelist())


def test_a_second_build_reuses_the_wheelhouse(project: Project, built: list[wheels.Entry]) -> None:
    target = load_target(project, "rpi4")
    again = wheels.build_wheels(target, project=project, runner=Runner(echo=False))
    assert all(e.cached for e in again) and [e.sha256 for e in again] == [e.sha256 for e in built]
    index = (project.build_dir / "wheelhouse/rpi4/index/requirements.txt").read_text()
    assert all(f"--hash=sha256:{e.sha256}" in index for e in built)


def test_both_import_and_work_on_an_emulated_cortex_a72(project: Project, built: list[wheels.Entry]) -> None:
    target = load_target(project, "rpi4")
    results = {r.package: r.output for r in wheels.verify(target, built, project=project, runner=Runner())}
    assert results["webrtcvad"] == WORKS["webrtcvad"]  # a 440 Hz tone is speech to the VAD; silence is not
    assert results["pyaudio"].startswith(WORKS["pyaudio"])


def test_the_deps_layer_installs_the_built_wheels_by_hash(
    project: Project, built: list[wheels.Entry]
) -> None:
    target = load_target(project, "rpi4")
    b = Build(target=target, project=project, runner=Runner(echo=False), model=target.model)
    (deps,) = [s for s in plan(b) if s.name == "deps"]
    (record,) = execute([deps], b.cache)
    site = Path(record.outputs["site_packages"])
    assert (site / "webrtcvad.py").is_file() and (site / "pyaudio.libs").is_dir()
    assert list(site.glob("_webrtcvad.cpython-311-aarch64-linux-gnu.so"))


def test_a_missing_system_library_stops_at_the_first_compiler_error(project: Project, tmp_path: Path) -> None:
    target = load_target(project, "rpi4")
    src = tmp_path / "src"
    src.mkdir()
    (src / "setup.py").write_text(
        "from setuptools import setup, Extension\n"
        "setup(name='needsopus', version='1.0', ext_modules=[Extension('_nj', ['nj.c'])])\n"
    )
    (src / "nj.c").write_text("#include <opus/opus.h>\nint x;\n")
    recipe = dataclasses.replace(load_recipe(project.root / "wheels", "webrtcvad"), name="needsopus",
                                 version="1.0", source=str(src), patches=())  # fmt: skip
    strategy = CrossStrategy(target=target, project=project, runner=Runner(echo=False))
    strategy.prepare([recipe])
    deps = sources.fetch(
        recipe, cache=project.build_dir / "cache" / "sources", runner=Runner(echo=False)
    ).deps
    with pytest.raises(BuildError) as err:
        strategy.build(recipe, Sources(src, deps), out_dir=tmp_path / "out")
    text = err.value.render()
    assert "the compiler stopped: nj.c:1:10: fatal error: opus/opus.h: No such file or directory" in text
    assert "compiler command: " in text and "nj.c" in text.split("compiler command: ")[1]
    assert "libopus-dev" in err.value.hint and "Traceback" not in text


def test_auditwheel_refusal_is_quoted(project: Project, built: list[wheels.Entry], tmp_path: Path) -> None:
    target = load_target(project, "rpi4")
    recipe = load_recipe(project.root / "wheels", "pyaudio")
    strategy = CrossStrategy(target=target, project=project, runner=Runner(echo=False))
    strategy.prepare([recipe])
    src = sources.fetch(recipe, cache=project.build_dir / "cache" / "sources", runner=Runner(echo=False))
    unrepaired = strategy.build(recipe, src, out_dir=tmp_path / "built")
    with pytest.raises(repair.RepairError) as err:  # no library path: libportaudio cannot be found
        repair.repair(
            unrepaired, target=target, out_dir=tmp_path / "out", ldpaths=[tmp_path], runner=Runner()
        )
    assert 'required library "libportaudio.so.2" could not be located' in err.value.render()


def test_an_unknown_version_names_the_recipe(project: Project) -> None:
    recipe = dataclasses.replace(load_recipe(project.root / "wheels", "webrtcvad"), version="9.9.9")
    with pytest.raises(ConfigError, match=r"webrtcvad\.yaml:\d+: PyPI has no sdist of webrtcvad 9\.9\.9"):
        sources.fetch(recipe, cache=project.build_dir / "cache" / "sources", runner=Runner(echo=False))


@pytest.mark.skipif(not EMULATED, reason="minutes under QEMU: set EDGEPACK_TEST_EMULATED=1")
@pytest.mark.parametrize("package", ["webrtcvad", "pyaudio"])
def test_emulated_wheels_are_equivalent_and_work(
    project: Project, built: list[wheels.Entry], package: str
) -> None:
    target = load_target(project, "rpi4")
    (entry,) = wheels.build_wheels(target, project=project, runner=Runner(echo=False), strategy="emulated",
                                   packages=[package])  # fmt: skip
    (cross,) = [e for e in built if e.package == package]
    assert entry.strategy == "emulated" and entry.path.name == cross.path.name
    assert entry.grafted == cross.grafted
    assert contents(entry.path) == contents(cross.path)
    (result,) = wheels.verify(target, [entry], project=project, runner=Runner(echo=False))
    assert result.output.startswith(WORKS[package])


def contents(wheel: Path) -> dict[str, object]:
    """What makes two wheels equivalent: every file's bytes; for an ELF file, its architecture, the
    libraries it needs and the symbols it defines (pyaudio's extension differs only in the paths in
    its debug info: the build folder, the sysroot's include dirs or /usr/include); RECORD, which
    hashes those, by its list of files. pyelftools comes with auditwheel."""
    found: dict[str, object] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            if name.endswith(".dist-info/RECORD"):
                found[name] = sorted(line.split(",")[0] for line in data.decode().splitlines())
            elif data[:4] == b"\x7fELF":
                found[name] = _elf_interface(data)
            else:
                found[name] = hashlib.sha256(data).hexdigest()
    return found


def _elf_interface(data: bytes) -> tuple[str, list[str], list[str]]:
    elf = ELFFile(io.BytesIO(data))
    dynamic = elf.get_section_by_name(".dynamic")
    needed = sorted(t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED")
    dynsym = elf.get_section_by_name(".dynsym")
    defined = sorted(s.name for s in dynsym.iter_symbols() if s.name and s["st_shndx"] != "SHN_UNDEF")
    return elf.get_machine_arch(), needed, defined
