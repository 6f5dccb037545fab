"""ci.* tasks and build's --builder as a user meets them: clean output, clean errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.test_bad_input import REPO, assert_clean_error, invoke
from tests.unit.test_ci_matrix import TARGETS_LINE


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for part in ("targets", "docker", "assets", "models", "wheels", ".github"):
        shutil.copytree(REPO / part, tmp_path / part)
    shutil.copy(REPO / "tasks.py", tmp_path)
    for path in (tmp_path / "targets").glob("*.yaml"):  # rpi4 the only board
        if path.stem not in ("defaults", "rpi4"):
            path.unlink()
    return tmp_path


def test_matrix_is_one_json_line(project: Path) -> None:
    r = invoke(project, "ci.matrix")
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    assert [e["target"] for e in json.loads(line)["include"]] == ["rpi4"]


def test_malformed_override_names_file_line_and_suggests(project: Path) -> None:
    path = project / ".github" / "matrix.yaml"
    path.write_text(
        path.read_text().replace("targets: []", "targets:\n  - name: rpi4\n    runnr: ubuntu-24.04-arm")
    )
    r = invoke(project, "ci.matrix")
    assert_clean_error(r, 2, f".github/matrix.yaml:{TARGETS_LINE + 2}: unknown key 'targets.0.runnr'.",
                       "Did you mean 'targets.0.runner'?")  # fmt: skip
    assert r.stdout == ""


def test_stale_workflow_fails_check_until_regenerated(project: Path) -> None:
    (project / "targets" / "rpi5.yaml").write_text(
        (project / "targets" / "rpi4.yaml").read_text().replace("edgepack/rpi4", "edgepack/rpi5")
    )
    assert_clean_error(invoke(project, "ci.workflow", "--check"), 2, "build.yml is out of date",
                       "Run: edgepack ci.workflow")  # fmt: skip
    assert invoke(project, "ci.workflow").returncode == 0
    assert invoke(project, "ci.workflow", "--check").returncode == 0
    assert "          - rpi5\n" in (project / ".github" / "workflows" / "build.yml").read_text()


def test_build_with_an_unknown_builder(project: Path) -> None:
    r = invoke(project, "build", "--target", "rpi4", "--builder", "nope")
    assert_clean_error(r, 2, "--builder nope: buildx has no builder by that name.", "edgepack builders.ls")


def test_push_refuses_the_docker_driver(project: Path) -> None:
    r = invoke(
        project,
        "ci.push",
        "--target",
        "rpi4",
        "--image",
        "ghcr.io/o/edgepack-rpi4:v1",
        "--builder",
        "default",
    )
    assert_clean_error(r, 3, "needs a docker-container builder; 'default' is the docker driver")
