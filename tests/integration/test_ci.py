"""The generated workflow passes actionlint (with shellcheck); buildx builders read and added for real.

No remote BuildKit node can be booted on this host (the docker-container
driver needs the moby/buildkit image, and no registry is reachable), so the
nodes added here are never booted: buildx itself records them, lists their
declared platforms, and refuses bad endpoints, all for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack.ci import workflow
from edgepack.config import Project, load_target
from edgepack.errors import CommandError
from edgepack.host import builders
from edgepack.pipeline.context import Build
from edgepack.pipeline.plan import plan
from edgepack.pipeline.steps import Step
from edgepack.runner import Runner
from tests.unit.test_ci_matrix import BOARDS, make_project

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).parent / "invoke"


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        why = f"{name} not found (pip install -e '.[dev]'; shellcheck: edgepack doctor --fix)"
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


# -- the workflow's own steps, run here ----------------------------------------------------------


def _jobs() -> dict[str, Any]:
    return yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"]


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("name", "").startswith(name)]
    return step


def run_step(step: dict[str, Any], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `run:` step as GitHub's runner runs it (bash -eo pipefail), this venv first on PATH.

    ``env`` holds what the runner would give: the job's env and the value of
    each expression in the step's env. Lines that pip-install into the
    runner's Python are left out: this venv already has what they install.
    """
    script = "\n".join(
        line for line in step["run"].splitlines() if not line.startswith("python -m pip install")
    )
    step_env = {name: env.get(name, value) for name, value in step.get("env", {}).items()}
    unknown = [f"{name}: {value}" for name, value in step_env.items() if "${{" in value]
    assert not unknown, f"the test gives no value for {unknown}"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    full = {**os.environ, "PATH": path, **env, **step_env}
    bash = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]
    return subprocess.run(bash, cwd=cwd, env=full, capture_output=True, text=True, check=False, timeout=300)


def test_the_matrix_job_runs_here(tmp_path: Path) -> None:
    """Its steps (stale-workflow check, actionlint, the matrix) pass, giving every key the build jobs read."""
    _tool("shellcheck")
    output = tmp_path / "github-output"
    output.touch()
    env = {"GITHUB_OUTPUT": str(output), "ONLY": "all"}  # ONLY: ${{ inputs.target || 'all' }} on a push
    for step in _jobs()["matrix"]["steps"]:
        if "run" in step:
            result = run_step(step, cwd=REPO, env=env)
            assert result.returncode == 0, f"{step.get('name', step['run'])}:\n{result.stdout}{result.stderr}"
    (line,) = output.read_text().splitlines()
    name, _, value = line.partition("=")
    entries = json.loads(value)["include"]
    assert name == "matrix" and [e["target"] for e in entries] == Project(REPO).target_names()
    # Expressions: ${{ ... }} anywhere, and `if:` conditions (which may go without the braces).
    text = (REPO / workflow.WORKFLOW).read_text()
    expressions = re.findall(r"\$\{\{(.*?)\}\}", text) + re.findall(r"^\s*if: (.*)$", text, re.M)
    read = {key for e in expressions for key in re.findall(r"(?<![\w.])matrix\.([a-z_]+)", e)}
    assert read and all(read <= set(e) for e in entries)


@pytest.fixture
def restored(tmp_path: Path) -> tuple[Build, list[Step]]:
    """A project whose step cache holds every step of a plan, as a restored cache entry may."""
    project = make_project(tmp_path, extra={"plain": "wheels: []"})
    for part in ("assets/audio", "docker"):
        shutil.copytree(REPO / part, tmp_path / part)
    b = Build(
        target=load_target(project, "plain"), project=project, runner=Runner(echo=False), model="silero-vad"
    )
    steps = plan(b)
    for step in steps:
        b.cache.store(step, {"out": step.name})
        (b.cache_dir(step.name, step.key) / "out.tar").parent.mkdir(parents=True, exist_ok=True)
        (b.cache_dir(step.name, step.key) / "out.tar").write_bytes(b"x")
    b.out_dir.mkdir(parents=True)
    (b.out_dir / "report.json").write_text("{}")
    return b, steps


@pytest.mark.parametrize(("name", "report_kept"), [("No restored image or smoke stamp", False),
                                                   ("Before the save", True)])  # fmt: skip
def test_the_step_cache_steps_delete_the_image_and_smoke_stamps_and_tars(
    restored: tuple[Build, list[Step]], name: str, report_kept: bool
) -> None:
    b, steps = restored
    result = run_step(_step(_jobs()["build"], name), cwd=b.project.root, env={"TARGET": "plain"})
    assert result.returncode == 0, result.stderr
    fresh = {"image", "smoke"}
    assert {s.name for s in steps if b.cache.stamp(s).is_file()} == {s.name for s in steps} - fresh
    assert {s.name for s in steps if b.cache_dir(s.name, s.key).is_dir()} == {s.name for s in steps} - {
        "image"
    }
    assert (b.out_dir / "report.json").is_file() == report_kept


def test_the_debian_keys_step_installs_the_keys_of_the_pinned_deb_only(tmp_path: Path) -> None:
    """Served from the fallback (the pool moved on); a digest that differs installs nothing."""
    _tool("dpkg-deb")
    _tool("curl")
    package = tmp_path / "pkg"
    (package / "DEBIAN").mkdir(parents=True)
    control = {"Package": "debian-archive-keyring", "Version": "1", "Architecture": "all",
               "Maintainer": "t <t@t>", "Description": "t"}  # fmt: skip
    (package / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
    keys = package / "etc" / "apt" / "trusted.gpg.d"
    keys.mkdir(parents=True)
    (keys / "debian-archive-trixie-automatic.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    deb = tmp_path / "keyring.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(package), str(deb)], check=True,
                   capture_output=True)  # fmt: skip
    fake_sudo = tmp_path / "bin" / "sudo"  # the runner's sudo; here the test's own user does the install
    fake_sudo.parent.mkdir()
    fake_sudo.write_text('#!/bin/sh\nexec "$@"\n')
    fake_sudo.chmod(0o755)
    step = _step(_jobs()["build"], "Debian's archive keys")

    def run(digest: str, trusted: Path) -> subprocess.CompletedProcess[str]:
        trusted.mkdir()
        runner_temp = trusted.with_name(f"{trusted.name}-runner-temp")
        runner_temp.mkdir()
        env = {"KEYRING_URL": (tmp_path / "gone.deb").as_uri(), "KEYRING_SNAPSHOT": deb.as_uri(),
               "KEYRING_SHA256": digest, "APT_TRUSTED": str(trusted), "RUNNER_TEMP": str(runner_temp),
               "PATH": f"{fake_sudo.parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
        return run_step(step, cwd=tmp_path, env=env)

    good = run(hashlib.sha256(deb.read_bytes()).hexdigest(), tmp_path / "trusted")
    assert good.returncode == 0, good.stderr
    assert [p.name for p in (tmp_path / "trusted").iterdir()] == ["debian-archive-trixie-automatic.asc"]
    bad = run("0" * 64, tmp_path / "trusted-bad")
    assert bad.returncode != 0 and "FAILED" in bad.stdout + bad.stderr
    assert list((tmp_path / "trusted-bad").iterdir()) == []
