"""Strategy command lines and environments, tag fixing, repair messages, wheelhouse keys: no subprocess."""

from __future__ import annotations

import base64
import hashlib
import struct
import sys
import zipfile
from pathlib import Path

import pytest

from edgepack.config import Project, load_target
from edgepack.errors import CommandError, EdgepackError
from edgepack.wheels import emulated, wheelhouse
from edgepack.wheels.cross import build_env, cross_sysconfig, wheel_argv
from edgepack.wheels.recipes import load_recipe
from edgepack.wheels.repair import (
    RepairError,
    Tags,
    check_architecture,
    fix_tags,
    refusal_reason,
    repair,
    repair_argv,
    target_tags,
    wheel_tags,
)
from edgepack.wheels.strategy import compile_failure
from tests.conftest import FakeRunner, ok

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def target():  # type: ignore[no-untyped-def]
    return load_target(Project(REPO), "rpi4")


@pytest.fixture
def vad():  # type: ignore[no-untyped-def]
    return load_recipe(REPO / "wheels", "webrtcvad")


def elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + struct.pack("<H", machine) + b"\x00" * 40


def make_wheel(folder: Path, tags: str, *, machine: int = 183) -> Path:
    wheel = folder / f"demo-1.0-{tags}.whl"
    files = {
        "_demo.so": elf(machine),
        "demo-1.0.dist-info/WHEEL": f"Wheel-Version: 1.0\nTag: {tags}\n".encode(),
    }
    record = [f"{n},sha256={_b64(d)},{len(d)}" for n, d in files.items()] + ["demo-1.0.dist-info/RECORD,,"]
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("demo-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# -- cross ----------------------------------------------------------------------------------------


def test_cross_env_points_setuptools_at_the_board(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = build_env(target, toolchain=tmp_path / "tc", sysroot=tmp_path / "sysroot", source=tmp_path / "src")
    assert env["_PYTHON_HOST_PLATFORM"] == "linux-aarch64"
    assert env["_PYTHON_SYSCONFIGDATA_NAME"] == "_sysconfigdata__linux_aarch64-linux-gnu"
    assert env["PYTHONPATH"] == str(tmp_path / "tc/sysconfig")
    assert env["CC"] == str(tmp_path / "tc/bin/cc") and env["LDSHARED"] == f"{tmp_path}/tc/bin/cc -shared"
    assert env["AR"] == "aarch64-linux-gnu-ar" and env["PIP_NO_INDEX"] == "1"
    assert env["PKG_CONFIG_SYSROOT_DIR"] == str(tmp_path / "sysroot")


def test_cross_wheel_argv_is_offline_and_without_isolation(tmp_path: Path) -> None:
    argv = wheel_argv(Path("/venv/bin/python"), Path("/src/x.tar.gz"), out_dir=tmp_path)
    assert argv == [sys.executable, "-m", "pip", "--python", "/venv/bin/python", "wheel", "--no-deps",
                    "--no-build-isolation", "--no-cache-dir", "--wheel-dir", str(tmp_path),
                    "/src/x.tar.gz"]  # fmt: skip


def test_the_targets_sysconfigdata_moves_into_the_sysroot(tmp_path: Path) -> None:
    board = {"CC": "aarch64-linux-gnu-gcc", "LDSHARED": "aarch64-linux-gnu-gcc -shared -O2", "X": 1,
             "INCLUDEPY": "/usr/include/python3.11", "EXT_SUFFIX": ".cpython-311-aarch64.so"}  # fmt: skip
    text = f"# system\nbuild_time_vars = {board!r}\n"
    ns: dict[str, object] = {}
    exec(cross_sysconfig(text, sysroot=Path("/sr"), bindir=Path("/tc/bin")), ns)
    values = ns["build_time_vars"]
    assert values == {**board, "CC": "/tc/bin/cc", "LDSHARED": "/tc/bin/cc -shared -O2",
                      "INCLUDEPY": "/sr/usr/include/python3.11"}  # fmt: skip


def test_a_compile_error_shows_the_first_error_its_command_and_the_package(vad) -> None:  # type: ignore[no-untyped-def]
    output = (
        "running build_ext\nbuilding '_x' extension\n"
        "/tc/bin/cc -fPIC -Icbits -I/sr/usr/include/python3.11 -c cbits/a.c -o build/a.o\n"
        "cbits/a.c:3:10: fatal error: portaudio.h: No such file or directory\n"
        "cbits/a.c:9:1: error: later error\nerror: command '/tc/bin/cc' failed with exit code 1\n"
    )
    err = compile_failure(vad, "cross", CommandError("x", argv=["pip"], returncode=1, output=output))
    text = err.render()
    assert "the compiler stopped: cbits/a.c:3:10: fatal error: portaudio.h: No such file or directory" in text
    assert "compiler command: /tc/bin/cc -fPIC -Icbits" in text and "later error" not in text
    assert "portaudio19-dev" in err.hint and "wheels/webrtcvad.yaml" in err.hint


# -- emulated -------------------------------------------------------------------------------------


def test_cibuildwheel_gets_the_local_image_no_network_and_no_repair(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = emulated.cibuildwheel_env(target, image="edgepack/wheel-builder:abc", deps=tmp_path)
    assert env["CIBW_BUILD"] == "cp311-manylinux_aarch64" and env["CIBW_ARCHS"] == "aarch64"
    assert env["CIBW_MANYLINUX_AARCH64_IMAGE"] == "edgepack/wheel-builder:abc"
    volume = f"--volume={tmp_path}:/edgepack-deps:ro"
    assert (
        env["CIBW_CONTAINER_ENGINE"]
        == f"docker ; create_args: --network=none {volume}; disable_host_mount: true"
    )
    assert env["CIBW_ENVIRONMENT"] == "PIP_NO_INDEX=1 PIP_FIND_LINKS=/edgepack-deps"
    assert env["CIBW_REPAIR_WHEEL_COMMAND"] == ""
    assert env["CIBW_BUILD_FRONTEND"] == "pip; args: --no-build-isolation"
    pinned = emulated.cibuildwheel_env(
        target, image="i", deps=tmp_path, build_requires=["setuptools==84.2.1"]
    )
    assert (
        pinned["CIBW_BEFORE_BUILD"] == "pip install --no-index --find-links /edgepack-deps setuptools==84.2.1"
    )
    argv = emulated.cibuildwheel_argv(Path("/s/src"), out_dir=tmp_path)
    assert argv[1:] == ["-m", "cibuildwheel", "--output-dir", str(tmp_path), "/s/src"]


def test_cibuildwheel_parses_the_engine_setting(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cibuildwheel.oci_container import OCIContainerEngineConfig

    env = emulated.cibuildwheel_env(target, image="i", deps=tmp_path)
    engine = OCIContainerEngineConfig.from_config_string(env["CIBW_CONTAINER_ENGINE"])
    assert engine.name == "docker" and engine.disable_host_mount
    assert engine.create_args == ("--network=none", f"--volume={tmp_path}:/edgepack-deps:ro")


# -- tags, architecture, repair -------------------------------------------------------------------


def test_fix_tags_rewrites_name_wheel_file_and_record(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wheel = make_wheel(tmp_path, "cp313-cp313-linux_x86_64")
    fixed = fix_tags(wheel, target_tags(target))
    assert fixed.name == "demo-1.0-cp311-cp311-linux_aarch64.whl" and not wheel.exists()
    assert wheel_tags(fixed) == Tags("cp311", "cp311", "linux_aarch64")
    with zipfile.ZipFile(fixed) as zf:
        text = zf.read("demo-1.0.dist-info/WHEEL")
        assert text.decode().splitlines()[-1] == "Tag: cp311-cp311-linux_aarch64"
        record = zf.read("demo-1.0.dist-info/RECORD").decode()
    assert f"demo-1.0.dist-info/WHEEL,sha256={_b64(text)},{len(text)}" in record
    assert fix_tags(fixed, target_tags(target)) == fixed  # already right: untouched


def test_x86_code_in_a_wheel_for_the_board_is_refused(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    check_architecture(make_wheel(tmp_path, "cp311-cp311-linux_aarch64"), target)
    (tmp_path / "x86").mkdir()
    wrong = make_wheel(tmp_path / "x86", "cp311-cp311-linux_aarch64", machine=62)
    with pytest.raises(EdgepackError, match=r"_demo\.so is x86_64"):
        check_architecture(wrong, target)


def test_repair_reads_the_arch_from_the_wheel_and_searches_the_sysroot(tmp_path: Path) -> None:
    argv = repair_argv(Path("w.whl"), out_dir=tmp_path, ldpaths=[Path("/sr/usr/lib/aarch64-linux-gnu")])
    assert argv[1:] == ["-m", "auditwheel", "repair", "--plat", "auto", "--ldpaths",
                        "/sr/usr/lib/aarch64-linux-gnu", "--wheel-dir", str(tmp_path), "w.whl"]  # fmt: skip


def test_an_auditwheel_refusal_is_quoted_verbatim(target, tmp_path: Path, fake_runner: FakeRunner) -> None:  # type: ignore[no-untyped-def]
    reason = (
        'ValueError: Cannot repair wheel, because required library "libportaudio.so.2" could not be located'
    )
    fake_runner.on(
        lambda a: "auditwheel" in a,
        ok(stderr=f"Traceback (most recent call last):\n  ...\n{reason}\n", code=1),
    )
    with pytest.raises(RepairError) as err:
        repair(tmp_path / "w.whl", target=target, out_dir=tmp_path, ldpaths=[], runner=fake_runner)
    assert 'because required library "libportaudio.so.2" could not be located' in err.value.render()
    assert "Traceback" not in err.value.render()
    usage = (
        'usage: auditwheel repair\nauditwheel: error: cannot repair "x" to "manylinux_2_17" ABI '
        "because of the presence of too-recent versioned symbols."
    )
    assert refusal_reason(usage).startswith('cannot repair "x" to "manylinux_2_17" ABI because')


# -- wheelhouse -----------------------------------------------------------------------------------


def test_wheelhouse_key_follows_recipe_toolchain_and_strategy(target, vad) -> None:  # type: ignore[no-untyped-def]
    key = wheelhouse.entry_key(vad, strategy="cross", toolchain="gcc 12", target=target)
    assert key == wheelhouse.entry_key(vad, strategy="cross", toolchain="gcc 12", target=target)
    assert key != wheelhouse.entry_key(vad, strategy="cross", toolchain="gcc 13", target=target)
    assert key != wheelhouse.entry_key(vad, strategy="emulated", toolchain="gcc 12", target=target)
    import dataclasses

    assert key != wheelhouse.entry_key(dataclasses.replace(vad, version="2.0.9"), strategy="cross",
                                       toolchain="gcc 12", target=target)  # fmt: skip


def test_the_index_pins_each_wheel_by_hash(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wheel = make_wheel(tmp_path, "cp311-cp311-manylinux_2_34_aarch64")
    entry = wheelhouse.Entry("demo", "1.0", "cross", "k", str(wheel), "ab" * 32, 1, 2, (), 1.0, "")
    index = wheelhouse.write_index([entry], project=Project(tmp_path), target=target)
    assert index == tmp_path / "build/wheelhouse/rpi4/index"
    assert (index / wheel.name).samefile(wheel)
    assert f"demo==1.0 \\\n    --hash=sha256:{'ab' * 32}" in (index / "requirements.txt").read_text()


class _Toolchain:
    """What reuse() asks of a strategy: its name and toolchain; it never compiles."""

    name = "cross"

    def toolchain_id(self) -> str:
        return "gcc 12"


def _machine_entry(vad, target, tmp_path: Path) -> wheelhouse.Entry:  # type: ignore[no-untyped-def]
    """An entry as another clone's build left it in the machine's cache of built wheels."""
    key = wheelhouse.entry_key(vad, strategy="cross", toolchain="gcc 12", target=target)
    shared = wheelhouse.machine_dir(vad, strategy="cross", key=key)
    assert shared is not None and shared.is_relative_to(tmp_path)
    shared.mkdir(parents=True)
    wheel = make_wheel(shared, "cp311-cp311-manylinux_2_34_aarch64")
    entry = wheelhouse.Entry("webrtcvad", vad.version, "cross", key, str(wheel),
                             hashlib.sha256(wheel.read_bytes()).hexdigest(), 1, 2, (), 1.0, "")  # fmt: skip
    import dataclasses
    import json

    (shared / "entry.json").write_text(json.dumps({k: v for k, v in dataclasses.asdict(entry).items()
                                                   if k != "cached"}))  # fmt: skip
    return entry


def test_a_fresh_clone_takes_a_built_wheel_from_the_machines_cache(  # type: ignore[no-untyped-def]
    target, vad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPACK_BUILT", str(tmp_path / "built"))
    made = _machine_entry(vad, target, tmp_path)
    clone = Project(tmp_path / "clone")
    found = wheelhouse.reuse(vad, _Toolchain(), target=target, project=clone)  # type: ignore[arg-type]
    assert found is not None and found.cached and found.sha256 == made.sha256
    assert found.path.is_relative_to(clone.build_dir / "wheelhouse/rpi4/webrtcvad")
    assert found.path.read_bytes() == made.path.read_bytes()
    monkeypatch.setenv("EDGEPACK_BUILT", "off")  # the reproducibility tests' setting: nothing shared
    assert wheelhouse.reuse(vad, _Toolchain(), target=target, project=Project(tmp_path / "c2")) is None  # type: ignore[arg-type]


def test_a_corrupt_wheel_in_the_machines_cache_is_not_taken(  # type: ignore[no-untyped-def]
    target, vad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPACK_BUILT", str(tmp_path / "built"))
    made = _machine_entry(vad, target, tmp_path)
    made.path.write_bytes(made.path.read_bytes() + b"x")
    assert wheelhouse.reuse(vad, _Toolchain(), target=target, project=Project(tmp_path / "c")) is None  # type: ignore[arg-type]


def test_a_local_source_folder_keys_the_wheel_by_its_contents(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "wheels/mypkg").mkdir(parents=True)
    (tmp_path / "wheels/mypkg/setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "wheels/defaults.yaml").write_text((REPO / "wheels/defaults.yaml").read_text())
    (tmp_path / "wheels/mine.yaml").write_text(
        "description: d\nversion: '1.0'\ntest: import mine\nsource: mypkg\n"
    )
    recipe = load_recipe(tmp_path / "wheels", "mine")
    before = wheelhouse.entry_key(recipe, strategy="cross", toolchain="gcc 12", target=target)
    (tmp_path / "wheels/mypkg/fast.c").write_text("int f(void) { return 1; }\n")
    assert wheelhouse.entry_key(recipe, strategy="cross", toolchain="gcc 12", target=target) != before
