"""The CI matrix from targets/ and .github/matrix.yaml, for any set of targets; bad overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgepack.ci import matrix
from edgepack.config import Project
from edgepack.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def make_project(tmp: Path, *, extra: dict[str, str] | None = None, overrides: str | None = None) -> Project:
    """targets/ (rpi4 the only board), .github/, models/ copied, plus ``extra`` targets.

    An extra's value is a repository target to copy (``@rpi5``) or ``key: value`` lines changed in rpi4.
    """
    shutil.copytree(REPO / "targets", tmp / "targets")
    for path in (tmp / "targets").glob("*.yaml"):
        if path.stem not in ("defaults", "rpi4"):
            path.unlink()
    shutil.copytree(REPO / ".github", tmp / ".github")
    shutil.copytree(REPO / "models", tmp / "models")
    shutil.copytree(REPO / "runtime", tmp / "runtime", ignore=shutil.ignore_patterns("src", "tests"))
    for name, changes in (extra or {}).items():
        source = changes[1:] if changes.startswith("@") else "rpi4"
        text = (REPO / "targets" / f"{source}.yaml").read_text()
        for line in changes.splitlines() if source == "rpi4" else []:
            key = line.split(":", 1)[0]
            text = "\n".join(line if old.startswith(f"{key}:") else old for old in text.splitlines()) + "\n"
        (tmp / "targets" / f"{name}.yaml").write_text(text.replace(f"edgepack/{source}", f"edgepack/{name}"))
    if overrides is not None:
        text = (tmp / ".github" / "matrix.yaml").read_text().replace("targets: []\n", overrides)
        (tmp / ".github" / "matrix.yaml").write_text(text)
    return Project(tmp)


TARGETS_LINE = next(
    i
    for i, line in enumerate((REPO / ".github" / "matrix.yaml").read_text().splitlines(), 1)
    if line.startswith("targets:")
)
BOARDS = {
    "x86-box": "@x86-box",
    "armv7-board": "@rpi-zero2w",
    "rpi5": "platform: linux/arm64\nqemu_cpu: cortex-a76",
}


def test_rpi4_alone_builds_on_x86_under_qemu() -> None:
    (row,) = matrix.entries(Project(REPO), only="rpi4")
    assert row == matrix.Entry("rpi4", "linux/arm64", "ubuntu-24.04", True, "qemu-aarch64", 60, "", "3.11")


def test_every_target_gets_an_entry_with_its_own_emulator(tmp_path: Path) -> None:
    rows = {r.target: r for r in matrix.entries(make_project(tmp_path, extra=BOARDS))}
    assert sorted(rows) == ["armv7-board", "rpi4", "rpi5", "x86-box"]
    assert (rows["x86-box"].emulated, rows["x86-box"].binfmt) == (False, "")
    assert (rows["armv7-board"].emulated, rows["armv7-board"].binfmt) == (True, "qemu-arm")
    assert rows["rpi5"].runner == "ubuntu-24.04"
    assert matrix.as_json_matrix(list(rows.values()))["include"][0]["target"] == "armv7-board"


def test_overrides_move_a_target_to_the_arm_runner(tmp_path: Path) -> None:
    overrides = ("targets:\n  - name: rpi5\n    runner: ubuntu-24.04-arm\n    timeout_minutes: 30\n"
                 "    model: models/silero-vad.yaml\n")  # fmt: skip
    rows = {r.target: r for r in matrix.entries(make_project(tmp_path, extra=BOARDS, overrides=overrides))}
    assert rows["rpi5"] == matrix.Entry("rpi5", "linux/arm64", "ubuntu-24.04-arm", False, "", 30,
                                        "models/silero-vad.yaml", "3.11")  # fmt: skip
    assert rows["rpi4"].emulated


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ("targets:\n  - name: rpi-4\n", [1, "unknown target 'rpi-4'", "Did you mean 'rpi4'?"]),
        (
            "targets:\n  - name: rpi4\n    runer: x\n",
            [2, "unknown key 'targets.0.runer'", "'targets.0.runner'"],
        ),
        (
            "targets:\n  - name: rpi4\n    runner: ubuntu-24.04-armm\n",
            [2, "Did you mean 'ubuntu-24.04-arm'"],
        ),
        ("targets:\n  - name: rpi4\n    timeout_minutes: 9000\n", [2, "1..360"]),
        ("targets:\n  - name: rpi4\n    timeout_minutes: soon\n", [2, "must be an integer"]),
        (
            "targets:\n  - name: rpi4\n    model: models/nope.yaml\n",
            [2, "model 'models/nope.yaml' is not a file"],
        ),
        ("targets:\n  - name: rpi4\n  - name: rpi4\n", [2, "listed twice"]),
        ("targets: {rpi4: {runner: x}}\n", [0, "'targets' must be a list"]),
    ],
)
def test_malformed_override_names_file_line_and_fix(tmp_path: Path, overrides: str, needles: list) -> None:
    """``needles[0]``: the line of the error, counted from the ``targets:`` line."""
    project = make_project(tmp_path, overrides=overrides)
    with pytest.raises(ConfigError) as info:
        matrix.entries(project)
    text = info.value.render()
    assert f".github/matrix.yaml:{TARGETS_LINE + needles[0]}: " in text
    for needle in needles[1:]:
        assert needle in text


def test_amd64_target_on_an_arm_runner_has_no_emulator(tmp_path: Path) -> None:
    overrides = "targets:\n  - name: x86-box\n    runner: ubuntu-24.04-arm\n"
    with pytest.raises(
        ConfigError, match=rf"matrix.yaml:{TARGETS_LINE + 1}: .*no QEMU emulator for linux/amd64"
    ):
        matrix.entries(make_project(tmp_path, extra=BOARDS, overrides=overrides))


def test_a_platform_without_a_default_runner(tmp_path: Path) -> None:
    project = make_project(tmp_path, extra={"armv7-board": BOARDS["armv7-board"]})
    path = project.root / ".github" / "matrix.yaml"
    path.write_text(path.read_text().replace(", linux/arm/v7]", "]"))
    with pytest.raises(
        ConfigError, match="no runner is the default for linux/arm/v7, which target 'armv7-board'"
    ):
        matrix.entries(project)


def test_only_one_target_and_a_misspelt_one(tmp_path: Path) -> None:
    project = make_project(tmp_path, extra=BOARDS)
    assert [r.target for r in matrix.entries(project, only="rpi5")] == ["rpi5"]
    with pytest.raises(ConfigError, match="Did you mean 'rpi5'"):
        matrix.entries(project, only="rpi6")
