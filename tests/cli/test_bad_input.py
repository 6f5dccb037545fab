"""Bad input, as a user meets it: a short message, a non-zero exit code, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).parent / "edgepack"  # the installed command (usage errors exit 2)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for part in ("targets", "docker", "assets", "models", "wheels"):
        shutil.copytree(REPO / part, tmp_path / part)
    shutil.copy(REPO / "tasks.py", tmp_path)
    (tmp_path / "runtime").mkdir()  # a deps: debian target checks its requirements at load
    shutil.copy(REPO / "runtime" / "requirements.in", tmp_path / "runtime")
    return tmp_path


def invoke(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # 300 s: a build that fails at its model step first runs base and deps (native wheels included).
    return subprocess.run([str(INVOKE), *args], cwd=project, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})}, timeout=300)  # fmt: skip


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_unknown_target_lists_the_known_ones(project: Path) -> None:
    r = invoke(project, "build", "--target", "rpi3", "--dry")
    assert_clean_error(r, 2, "unknown target 'rpi3'",
                       "Known targets: jetson-orin-nano, rpi-zero2w, rpi4, rpi5, x86-box")  # fmt: skip


def test_malformed_yaml_names_file_and_line(project: Path) -> None:
    (project / "targets/bad.yaml").write_text("description: x\nplatform: [linux/arm64\n")
    r = invoke(project, "build", "--target", "bad", "--dry")
    assert_clean_error(r, 2, "targets/bad.yaml:", "malformed YAML")


def test_unknown_key_suggests(project: Path) -> None:
    text = (project / "targets/rpi4.yaml").read_text().replace("qemu_cpu:", "qemu_cp:")
    (project / "targets/bad.yaml").write_text(text)
    r = invoke(project, "build", "--target", "bad", "--dry")
    assert_clean_error(r, 2, "unknown key 'qemu_cp'. Did you mean 'qemu_cpu'?")


def test_wrong_type(project: Path) -> None:
    text = (project / "targets/rpi4.yaml").read_text().replace("threads: 4", "threads: [4]")
    (project / "targets/bad.yaml").write_text(text)
    r = invoke(project, "build", "--target", "bad", "--dry")
    assert_clean_error(r, 2, "targets/bad.yaml:", "'threads' must be an integer, got a list")


def test_missing_model_file(project: Path) -> None:
    r = invoke(project, "build", "--target", "rpi4", "--model", "nope.onnx", "--dry")
    assert_clean_error(r, 2, "model 'nope.onnx' is neither a bundled model nor an existing file")


def test_model_that_is_not_onnx(project: Path) -> None:
    (project / "model.onnx").write_text("this is not a model")
    r = invoke(project, "build", "--target", "rpi4", "--model", "model.onnx")
    assert_clean_error(r, 2, "model.onnx: not an ONNX model")


def test_docker_engine_not_running(project: Path) -> None:
    r = invoke(project, "build", "--target", "rpi4", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_clean_error(r, 3, "docker")
    assert not (project / "build" / "rpi4" / "image.tar").exists()


def armv7_wheels_target(project: Path) -> None:
    """The 32-bit board asking for PyPI wheels: PyPI has no armv7 onnxruntime (nor numpy 2.x, soxr)."""
    (project / "runtime").mkdir(exist_ok=True)
    shutil.copy(REPO / "runtime/requirements.in", project / "runtime/requirements.in")
    text = (project / "targets/rpi-zero2w.yaml").read_text().replace("deps: debian", "deps: wheels")
    (project / "targets/armv7-wheels.yaml").write_text(text)


@pytest.mark.parametrize("task", ["build", "lock"])
def test_armv7_requirements_without_wheels_point_to_debian(project: Path, task: str) -> None:
    """Asks PyPI (reachable here, as pip is): a dry-run resolution per requirement, nothing downloaded."""
    armv7_wheels_target(project)
    r = invoke(project, task, "--target", "armv7-wheels")
    assert_clean_error(r, 2, "targets/armv7-wheels.yaml: PyPI has no cp313 armv7l wheel for",
                       "onnxruntime==", "set 'deps: debian' and list", "python3-onnxruntime")  # fmt: skip
    assert not (project / "build/armv7-wheels").exists()
    assert not list((project / "targets/locks").glob("requirements-py313-*"))


def test_sdcard_image_of_a_target_without_sdcard_section(project: Path) -> None:
    text = (project / "targets/rpi4.yaml").read_text().split("\nsdcard:")[0]
    (project / "targets/plain.yaml").write_text(text)
    r = invoke(project, "flash.image", "--target", "plain", "--dry")
    assert_clean_error(r, 2, "targets/plain.yaml", "missing key 'sdcard'")


def test_flash_write_refuses_what_is_not_a_block_device(project: Path) -> None:
    (project / "card.img").write_bytes(bytes(4096))
    (project / "not-a-disk").write_bytes(bytes(8192))
    r = invoke(project, "flash.write", "--image", "card.img", "--device", "not-a-disk", "--yes")
    assert_clean_error(r, 6, "not-a-disk refused: it is not a block device")
    assert (project / "not-a-disk").read_bytes() == bytes(8192)


def test_flash_write_names_a_missing_image_or_device(project: Path) -> None:
    r = invoke(project, "flash.write", "--image", "nope.img", "--device", "/dev/null", "--yes")
    assert_clean_error(r, 2, "the image nope.img does not exist", "edgepack flash.image")
    (project / "card.img").write_bytes(bytes(4096))
    r = invoke(project, "flash.write", "--image", "card.img", "--device", "/dev/edgepack-nothing", "--yes")
    assert_clean_error(r, 2, "/dev/edgepack-nothing does not exist")
