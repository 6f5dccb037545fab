"""The committed workflow is what targets/ generate (golden), for rpi4 alone and for any other set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack.ci import workflow
from edgepack.config import Project, load_target
from edgepack.errors import ConfigError
from edgepack.pipeline import image as build_module
from edgepack.pipeline.context import Build
from edgepack.pipeline.docker import BuildxOptions
from edgepack.pipeline.plan import plan
from edgepack.runner import Runner
from tests.unit.test_ci_matrix import BOARDS, make_project

REPO = Path(__file__).resolve().parents[2]


def test_committed_workflow_is_in_sync_with_targets() -> None:
    """Fails when a target, .github/matrix.yaml or a pin changed: run `edgepack ci.workflow` and commit."""
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
    assert not any("Push" in s or "cosign" in s or "login" in s for s in steps)


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


def test_a_tag_builds_locked_in_both_jobs_with_the_same_step() -> None:
    jobs = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"]
    release, branch = (_step(jobs[job], "Build and smoke-test") for job in ("release", "build"))
    assert release == branch
    assert branch["env"]["LOCKED"] == "${{ startsWith(github.ref, 'refs/tags/v') && 'yes' || '' }}"
    assert branch["run"].startswith('edgepack build ${LOCKED:+--locked} --target "$TARGET" ')


def test_a_release_pushes_every_board_or_none() -> None:
    """Every target builds and is smoke-tested (job build) before any push; on a tag one failure stops all."""
    jobs = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"]
    assert "if" not in jobs["build"]  # a tag builds too: it is the release's gate
    assert jobs["build"]["strategy"]["fail-fast"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"
    assert jobs["release"]["needs"] == ["matrix", "build"]
    assert jobs["release"]["strategy"]["fail-fast"] is False  # a push that started runs to the end


def test_only_pull_requests_are_cancelled_by_a_newer_push() -> None:
    doc = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())
    assert doc["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


@pytest.mark.parametrize("job", ["build", "release"])
def test_the_step_cache_never_holds_image_or_smoke_stamps(job: str) -> None:
    """actions/cache ignores `!path` under a cached folder: restore, delete, build, delete, then save."""
    steps = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"][job]["steps"]
    text = yaml.safe_dump(steps)
    assert "!build" not in text
    names = [s.get("name", "") for s in steps]
    restore = _step({"steps": steps}, "Step cache")
    assert restore["uses"].startswith("actions/cache/restore@") and restore["id"] == "step-cache"
    assert restore["with"]["path"].split() == list(workflow.STEP_CACHE_PATHS)
    prune = _step({"steps": steps}, "No restored image or smoke stamp")
    fresh = " ".join(workflow.fresh_paths(Project(REPO)))
    assert prune["run"] == f'rm -rf {fresh} "build/$TARGET/report.json"'
    assert names.index(restore["name"]) < names.index(prune["name"]) < names.index("Build and smoke-test")
    saves = [s for s in steps if s.get("uses", "").startswith("actions/cache/save@")]
    if job == "release":  # the build job saves; the release only reads
        assert saves == []
        return
    (save,) = saves
    before_save = _step({"steps": steps}, "Before the save")
    assert before_save["run"] == f"rm -rf {fresh}"
    assert names.index("Build and smoke-test") < names.index(before_save["name"]) < names.index(save["name"])
    assert save["with"] == {
        "path": restore["with"]["path"],
        "key": "${{ steps.step-cache.outputs.cache-primary-key }}",
    }
    assert save["if"] == before_save["if"] == "steps.step-cache.outputs.cache-hit != 'true'"
    artifacts = _step({"steps": steps}, "Artifacts")
    assert names.index(artifacts["name"]) < names.index(before_save["name"])  # image.tar uploaded first


def test_the_deleted_paths_are_the_builds_own_stamps_and_tars(tmp_path: Path) -> None:
    """workflow.fresh_paths names exactly where a build keeps its image and smoke stamps and image tars."""
    import fnmatch

    project = make_project(tmp_path, extra={"plain": "wheels: []"})
    for part in ("assets/audio", "docker"):
        shutil.copytree(REPO / part, tmp_path / part)
    b = Build(target=load_target(project, "plain"), project=project, runner=Runner(echo=False),
                           model="silero-vad")  # fmt: skip
    steps = plan(b)
    tars, *stamps = workflow.fresh_paths(project)
    for step in steps:
        stamp = str(b.cache.stamp(step).relative_to(tmp_path))
        assert any(fnmatch.fnmatchcase(stamp, glob) for glob in stamps) == (step.name in ("image", "smoke"))
    image = next(s for s in steps if s.name == "image")
    assert b.cache_dir("image", image.key).relative_to(tmp_path).parent == Path(tars)
    assert (b.out_dir / "report.json").relative_to(tmp_path) == Path("build/plain/report.json")


@pytest.mark.parametrize("job", ["build", "release"])
def test_the_cache_token_reaches_only_the_build_and_what_follows(job: str) -> None:
    steps = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"][job]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    names = [s.get("name", "") for s in steps]
    assert uses.count("crazy-max/ghaction-github-runtime") == 1
    assert uses.index("crazy-max/ghaction-github-runtime") == names.index("Build and smoke-test") - 1


def test_a_layer_cache_export_error_fails_no_build_and_a_rerun_may_upload_again() -> None:
    jobs = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"]
    run = _step(jobs["build"], "Build and smoke-test")["run"]
    assert '--cache-to "type=gha,scope=$TARGET,mode=max,ignore-error=true"' in run
    assert _step(jobs["build"], "Artifacts")["with"]["overwrite"] is True


@pytest.mark.parametrize("rel", [workflow.WORKFLOW, workflow.LOCKS_WORKFLOW])
def test_debian_keys_come_from_debian_checked_by_sha256(rel: Path) -> None:
    """Not Ubuntu's debian-archive-keyring (older than trixie's keys): Debian's .deb, by its pinned sha256."""
    ring = workflow.load_ci_pins().debian_keyring
    doc = yaml.safe_load((REPO / rel).read_text())
    jobs = [job for name, job in doc["jobs"].items() if name != "matrix"]  # which needs no Debian index
    for job in jobs:
        runs = [s.get("run", "") for s in job["steps"]]
        assert not any("debian-archive-keyring" in r and "apt-get install" in r for r in runs)
        keys = _step(job, "Debian's archive keys")
        trusted = workflow.APT_TRUSTED
        assert keys["env"] == {"KEYRING_URL": ring.url, "KEYRING_SNAPSHOT": ring.snapshot,
                               "KEYRING_SHA256": ring.sha256, "APT_TRUSTED": trusted}  # fmt: skip
        assert "sha256sum --check --strict" in keys["run"]
        edgepack_runs = [i for i, r in enumerate(runs) if "edgepack build" in r or "edgepack lock" in r]
        assert edgepack_runs and job["steps"].index(keys) < min(edgepack_runs)


@pytest.mark.parametrize("job", ["build", "release"])
def test_images_are_labelled_with_their_repository(job: str) -> None:
    from edgepack.ci import release

    env = yaml.safe_load((REPO / workflow.WORKFLOW).read_text())["jobs"][job]["env"]
    assert env[release.IMAGE_SOURCE_ENV] == "${{ github.server_url }}/${{ github.repository }}"


@pytest.mark.parametrize("rel", [workflow.WORKFLOW, workflow.LOCKS_WORKFLOW])
def test_run_scripts_take_expressions_only_through_env(rel: Path) -> None:
    """${{ }} inside a script is pasted in before the shell parses it (script injection); env is not."""
    doc = yaml.safe_load((REPO / rel).read_text())
    for job in doc["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step


def test_locks_workflow_refreshes_weekly_and_may_only_propose() -> None:
    doc = yaml.safe_load((REPO / workflow.LOCKS_WORKFLOW).read_text())
    assert doc["permissions"] == {}
    assert doc[True]["schedule"] == [{"cron": "23 4 * * 1"}] and "workflow_dispatch" in doc[True]
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    runs = [s.get("run", "") for s in job["steps"]]
    assert "edgepack lock --all" in runs
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["persist-credentials"] is False  # create-pull-request sets its own credentials
    propose = _step(job, "Propose the new locks")
    pin = next(a for a in workflow.load_ci_pins().actions if a.key == "create-pull-request")
    assert propose["uses"] == f"peter-evans/create-pull-request@{pin.sha}"
    assert propose["if"] == "steps.diff.outputs.changed == 'true'"
    assert propose["with"]["add-paths"].split() == ["targets/locks", "wheels/locks"]
    assert "git status --porcelain -- targets/locks wheels/locks" in _step(job, "Which locks changed")["run"]
    assert runs.index("edgepack lock --all") < [s.get("id") for s in job["steps"]].index("diff")


def test_check_fails_on_a_stale_workflow(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    workflow.write(project)
    assert workflow.check(project) == tmp_path / workflow.WORKFLOW
    added = tmp_path / "targets" / "rpi5.yaml"
    added.write_text((tmp_path / "targets" / "rpi4.yaml").read_text().replace("rpi4", "rpi5"))
    with pytest.raises(ConfigError) as info:
        workflow.check(project)
    assert "build.yml is out of date" in info.value.message
    assert info.value.hint == "Run: edgepack ci.workflow (and commit the result)."
    workflow.write(project)
    (tmp_path / workflow.LOCKS_WORKFLOW).unlink()
    with pytest.raises(ConfigError, match=r"locks\.yml is missing"):
        workflow.check(project)


def test_a_pin_that_is_not_a_full_sha_is_refused(tmp_path: Path) -> None:
    checkout = workflow.load_ci_pins().actions[0]
    text = (
        (workflow.RESOURCES / "ci-pins.yaml").read_text().replace(f"sha: {checkout.sha[:12]}", "sha: v4-", 1)
    )
    (tmp_path / "pins.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"pins.yaml:\d+: actions/checkout: sha must be a full 40-hex"):
        workflow.load_ci_pins(tmp_path / "pins.yaml")


def test_every_javascript_action_runs_on_node_24(tmp_path: Path) -> None:
    """Runners force node20 actions onto Node 24 with a deprecation warning: such a pin is refused."""
    pins = workflow.load_ci_pins()
    assert {a.runs for a in pins.actions} <= {"node24", "composite"}
    text = (workflow.RESOURCES / "ci-pins.yaml").read_text().replace("runs: node24", "runs: node20", 1)
    (tmp_path / "pins.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"pins.yaml:\d+: .*node20"):
        workflow.load_ci_pins(tmp_path / "pins.yaml")


def test_a_keyring_digest_that_is_not_sha256_is_refused(tmp_path: Path) -> None:
    digest = workflow.load_ci_pins().debian_keyring.sha256
    (tmp_path / "pins.yaml").write_text(
        (workflow.RESOURCES / "ci-pins.yaml").read_text().replace(digest, "abc")
    )
    with pytest.raises(ConfigError, match=r"pins.yaml:\d+: debian_keyring: sha256 must be 64 hex digits"):
        workflow.load_ci_pins(tmp_path / "pins.yaml")


def test_image_step_argv_carries_builder_and_cache() -> None:
    b = Build(target=load_target(Project(REPO), "rpi4"), project=Project(REPO), runner=Runner(),
                           model="x.onnx",
                           buildx=BuildxOptions("edgepack", ("type=gha,scope=rpi4",), ()))  # fmt: skip
    job = build_module.ImageJob(target="rpi4", tag="t", context=Path("/ctx"), dockerfile=Path("/ctx/D"),
                                platform="linux/arm64", tags=("t",), labels={}, build_args={})  # fmt: skip
    argv = build_module.image_argv(b, job, tags=["t"], iidfile=None)
    assert argv[:7] == ["docker", "buildx", "build", "--builder", "edgepack", "--platform", "linux/arm64"]
    assert argv[argv.index("--cache-from") + 1] == "type=gha,scope=rpi4"
    assert "--load" in argv and "--cache-to" not in argv


def test_push_refuses_a_build_that_has_not_run(tmp_path: Path) -> None:
    project = make_project(tmp_path, extra={"plain": "wheels: []"})  # no wheel toolchain asked for a key
    for part in ("assets/audio", "docker"):
        shutil.copytree(REPO / part, tmp_path / part)
    b = Build(target=load_target(project, "plain"), project=project, runner=Runner(echo=False),
                           model="silero-vad")  # fmt: skip
    with pytest.raises(
        ConfigError, match="cannot push plain: base, deps, model, app, image, smoke not built"
    ):
        build_module.push_image(b, plan(b), ref="r:v1", metadata_file=tmp_path / "m.json")


@pytest.mark.parametrize(
    ("image", "repository"),
    [("ghcr.io/o/edgepack-rpi4:v1.2", "ghcr.io/o/edgepack-rpi4"), ("localhost:5000/e:v1", "localhost:5000/e"),
     ("e:v1", "e"), ("ghcr.io/o/e", "ghcr.io/o/e")],
)  # fmt: skip
def test_pushed_reference_drops_the_tag(image: str, repository: str) -> None:
    from edgepack.ci.commands import _repository

    assert _repository(image) == repository
