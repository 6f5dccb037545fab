"""The 32-bit armv7 target (rpi-zero2w): config, Debian lock, plan, preflight; no subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from edgepack.config import Project, debian_package_for, load_target
from edgepack.debian import read_lock
from edgepack.debian.apt import AptState, check_codenames
from edgepack.errors import ConfigError
from edgepack.modelpipe.export import choose_opset, debian_onnxruntime, runtime_max_opset
from edgepack.modelpipe.quantize import cpu_info
from edgepack.modelpipe.spec import load_spec
from edgepack.pipeline.context import Build
from edgepack.pipeline.docker import run_argv
from edgepack.pipeline.plan import plan
from edgepack.runner import Result
from edgepack.wheels.preflight import preflight, require_wheels
from tests.conftest import FakeRunner

REPO = Path(__file__).resolve().parents[2]
TARGET = "rpi-zero2w"
LOCK = REPO / "targets/locks/debian-trixie-armhf.json"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    for part in ("targets", "wheels", "models"):
        shutil.copytree(REPO / part, tmp_path / part)
    (tmp_path / "runtime").mkdir()
    shutil.copy(REPO / "runtime/requirements.in", tmp_path / "runtime/requirements.in")
    return Project(tmp_path)


def variant(project: Project, name: str, old: str, new: str) -> None:
    text = (project.targets_dir / f"{TARGET}.yaml").read_text()
    assert old in text, old
    (project.targets_dir / f"{name}.yaml").write_text(text.replace(old, new))


def test_target_is_32bit_arm_on_trixie_with_debian_deps(project: Project) -> None:
    t = load_target(project, TARGET)
    assert (t.platform, t.arch, t.wheel_arch, t.binfmt) == ("linux/arm/v7", "armhf", "armv7l", "qemu-arm")
    assert (t.python, t.deps, t.wheels, t.memory_mb, t.threads) == ("3.13", "debian", (), 512, 4)
    assert t.debian.suite == "trixie" and "python3-onnxruntime" in t.debian.packages
    # The emulated CPU is one resources/cpus.yaml describes (the model stage reads its features).
    assert cpu_info(t.qemu_cpu).arch == "ARMv7-A"


def test_rpi4_keeps_wheels_and_no_memory_limit(project: Project) -> None:
    t = load_target(project, "rpi4")
    assert (t.deps, t.memory_mb, t.python) == ("wheels", None, "3.11")


def test_debian_names_of_requirements() -> None:
    names = ("onnxruntime", "NumPy", "ruamel.yaml", "typing_extensions")
    expected = ["python3-onnxruntime", "python3-numpy", "python3-ruamel-yaml", "python3-typing-extensions"]
    assert [debian_package_for(n) for n in names] == expected


def test_deps_typo_suggests(project: Project) -> None:
    variant(project, "bad", "deps: debian", "deps: debain")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: 'deps' must be one of .* Did you mean 'debian'\?"):
        load_target(project, "bad")


def test_debian_deps_refuse_native_wheels(project: Project) -> None:
    variant(project, "bad", "wheels: []", "wheels: [webrtcvad]")
    with pytest.raises(ConfigError) as err:
        load_target(project, "bad")
    line = next(i for i, s in enumerate((project.targets_dir / "bad.yaml").read_text().splitlines(), 1)
                if s.startswith("wheels:"))  # fmt: skip
    assert f"bad.yaml:{line}: deps: debian installs no PyPI wheels" in str(err.value)
    assert "python3-<name>" in err.value.hint


def test_debian_deps_need_every_requirement_as_a_package(project: Project) -> None:
    variant(project, "bad", "python3-soxr]", "python3-sox]")
    with pytest.raises(ConfigError) as err:
        load_target(project, "bad")
    assert "debian.packages lacks python3-soxr (required by runtime/requirements.in)" in str(err.value)
    assert "Did you mean 'python3-sox'?" in err.value.hint


def test_memory_below_a_bootable_board(project: Project) -> None:
    variant(project, "bad", "memory_mb: 512", "memory_mb: 8")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: memory_mb 8 is below"):
        load_target(project, "bad")


def test_lock_is_a_slim_sha256_pinned_armhf_closure() -> None:
    lock = read_lock(LOCK)
    names = {p.name for p in lock.packages}
    assert (lock.suite, lock.arch) == ("trixie", "armhf")
    assert {
        "python3.13-minimal",
        "python3-numpy",
        "python3-onnxruntime",
        "libonnxruntime1.21",
        "python3-soxr",
    } <= names
    # No shell, package manager, perl; none of onnxruntime's Python tools' dependencies.
    assert not names & {
        "bash",
        "dash",
        "coreutils",
        "apt",
        "dpkg",
        "perl-base",
        "python3-sympy",
        "python3-numpy-dev",
    }
    assert all(p.arch in ("armhf", "all") and len(p.sha256) == 64 for p in lock.packages)


def test_model_opset_follows_debians_onnxruntime() -> None:
    version = debian_onnxruntime(LOCK)
    assert version == "1.21.0"
    assert runtime_max_opset(version) == 22  # onnx_opsets.yaml has a 1.21 row: not the last row's guess
    spec = load_spec(REPO / "models/cmdasr.yaml")
    assert choose_opset(spec, "torchscript", runtime=version) == 20


def test_plan_has_no_wheel_step_and_compiles_bytecode_in_the_image(project: Project) -> None:
    shutil.copytree(REPO / "docker", project.root / "docker")
    shutil.copytree(REPO / "assets", project.root / "assets")
    t = load_target(project, TARGET)
    runner = FakeRunner()
    steps = plan(Build(target=t, project=project, runner=runner, model=t.model))
    assert [s.name for s in steps] == [
        "base",
        "model",
        "export",
        "quantize",
        "validate",
        "app",
        "image",
        "smoke",
        "latency",
    ]
    # The target's prune (numpy's tests, onnxruntime's tools...) applies to Debian's modules, in the base.
    assert next(s for s in steps if s.name == "base").inputs["prune"] == " ".join(t.prune)
    image = next(s for s in steps if s.name == "image")
    assert image.inputs["deps"] == "debian"
    # The host's Python (3.11) is not the board's (3.13): the image's own Python compiles.
    assert json.loads(image.inputs["build_args"])["BASE"] == "base-compiled"
    assert next(s for s in steps if s.name == "smoke").inputs["memory_mb"] == "512"
    assert runner.calls == []


def test_smoke_container_gets_the_boards_memory_and_no_swap() -> None:
    argv = run_argv(
        image="i", platform="linux/arm/v7", qemu_cpu="cortex-a7", command=["smoke"], memory_mb=512
    )
    assert argv == ["docker", "run", "--rm", "--network", "none", "--platform", "linux/arm/v7",
                    "--pull=never", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                    "--memory", "512m", "--memory-swap", "512m", "--env", "QEMU_CPU=cortex-a7",
                    "i", "smoke"]  # fmt: skip


def no_armv7_wheel(argv: list[str]) -> Result:
    return Result(argv, 1, "", "ERROR: No matching distribution found for " + argv[-1])


def test_preflight_of_an_armv7_wheels_target_points_to_debian(
    project: Project, fake_runner: FakeRunner
) -> None:
    variant(project, "armv7-wheels", "deps: debian", "deps: wheels")
    fake_runner.on(lambda a: "--dry-run" in a, no_armv7_wheel)
    t = load_target(project, "armv7-wheels")
    rows = {r.requirement: r for r in preflight(t, project=project, runner=fake_runner)}
    assert rows["onnxruntime==1.32.0"].action == "no armv7 wheel on PyPI: deps: debian (python3-onnxruntime)"
    assert all("manylinux_2_41_armv7l" in c and "3.13" in c for c in fake_runner.calls)
    with pytest.raises(ConfigError) as err:
        require_wheels(t, project=project, runner=fake_runner)
    assert str(err.value) == (
        "targets/armv7-wheels.yaml: PyPI has no cp313 armv7l wheel for "
        "numpy==2.4.6, onnxruntime==1.32.0, soxr==1.1.0."
    )
    assert "set 'deps: debian' and list python3-numpy, python3-onnxruntime, python3-soxr" in err.value.hint


def test_preflight_of_a_debian_target_reads_the_lock(project: Project, fake_runner: FakeRunner) -> None:
    rows = preflight(load_target(project, TARGET), project=project, runner=fake_runner)
    assert [(r.requirement, r.wheel) for r in rows] == [
        ("numpy==2.4.6", "python3-numpy 1:2.2.4+ds-1"),
        ("onnxruntime==1.32.0", "python3-onnxruntime 1.21.0+dfsg-1"),
        ("soxr==1.1.0", "python3-soxr 0.5.0.post1-1"),
    ]
    assert fake_runner.calls == []  # no PyPI


def test_a_source_alias_must_serve_the_targets_release(tmp_path: Path) -> None:
    state = AptState(root=tmp_path, arch="armhf")
    state.lists.mkdir()
    release = state.lists / "deb.debian.org_debian_dists_stable_InRelease"
    release.write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: stable\nCodename: trixie\n"
    )
    check_codenames(state, suite="trixie")
    release.write_text(release.read_text().replace("trixie", "forky"))
    with pytest.raises(ConfigError, match="serves 'forky', not the target's 'trixie'"):
        check_codenames(state, suite="trixie")


def test_cpus_table_has_what_qemu_arm_offers_for_the_board() -> None:
    table = yaml.safe_load((REPO / "src/edgepack/resources/cpus.yaml").read_text())
    assert table["cortex-a7"]["dotprod"] is False and table["cortex-a7"]["fp16"] is False


def test_rootfs_links_blas_and_lapack_as_update_alternatives_would(
    tmp_path: Path, fake_runner: FakeRunner
) -> None:
    from edgepack.debian import DebianLock, build_rootfs_tar
    from tests.unit.test_debian import make_deb, members, synthetic_debs

    lock, debs = synthetic_debs(tmp_path / "debs", python="python3.99")
    blas_deb = tmp_path / "debs" / "libblas3.deb"
    blas = make_deb(blas_deb, "libblas3", {"./usr/lib/arm-linux-gnueabihf/blas/libblas.so.3": b"\x7fELF"})
    lock = DebianLock(lock.suite, lock.arch, lock.roots, (), (*lock.packages, blas))
    build_rootfs_tar(lock, [*debs, blas_deb], out=tmp_path / "rootfs.tar", python="3.99", runner=fake_runner)
    # numpy's _multiarray_umath needs libblas.so.3 where the loader looks: the multiarch folder.
    link = members(tmp_path / "rootfs.tar")["usr/lib/arm-linux-gnueabihf/libblas.so.3"]
    assert link.issym() and link.linkname == "blas/libblas.so.3"
