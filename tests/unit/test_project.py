"""Projects outside the repository: discovery, built-in boards under a project's own targets, init."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.config import BUILTIN, Project, builtin_boards, find_project, load_target, select_targets
from edgepack.errors import ConfigError, InputError
from edgepack.scaffold import ModelInput, plan_project, write_project


def test_the_project_is_found_by_walking_up_to_edgepack_toml(tmp_path: Path) -> None:
    (tmp_path / "edgepack.toml").write_text('targets = "boards"\nbuild = "out"\npython_path = ["src"]\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    project = find_project(deep)
    assert project.root == tmp_path.resolve()
    assert (project.targets_dir, project.build_dir) == (
        tmp_path.resolve() / "boards",
        tmp_path.resolve() / "out",
    )
    assert project.python_path == ("src",)


def test_tool_edgepack_in_pyproject_is_a_project_too(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.edgepack]\nbuild = "dist/edge"\n')
    assert find_project(tmp_path).build_dir == tmp_path.resolve() / "dist" / "edge"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('targts = "t"\n', "unknown key 'targts'. Did you mean 'targets'?"),
        ('build = "../elsewhere"\n', "'build' must be a folder inside the project"),
        ("python_path = 'src'\n", "'python_path' must be a list of folders"),
        ("targets = [\n", "malformed TOML"),
    ],
)
def test_a_bad_project_file_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "edgepack.toml").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        find_project(tmp_path)
    assert str(tmp_path / "edgepack.toml") in info.value.message


def test_a_project_without_targets_sees_the_built_in_boards(tmp_path: Path) -> None:
    project = Project(tmp_path)
    assert project.target_names() == builtin_boards() and "rpi4" in builtin_boards()
    rpi4 = load_target(project, "rpi4")
    assert rpi4.qemu_cpu == "cortex-a72"
    assert project.lock_path(rpi4, "debian").is_relative_to(BUILTIN)  # read from edgepack's own boards
    assert (
        project.writable(project.lock_path(rpi4, "debian"))
        == tmp_path / "targets/locks/debian-bookworm-arm64.json"
    )


def test_a_target_extends_a_board_and_overrides_fields(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets/kiosk.yaml").write_text("extends: rpi5\ndescription: a kiosk\nthreads: 2\n")
    project = Project(tmp_path)
    kiosk = load_target(project, "kiosk")
    assert (kiosk.name, kiosk.platform, kiosk.qemu_cpu, kiosk.threads) == (
        "kiosk",
        "linux/arm64",
        "cortex-a76",
        2,
    )
    assert project.target_names() == ["kiosk"]  # --target all: the project's own
    assert select_targets(project, "kiosk,rpi4") == ["kiosk", "rpi4"]  # a board by name still works


def test_extending_an_unknown_board_suggests_one(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets/kiosk.yaml").write_text("description: a kiosk\nextends: rpi6\n")
    with pytest.raises(ConfigError) as info:
        load_target(Project(tmp_path), "kiosk")
    assert info.value.message.endswith("kiosk.yaml:2: extends: 'rpi6' is not a built-in board.")
    assert "Did you mean 'rpi5'?" in info.value.hint


def test_all_is_not_mixed_with_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'all' means every target; it is not combined with names"):
        select_targets(Project(tmp_path), "all,rpi4")


def test_a_folder_named_like_a_target_is_named_not_suggested(tmp_path: Path) -> None:
    (tmp_path / "targets/loop.yaml").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"loop\.yaml: is a folder, not a YAML file"):
        load_target(Project(tmp_path), "loop")


def test_init_plans_a_project_that_extends_a_board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "in" / "net.onnx"
    model.parent.mkdir()
    model.write_bytes(b"onnx")
    monkeypatch.setattr(
        "edgepack.scaffold.onnx_inputs",
        lambda path: [
            ModelInput("input_ids", "int64", ("batch", "seq")),
            ModelInput("mask", "int64", ("batch", "seq")),
        ],
    )
    plan = plan_project(tmp_path / "proj", name="encoder", board="rpi4", model=model, factory=None)
    assert set(plan.files) == {
        "edgepack.toml",
        "targets/encoder.yaml",
        "models/encoder.yaml",
        "samples/README.md",
        "tasks.py",
        ".gitignore",
        ".github/matrix.yaml",
    }
    assert "extends: rpi4" in plan.files["targets/encoder.yaml"]
    spec = plan.files["models/encoder.yaml"]
    assert "file: models/net.onnx" in spec and "{name: input_ids, shape: [batch, seq], dtype: int64" in spec
    assert "{name: batch, export: 2, check: [1, 3]}" in spec and "{name: seq, export: 2" in spec
    written = write_project(plan)
    assert (tmp_path / "proj/models/net.onnx").read_bytes() == b"onnx" and len(written) == 8
    with pytest.raises(ConfigError, match=r"edgepack\.toml exists: edgepack init does not overwrite files"):
        write_project(plan)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "My Net"}, ConfigError, "--name 'My Net'"),
        ({"board": "rpi6"}, ConfigError, "--board rpi6: not a built-in board"),
        ({"model": None}, ConfigError, "init needs one model"),
        ({"model": Path("/nonexistent.onnx")}, InputError, "no such file"),
        (
            {"model": None, "factory": "nocolon"},
            ConfigError,
            "--factory nocolon: expected package.module:callable",
        ),
    ],
)
def test_init_refuses_bad_arguments(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    args = {"name": "net", "board": "rpi4", "model": None, "factory": "pkg.mod:make"} | kwargs
    if "model" in kwargs and kwargs["model"] is not None:
        args["factory"] = None
    if kwargs.get("model", "x") is None and "factory" not in kwargs:
        args["factory"] = None
    with pytest.raises(error, match=message):
        plan_project(tmp_path, **args)
