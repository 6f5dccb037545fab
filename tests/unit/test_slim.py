"""What a target leaves out of its image: the unused groups, the capture feature's allow-list, the records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgepack.config import Project, UnusedGroup, load_target
from edgepack.debian.debfile import PathFilter
from edgepack.errors import ConfigError
from edgepack.pipeline import slim
from tests.unit.conftest import write_target

REPO = Path(__file__).resolve().parents[2]


def test_a_target_with_capture_keeps_pyaudio_and_one_without_leaves_it_out(project: Project) -> None:
    rpi4, jetson = load_target(project, "rpi4"), load_target(project, "jetson-orin-nano")
    assert "capture" in rpi4.features and "capture" not in jetson.features
    assert "pyaudio.libs" not in slim.site_groups(rpi4).get("capture", ())
    assert "pyaudio.libs" in slim.site_groups(jetson)["capture"]
    assert [g.name for g in slim.kept(rpi4)] == ["capture"] and slim.kept(jetson) == ()


def test_every_target_leaves_out_the_onnxruntime_c_api_library(project: Project) -> None:
    for name in project.target_names():
        groups = slim.site_groups(load_target(project, name))
        assert "onnxruntime/capi/libonnxruntime.so*" in groups["onnxruntime-c-api"], name


def test_the_target_prune_globs_come_first_as_their_own_group(project: Project) -> None:
    t = load_target(project, "rpi4")
    groups = slim.site_groups(t)
    assert next(iter(groups)) == slim.PRUNE and groups[slim.PRUNE] == t.prune


def test_the_plan_names_the_groups_and_what_a_feature_keeps(project: Project) -> None:
    t = load_target(project, "rpi4")
    inputs = slim.inputs(slim.site_groups(t), t)
    assert "onnxruntime-c-api" in inputs["unused"].split() and "capture" not in inputs["unused"].split()
    assert inputs["kept for features"] == "capture (for capture)"
    other = dataclasses.replace(t, features=())
    assert slim.inputs(slim.site_groups(other), other)["unused.globs"] != inputs["unused.globs"]


def test_rootfs_globs_drop_unused_stdlib_libraries_but_never_what_python_links() -> None:
    t = load_target(Project(REPO), "rpi4")
    paths = PathFilter(drop=slim.rootfs_globs(t))
    for gone in ("usr/lib/aarch64-linux-gnu/libdb-5.3.so",
                 "usr/lib/aarch64-linux-gnu/libsqlite3.so.0.8.6",
                 "usr/lib/python3.11/lib-dynload/_sqlite3.cpython-311-aarch64-linux-gnu.so",
                 "usr/lib/python3.11/test/support/__init__.py",
                 "usr/lib/python3.11/pydoc_data/topics.py"):  # fmt: skip
        assert not paths.wanted(gone), gone
    # python3.11 links libm, libz, libexpat; the runtime imports ssl (http.client), ctypes, decimal.
    for needed in ("usr/lib/aarch64-linux-gnu/libexpat.so.1.8.10", "usr/lib/aarch64-linux-gnu/libz.so.1",
                   "usr/lib/aarch64-linux-gnu/libssl.so.3", "usr/lib/aarch64-linux-gnu/libffi.so.8",
                   "usr/lib/python3.11/lib-dynload/_decimal.cpython-311-aarch64-linux-gnu.so",
                   "usr/lib/python3.11/email/utils.py", "usr/lib/python3.11/encodings/utf_8.py",
                   "usr/lib/python3/dist-packages/numpy/_core/test_x.py"):  # fmt: skip
        assert paths.wanted(needed), needed


def test_remove_groups_records_what_each_group_took(tmp_path: Path) -> None:
    for rel in ("onnxruntime/capi/libonnxruntime.so.1.32.0", "onnxruntime/capi/_pybind_state.py",
                "pyaudio/__init__.py", "pyaudio.libs/libasound.so", "numpy/random/mtrand.so"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    groups = {"c-api": ("onnxruntime/capi/libonnxruntime.so*",), "capture": ("pyaudio", "pyaudio.libs"),
              "none": ("nothing/*",)}  # fmt: skip
    assert slim.remove_groups(tmp_path, groups) == {
        "c-api": ["onnxruntime/capi/libonnxruntime.so.1.32.0"],
        "capture": ["pyaudio", "pyaudio.libs"],
        "none": [],
    }
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["numpy/random/mtrand.so", "onnxruntime/capi/_pybind_state.py"]


def test_a_wheel_only_a_missing_feature_uses_is_refused_at_load(project: Project) -> None:
    text = (REPO / "targets/rpi4.yaml").read_text().replace("features: [capture]\n", "")
    path = write_target(project, "nocapture", text)
    message = rf"^{path}:\d+: wheels lists pyaudio, which only the capture feature"
    with pytest.raises(ConfigError, match=message):
        load_target(project, "nocapture")


def test_an_unknown_feature_is_refused_with_a_suggestion(project: Project) -> None:
    text = (REPO / "targets/rpi4.yaml").read_text().replace("features: [capture]", "features: [captur]")
    write_target(project, "typo", text)
    with pytest.raises(ConfigError, match="Did you mean 'capture'"):
        load_target(project, "typo")


def test_groups_are_typed_and_frozen() -> None:
    group = UnusedGroup(name="x", why="never opened", site=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        group.name = "y"  # type: ignore[misc]
    assert group.rootfs == () and group.unless is None
