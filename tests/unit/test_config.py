from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from edgepack.config import Project, load_target, target_schema
from edgepack.errors import ConfigError
from edgepack.yamlconf import load_yaml, merge
from tests.unit.conftest import write_target

REPO = Path(__file__).resolve().parents[2]


def test_rpi4_loads_with_defaults(project: Project) -> None:
    t = load_target(project, "rpi4")
    assert (t.platform, t.qemu_cpu, t.arch, t.wheel_arch, t.binfmt) == (
        "linux/arm64", "cortex-a72", "arm64", "aarch64", "qemu-aarch64")  # fmt: skip
    assert t.debian.suite == "bookworm" and "python3.11-minimal" in t.debian.packages
    assert t.smoke.atol == pytest.approx(1e-4)


def test_unknown_key_names_file_line_and_suggestion(project: Project) -> None:
    path = write_target(project, "bad", "description: x\nplatfrom: linux/arm64\n")
    with pytest.raises(ConfigError) as err:
        load_target(project, "bad")
    assert str(err.value) == f"{path}:2: unknown key 'platfrom'. Did you mean 'platform'?"


def test_unknown_nested_key(project: Project) -> None:
    text = (REPO / "targets/rpi4.yaml").read_text() + "smoke:\n  atoll: 1\n"
    path = write_target(project, "bad", text)
    with pytest.raises(
        ConfigError, match=rf"^{path}:\d+: unknown key 'smoke.atoll'. Did you mean 'smoke.atol'\?"
    ):
        load_target(project, "bad")


def test_wrong_type(project: Project) -> None:
    text = (REPO / "targets/rpi4.yaml").read_text().replace("threads: 4", "threads: four")
    path = write_target(project, "bad", text)
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: 'threads' must be an integer, got a string"):
        load_target(project, "bad")


def test_bad_literal_suggests(project: Project) -> None:
    text = (REPO / "targets/rpi4.yaml").read_text().replace("linux/arm64", "linux/arm46")
    write_target(project, "bad", text)
    with pytest.raises(ConfigError, match="Did you mean 'linux/arm64'"):
        load_target(project, "bad")


def test_missing_field(project: Project) -> None:
    text = (REPO / "targets/rpi4.yaml").read_text().replace("qemu_cpu: cortex-a72\n", "")
    write_target(project, "bad", text)
    with pytest.raises(ConfigError, match="missing required key 'qemu_cpu'"):
        load_target(project, "bad")


def test_malformed_yaml_has_line(project: Project) -> None:
    path = write_target(project, "bad", "description: x\nplatform: [linux/arm64\nqemu_cpu: a\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: malformed YAML"):
        load_target(project, "bad")


def test_unknown_target_lists_known(project: Project) -> None:
    with pytest.raises(ConfigError) as err:
        load_target(project, "rpi-4")
    assert "unknown target 'rpi-4'" in str(err.value)
    assert "Did you mean 'rpi4'?" in err.value.hint and "rpi4" in err.value.hint


def test_name_must_match_file(project: Project) -> None:
    text = (REPO / "targets/rpi4.yaml").read_text() + "name: rpi5\n"
    write_target(project, "other", text)
    with pytest.raises(ConfigError, match="must match the file name"):
        load_target(project, "other")


def test_merge_replaces_lists_and_merges_maps() -> None:
    assert merge({"a": {"x": 1, "y": [1]}, "b": 2}, {"a": {"y": [2]}}) == {"a": {"x": 1, "y": [2]}, "b": 2}


def test_every_shipped_target_matches_the_schema() -> None:
    schema = target_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    proj = Project(REPO)
    assert proj.target_names(), "no targets shipped"
    for name in proj.target_names():
        merged = merge(yaml.safe_load((REPO / "targets/defaults.yaml").read_text()),
                       yaml.safe_load((REPO / f"targets/{name}.yaml").read_text()))  # fmt: skip
        merged.setdefault("name", name)
        jsonschema.validate(merged, schema)
        load_target(proj, name)


def test_committed_schema_is_current() -> None:
    committed = json.loads((REPO / "targets/target.schema.json").read_text())
    assert committed == target_schema(), "regenerate it: edgepack targets --schema"


def test_schema_rejects_unknown_key() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"platfrom": "x"}, target_schema())


def test_yaml_lines_point_at_keys(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("a: 1\nb:\n  c: 2\n")
    doc = load_yaml(f)
    assert doc.lines[("b", "c")] == (f, 3)
