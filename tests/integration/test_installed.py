"""edgepack as a user installs it: the wheel in a fresh venv outside the repository, a new project.

`pip install edgepack[model]` (from the wheel this tree builds), then in an empty folder elsewhere:
--help and --version, -h on a task (help, nothing run), a usage error (exit 2), `edgepack init`
with an ONNX model, `--dry-run`, and one real build of the initialised project: an image built
with buildx and smoke-tested under QEMU with the board's CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], *, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel built from this tree installed into it: its bin/ folder."""
    work = tmp_path_factory.mktemp("installed")
    wheel_dir = work / "dist"
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheel_dir),
            str(REPO),
        ],
        cwd=work,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheel_dir.glob("edgepack-*.whl")
    venv = work / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)], cwd=work).returncode == 0
    done = run([str(venv / "bin/pip"), "install", "--quiet", f"{wheel}[model]"], cwd=work, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small third-party-like model: an MLP exported to ONNX with a dynamic batch axis."""
    import torch

    path = tmp_path_factory.mktemp("model") / "tiny-mlp.onnx"
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.randn(2, 16),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=17,
        )
    return path


def test_the_installed_command_helps_and_refuses_without_running_anything(
    installed: Path, tmp_path: Path
) -> None:
    edgepack = str(installed / "edgepack")
    assert run([edgepack, "--version"], cwd=tmp_path).stdout.startswith("edgepack ")
    listing = run([edgepack, "--list"], cwd=tmp_path)
    assert listing.returncode == 0 and "init" in listing.stdout and "build" in listing.stdout
    helped = run([edgepack, "build", "-h"], cwd=tmp_path)
    assert helped.returncode == 0 and "--target" in helped.stdout and "(default: 2)" in helped.stdout
    assert not (tmp_path / "build").exists()
    typo = run([edgepack, "biuld"], cwd=tmp_path)
    assert typo.returncode == 2 and "Did you mean 'build'?" in typo.stderr
    missing = run([edgepack, "build"], cwd=tmp_path)
    assert missing.returncode == 2 and "--target is required" in missing.stderr and "rpi4" in missing.stderr
    assert "Traceback" not in typo.stderr + missing.stderr


def test_a_new_project_outside_the_repository_builds_a_smoke_tested_image(
    installed: Path, model: Path, tmp_path: Path
) -> None:
    edgepack = str(installed / "edgepack")
    project = tmp_path / "my-project"
    argv = [edgepack, "init", "--folder", str(project), "--model", str(model), "--name", "tiny"]
    init = run(argv, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert (project / "targets/tiny.yaml").read_text().startswith("# A target")
    assert "extends: rpi4" in (project / "targets/tiny.yaml").read_text()
    assert (project / ".github/workflows/build.yml").is_file()
    sub = project / "models"  # found from a folder below the project's root
    dry = run([edgepack, "build", "--target", "tiny", "--dry-run"], cwd=sub)
    assert dry.returncode == 0, dry.stderr
    assert "build plan" in dry.stdout and not (project / "build/tiny").exists()
    built = run([edgepack, "build", "--target", "tiny"], cwd=project, timeout=1800)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "smoke   passed" in built.stdout
    out = project / "build/tiny"
    assert (out / "image.tar").is_file() and (out / "model/model.onnx").is_file()
    assert (out / "smoke/spec.json").is_file() and os.access(out / "run.sh", os.X_OK)
    assert not (REPO / "build/tiny").exists()  # nothing written into edgepack's own tree
