"""Builder nodes: buildx's output parsed, and where each target builds (native node, QEMU, or an error)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from edgepack.config import Project, Target, load_target
from edgepack.errors import ConfigError, ToolchainError
from edgepack.host import builders
from edgepack.host.binfmt import BinfmtMisc
from edgepack.runner import Result
from tests.conftest import FakeRunner, ok

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "buildx"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def board(name: str, platform: str) -> Target:
    return dataclasses.replace(load_target(Project(REPO), "rpi4"), name=name, platform=platform)  # type: ignore[arg-type]


@pytest.fixture
def qemu(tmp_path: Path) -> BinfmtMisc:
    """binfmt_misc with the arm64 entry doctor registers (captured), and none for arm."""
    (tmp_path / "register").write_text("")
    shutil.copy(FIXTURES / "binfmt-qemu-aarch64.txt", tmp_path / "qemu-aarch64")
    return BinfmtMisc(root=tmp_path)


def test_real_default_builder() -> None:
    b = builders.parse_inspect(fixture("inspect-default.txt"))
    assert (b.name, b.driver) == ("default", "docker")
    (node,) = b.nodes
    assert (node.name, node.endpoint, node.status) == ("default", "default", "running")
    assert node.platforms == ("linux/amd64", "linux/arm64", "linux/386", "linux/arm/v7", "linux/arm/v6")
    assert node.native == ("linux/amd64",)  # BuildKit lists its own platform first


def test_real_declared_node_and_inactive_node() -> None:
    declared = builders.parse_inspect(fixture("inspect-edgepack-declared-arm64.txt"))
    assert declared.driver == "docker-container"
    assert declared.nodes == (builders.Node("n1", "unix:///var/run/docker.sock", "inactive", ("linux/arm64",),
                                            ("linux/arm64",)),)  # fmt: skip
    (bare,) = builders.parse_inspect(fixture("inspect-edgepack-inactive.txt")).nodes
    assert (bare.platforms, bare.native) == ((), ())


def test_documented_multinode_builder_skips_labels_and_gc_policy() -> None:
    b = builders.parse_inspect(fixture("documented-multinode.txt"))
    assert [n.name for n in b.nodes] == ["local0", "pi5", "orin"]
    assert b.nodes[0].native == ("linux/amd64",)
    assert b.nodes[1].native == ("linux/arm64",)
    assert b.nodes[1].platforms == ("linux/arm64", "linux/arm/v7", "linux/arm/v6")
    assert b.nodes[2].status == "stopped"


def test_ls_json_names_once_each() -> None:
    assert builders.parse_ls_names(fixture("ls-declared.jsonl")) == ["edgepack", "default"]


def test_a_native_node_wins_over_qemu(qemu: BinfmtMisc) -> None:
    pool = [builders.parse_inspect(fixture("documented-multinode.txt")),
            builders.parse_inspect(fixture("inspect-default.txt"))]  # fmt: skip
    choice = builders.choose(board("rpi4", "linux/arm64"), builders=pool, binfmt=qemu)
    assert choice == builders.Choice("edgepack", "pi5", "linux/arm64", native=True)
    assert choice.describe() == "edgepack/pi5 (linux/arm64 native)"


def test_the_local_engine_builds_its_own_platform_natively(qemu: BinfmtMisc) -> None:
    pool = [builders.parse_inspect(fixture("inspect-default.txt"))]
    choice = builders.choose(board("x86-box", "linux/amd64"), builders=pool, binfmt=qemu)
    assert choice == builders.Choice("default", "default", "linux/amd64", native=True)


def test_no_native_node_means_qemu_on_the_local_engine(qemu: BinfmtMisc) -> None:
    pool = [builders.parse_inspect(fixture("inspect-default.txt"))]
    choice = builders.choose(board("rpi4", "linux/arm64"), builders=pool, binfmt=qemu)
    assert choice == builders.Choice("default", "default", "linux/arm64", native=False)
    assert choice.describe() == "default/default (linux/arm64 under QEMU)"


def test_a_stopped_native_node_is_passed_over_and_said_so(qemu: BinfmtMisc) -> None:
    multinode = builders.parse_inspect(fixture("documented-multinode.txt"))
    only_orin = dataclasses.replace(multinode, nodes=multinode.nodes[2:])
    pool = [only_orin, builders.parse_inspect(fixture("inspect-default.txt"))]
    choice = builders.choose(board("orin-nano", "linux/arm64"), builders=pool, binfmt=qemu)
    assert (choice.builder, choice.native) == ("default", False)
    assert choice.note == "node orin of edgepack is stopped"


def test_neither_native_nor_registered_names_target_platform_and_fixes(qemu: BinfmtMisc) -> None:
    pool = [builders.parse_inspect(fixture("inspect-default.txt"))]
    with pytest.raises(ToolchainError) as info:
        builders.choose(board("armv7-board", "linux/arm/v7"), builders=pool, binfmt=qemu)
    text = info.value.render()
    assert "target 'armv7-board' needs linux/arm/v7: no builder node builds it natively and QEMU" in text
    assert "QEMU is not registered for it (binfmt_misc qemu-arm)" in text
    assert "edgepack doctor --fix" in text
    assert "edgepack builders.add --node NAME --platform linux/arm/v7 --endpoint ssh://user@host" in text
    assert info.value.exit_code == 3


def test_a_named_builder_is_the_only_choice(qemu: BinfmtMisc) -> None:
    pool = [builders.parse_inspect(fixture("documented-multinode.txt")),
            builders.parse_inspect(fixture("inspect-default.txt"))]  # fmt: skip
    choice = builders.choose(board("rpi4", "linux/arm64"), builders=pool, binfmt=qemu, named="default")
    assert (choice.builder, choice.native) == ("default", False)
    with pytest.raises(ConfigError, match="--builder ci-builder: buildx has no builder by that name"):
        builders.choose(board("rpi4", "linux/arm64"), builders=pool, binfmt=qemu, named="ci-builder")
    with pytest.raises(ToolchainError, match="builder default does not build it natively and QEMU is not"):
        builders.choose(board("armv7-board", "linux/arm/v7"), builders=pool, binfmt=qemu, named="default")


def test_inspect_missing_builder_is_none(fake_runner: FakeRunner) -> None:
    fake_runner.on(lambda a: a[:3] == ["docker", "buildx", "inspect"],
                   lambda a: Result(a, 1, "", fixture("inspect-missing.stderr")))  # fmt: skip
    assert builders.inspect("nope", runner=fake_runner) is None


def test_add_creates_then_appends_then_boots(fake_runner: FakeRunner) -> None:
    state = {"exists": False}

    def inspect(argv: list[str]) -> Result:
        if not state["exists"]:
            return Result(argv, 1, "", 'ERROR: no builder "edgepack" found\n')
        return Result(argv, 0, fixture("documented-multinode.txt"), "")

    def create(argv: list[str]) -> Result:
        state["exists"] = True
        return Result(argv, 0, "edgepack\n", "")

    fake_runner.on(lambda a: a[:3] == ["docker", "buildx", "inspect"] and "--bootstrap" not in a, inspect)
    fake_runner.on(lambda a: a[:3] == ["docker", "buildx", "create"], create)
    fake_runner.on(lambda a: "--bootstrap" in a, ok())
    builders.add(
        "local0", endpoint="unix:///var/run/docker.sock", platforms=["linux/amd64"], runner=fake_runner
    )
    builders.add("pi5", endpoint="ssh://builder@pi5.lan", platforms=["linux/arm64"], runner=fake_runner)
    creates = [c for c in fake_runner.calls if c[:3] == ["docker", "buildx", "create"]]
    assert creates == [
        ["docker", "buildx", "create", "--driver", "docker-container", "--name", "edgepack",
         "--node", "local0",
         "--platform", "linux/amd64", "unix:///var/run/docker.sock"],
        ["docker", "buildx", "create", "--append", "--name", "edgepack", "--node", "pi5",
         "--platform", "linux/arm64", "ssh://builder@pi5.lan"],
    ]  # fmt: skip
    assert fake_runner.calls.count(["docker", "buildx", "inspect", "--bootstrap", "edgepack"]) == 2


def test_list_builders_inspects_each_listed_builder_once(fake_runner: FakeRunner) -> None:
    answers = {
        "edgepack": fixture("inspect-edgepack-declared-arm64.txt"),
        "default": fixture("inspect-default.txt"),
    }
    fake_runner.on(lambda a: a[:3] == ["docker", "buildx", "ls"], ok(fixture("ls-declared.jsonl")))
    fake_runner.on(
        lambda a: a[:3] == ["docker", "buildx", "inspect"], lambda a: Result(a, 0, answers[a[3]], "")
    )
    found = builders.list_builders(runner=fake_runner)
    assert [(b.name, b.driver) for b in found] == [("edgepack", "docker-container"), ("default", "docker")]
    assert [c[3] for c in fake_runner.calls if c[2] == "inspect"] == ["edgepack", "default"]
