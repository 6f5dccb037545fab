"""The generated workflow passes actionlint (with shellcheck); buildx builders read and added for real.

No remote BuildKit node can be booted on this host (the docker-container
driver needs the moby/buildkit image, and no registry is reachable), so the
nodes added here are never booted: buildx itself records them, lists their
declared platforms, and refuses bad endpoints, all for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgepack import builders
from edgepack.ci import workflow
from edgepack.config import Project, load_target
from edgepack.errors import CommandError
from edgepack.runner import Runner
from tests.unit.test_ci_matrix import BOARDS, make_project

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).parent / "invoke"


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        why = f"{name} not found (pip install -e '.[dev]'; shellcheck: invoke doctor --fix)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return found


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    _tool("shellcheck")  # without it actionlint skips the run: scripts silently
    return subprocess.run([_tool("actionlint"), "-no-color", str(path)], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip


@pytest.mark.parametrize("rel", [workflow.WORKFLOW, workflow.LOCKS_WORKFLOW])
def test_committed_workflow_passes_actionlint(rel: Path) -> None:
    result = actionlint(REPO / rel)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_for_other_targets_passes_actionlint(tmp_path: Path) -> None:
    overrides = "targets:\n  - name: rpi5\n    runner: ubuntu-24.04-arm\n    model: models/silero-vad.yaml\n"
    project = make_project(tmp_path, extra=BOARDS, overrides=overrides)
    workflow.write(project)
    for rel in (workflow.WORKFLOW, workflow.LOCKS_WORKFLOW):
        result = actionlint(tmp_path / rel)
        assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_really_checks_expressions_and_scripts(tmp_path: Path) -> None:
    """The lint is not a formality: a wrong job name and an unquoted variable are both caught."""
    text = (REPO / workflow.WORKFLOW).read_text()
    broken = text.replace("needs.matrix.outputs.matrix", "needs.matrx.outputs.matrix", 1).replace(
        'echo "$matrix"', "echo $matrix"
    )
    path = tmp_path / ".github" / "workflows" / "build.yml"
    path.parent.mkdir(parents=True)
    path.write_text(broken)
    out = actionlint(path).stdout
    assert "matrx" in out and "SC2086" in out, out


def test_the_real_default_builder_and_the_choice_per_target() -> None:
    runner = Runner(echo=False)
    default = builders.inspect("default", runner=runner)
    assert default is not None and default.driver == "docker"
    (node,) = default.nodes
    assert node.status == "running" and node.native == ("linux/amd64",)
    assert "linux/arm64" in node.platforms  # QEMU registered by doctor
    rpi4 = load_target(Project(REPO), "rpi4")
    choice = builders.choose_for(rpi4, runner=runner)
    if builders.inspect(builders.BUILDER, runner=runner) is None:
        assert (choice.builder, choice.native) == ("default", False)


@pytest.fixture
def private_buildx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """buildx keeps builders under $BUILDX_CONFIG: one of our own leaves the host's untouched."""
    config = tmp_path / "buildx"
    config.mkdir()
    monkeypatch.setenv("BUILDX_CONFIG", str(config))
    return config


def test_an_added_native_node_is_chosen_before_qemu(private_buildx: Path) -> None:
    runner = Runner(echo=False)
    rpi4 = load_target(Project(REPO), "rpi4")
    assert builders.choose_for(rpi4, runner=runner).native is False
    added = builders.add("n1", endpoint="unix:///var/run/docker.sock", platforms=["linux/arm64"],
                         runner=runner, bootstrap=False)  # fmt: skip
    assert (added.name, added.driver) == ("edgepack", "docker-container")
    assert [(n.name, n.status, n.declared) for n in added.nodes] == [("n1", "inactive", ("linux/arm64",))]
    choice = builders.choose_for(rpi4, runner=runner)
    assert choice == builders.Choice("edgepack", "n1", "linux/arm64", native=True)


def test_bad_endpoints_are_refused_by_buildx(private_buildx: Path) -> None:
    runner = Runner(echo=False)
    builders.add("n1", endpoint="unix:///var/run/docker.sock", platforms=["linux/arm64"], runner=runner,
                 bootstrap=False)  # fmt: skip
    with pytest.raises(CommandError) as dup:
        builders.add("n2", endpoint="unix:///var/run/docker.sock", platforms=["linux/arm64"], runner=runner,
                     bootstrap=False)  # fmt: skip
    assert "duplicate endpoint" in dup.value.output
    with pytest.raises(CommandError) as unreachable:  # nothing listens on port 1: ssh fails at once
        builders.add("pi", endpoint="ssh://builder@127.0.0.1:1", platforms=["linux/arm64"], runner=runner,
                     bootstrap=False)  # fmt: skip
    assert "adding node pi (ssh://builder@127.0.0.1:1)" in unreachable.value.message
    assert "Connection refused" in unreachable.value.output


def test_builders_ls_task_shows_nodes_and_choices(private_buildx: Path) -> None:
    builders.add("n1", endpoint="unix:///var/run/docker.sock", platforms=["linux/arm64"],
                 runner=Runner(echo=False), bootstrap=False)  # fmt: skip
    result = subprocess.run([str(INVOKE), "builders.ls"], cwd=REPO, capture_output=True, text=True,
                            check=False, timeout=120, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rpi4  edgepack/n1 (linux/arm64 native)" in result.stdout
    assert "docker-container" in result.stdout and "inactive" in result.stdout
