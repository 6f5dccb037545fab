"""The committed workflow is what targets/ generate (golden), for rpi4 alone and for any other set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack import build as build_module
from edgepack.ci import workflow
from edgepack.config import Project, load_target
from edgepack.docker import BuildxOptions
from edgepack.errors import ConfigError
from edgepack.runner import Runner
from tests.unit.test_ci_matrix import BOARDS, make_project

REPO = Path(__file__).resolve().parents[2]


def test_committed_workflow_is_in_sync_with_targets() -> None:
    """Fails when a target, .github/matrix.yaml or a pin changed: run `invoke ci.workflow` and commit."""
    for rel, text in workflow.generated(Project(REPO)).items():
        assert (REPO / rel).read_text() == text, rel


def test_matrix_file_validates_against_its_schema() -> None:
    import jsonschema

    schema = json.loads((REPO / workflow.SCHEMA).read_text())
    data = yaml.safe_load((REPO / ".github" / "matrix.yaml").read_text())
    jsonschema.validate(data, schema)
    data["targets"] = [{"name": "rpi4", "runer": "x"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


@pytest.mark.parametrize("rel", [workflow.WORKFLOW, workflow.LOCKS_WORKFLOW])
def test_every_action_is_pinned_by_sha_with_its_version(rel: Path) -> None:
    text = (REPO / rel).read_text()
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]
    assert uses
    for ref in uses:
        _, _, rest = ref.partition("@")
        sha, _, version = rest.partition(" # ")
        assert len(sha) == 40 and version.startswith("v"), ref


def test_new_targets_join_the_dispatch_choice_and_the_table(tmp_path: Path) -> None:
    project = make_project(tmp_path, extra=BOARDS)
    text = workflow.render(project)
    doc = yaml.safe_load(text)
    options = doc[True]["workflow_dispatch"]["inputs"]["target"]["options"]  # YAML 1.1 reads `on` as True
    assert options == ["all", "armv7-board", "rpi4", "rpi5", "x86-box"]
    assert "#   x86-box      linux/amd64   ubuntu-24.04      native" in text
    assert "#   armv7-board  linux/arm/v7  ubuntu-24.04      QEMU (qemu-arm)" in text
    assert set(doc["jobs"]) == {"matrix", "build", "release"}


def test_jobs_hold_least_privilege() -> None:
    doc = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())
    assert doc["permissions"] == {}
    assert doc["jobs"]["matrix"]["permissions"] == {"contents": "read"}
    assert doc["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert doc["jobs"]["release"]["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
    }
    assert doc["jobs"]["release"]["if"] == "startsWith(github.ref, 'refs/tags/v')"
    steps = [s.get("name", s.get("uses", "")) for s in doc["jobs"]["build"]["steps"]]
    assert not any("Push" in s or "cosign" in s for s in steps)


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("name", "").startswith(name)]
    return step


@pytest.mark.parametrize("job", ["build", "release"])
def test_package_store_is_cached_under_a_key_of_the_lock_files(job: str) -> None:
    """A lock change saves a new store; restore-keys bring back the target's older one (content-addressed)."""
    steps = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"][job]
    assert steps["env"]["EDGEPACK_STORE"] == "${{ github.workspace }}/build/store"
    store = _step(steps, "Package store")
    assert store["uses"].startswith("actions/cache@")
    with_ = store["with"]
    assert with_["path"] == "${{ env.EDGEPACK_STORE }}"
    assert with_["key"] == (
        "edgepack-store/${{ matrix.target }}/${{ hashFiles('targets/locks/**', 'wheels/locks/**') }}"
    )
    assert with_["restore-keys"] == "edgepack-store/${{ matrix.target }}/"
    # Not even a target named "store" has a step-cache prefix that matches the store's keys.
    step_prefix = _step(steps, "Step cache")["with"]["restore-keys"].replace("${{ matrix.target }}", "store")
    assert not with_["key"].startswith(step_prefix)
    names = [s.get("name", "") for s in steps["steps"]]
    assert names.index(store["name"]) < names.index("Build and smoke-test")


def test_only_the_release_builds_locked() -> None:
    jobs = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"]
    release = _step(jobs["release"], "Build and smoke-test")["run"]
    branch = _step(jobs["build"], "Build and smoke-test")["run"]
    assert release.startswith('invoke build --locked --target "$TARGET" ')
    assert branch.startswith('invoke build --target "$TARGET" ') and "--locked" not in branch
    assert release.replace(" --locked", "") == branch


def test_locks_workflow_refreshes_weekly_and_may_only_propose() -> None:
    doc = yaml.safe_load((REPO / workflow.LOCKS_WORKFLOW).read_text())
    assert doc["permissions"] == {}
    assert doc[True]["schedule"] == [{"cron": "23 4 * * 1"}] and "workflow_dispatch" in doc[True]
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    runs = [s.get("run", "") for s in job["steps"]]
    assert "invoke lock --all" in runs
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["persist-credentials"] is False  # create-pull-request sets its own credentials
    propose = _step(job, "Propose the new locks")
    assert propose["uses"] == "peter-evans/create-pull-request@271a8d0340265f705b14b6d32b9829c1cb33d45e"
    assert propose["if"] == "steps.diff.outputs.changed == 'true'"
    assert propose["with"]["add-paths"].split() == ["targets/locks", "wheels/locks"]
    assert "git status --porcelain -- targets/locks wheels/locks" in _step(job, "Which locks changed")["run"]
    assert runs.index("invoke lock --all") < [s.get("id") for s in job["steps"]].index("diff")


def test_check_fails_on_a_stale_workflow(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    workflow.write(project)
    assert workflow.check(project) == tmp_path / workflow.WORKFLOW
    added = tmp_path / "targets" / "rpi5.yaml"
    added.write_text((tmp_path / "targets" / "rpi4.yaml").read_text().replace("rpi4", "rpi5"))
    with pytest.raises(ConfigError) as info:
        workflow.check(project)
    assert "build.yml is out of date" in info.value.message
    assert info.value.hint == "Run: invoke ci.workflow (and commit the result)."
    workflow.write(project)
    (tmp_path / workflow.LOCKS_WORKFLOW).unlink()
    with pytest.raises(ConfigError, match=r"locks\.yml is missing"):
        workflow.check(project)


def test_a_pin_that_is_not_a_full_sha_is_refused(tmp_path: Path) -> None:
    text = (workflow.RESOURCES / "ci-pins.yaml").read_text().replace("sha: 11bd71901bbe", "sha: v4-", 1)
    (tmp_path / "pins.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"pins.yaml:\d+: actions/checkout: sha must be a full 40-hex"):
        workflow.load_ci_pins(tmp_path / "pins.yaml")


def test_image_step_argv_carries_builder_and_cache() -> None:
    b = build_module.Build(target=load_target(Project(REPO), "rpi4"), project=Project(REPO), runner=Runner(),
                           model="x.onnx",
                           buildx=BuildxOptions("edgepack", ("type=gha,scope=rpi4",), ()))  # fmt: skip
    job = build_module.ImageJob(target="rpi4", tag="t", context=Path("/ctx"), dockerfile=Path("/ctx/D"),
                                platform="linux/arm64", tags=("t",), labels={}, build_args={})  # fmt: skip
    argv = build_module._image_argv(b, job, tags=["t"], iidfile=None)
    assert argv[:7] == ["docker", "buildx", "build", "--builder", "edgepack", "--platform", "linux/arm64"]
    assert argv[argv.index("--cache-from") + 1] == "type=gha,scope=rpi4"
    assert "--load" in argv and "--cache-to" not in argv


def test_push_refuses_a_build_that_has_not_run(tmp_path: Path) -> None:
    project = make_project(tmp_path, extra={"plain": "wheels: []"})  # no wheel toolchain asked for a key
    for part in ("assets/audio", "docker"):
        shutil.copytree(REPO / part, tmp_path / part)
    b = build_module.Build(target=load_target(project, "plain"), project=project, runner=Runner(echo=False),
                           model="silero-vad")  # fmt: skip
    with pytest.raises(
        ConfigError, match="cannot push plain: base, deps, model, app, image, smoke not built"
    ):
        build_module.push_image(b, build_module.plan(b), ref="r:v1", metadata_file=tmp_path / "m.json")


@pytest.mark.parametrize(
    ("image", "repository"),
    [("ghcr.io/o/edgepack-rpi4:v1.2", "ghcr.io/o/edgepack-rpi4"), ("localhost:5000/e:v1", "localhost:5000/e"),
     ("e:v1", "e"), ("ghcr.io/o/e", "ghcr.io/o/e")],
)  # fmt: skip
def test_pushed_reference_drops_the_tag(image: str, repository: str) -> None:
    from edgepack.ci.commands import _repository

    assert _repository(image) == repository
