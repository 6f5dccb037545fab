"""Reproducible outputs (issue 12): pinned image times, the saved-image rewrite, layer tars, wheel flags."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from edgepack.config import Project, load_target
from edgepack.errors import InputError
from edgepack.pipeline.docker import (
    BuildxOptions,
    buildx_argv,
    chain_ids,
    config_bytes,
    pinned_config,
    reproducible_save,
    rfc3339,
)
from edgepack.pipeline.image import layer_tar
from edgepack.wheels import repair, wheelhouse
from edgepack.wheels.cross import build_env, prefix_map_flags, stage_source
from edgepack.wheels.recipes import load_recipe

REPO = Path(__file__).resolve().parents[2]
EPOCH = 1700000000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config(created: str, diff_ids: list[str]) -> dict[str, Any]:
    return {
        "architecture": "arm64",
        "os": "linux",
        "created": created,
        "config": {"Labels": {"b": "2", "a": "1"}, "User": "1000:1000"},
        "history": [
            {"created": created, "created_by": "ADD rootfs.tar / # buildkit"},
            {"created": created, "created_by": "USER 1000:1000", "empty_layer": True},
            {"created": created, "created_by": "ADD model.tar / # buildkit"},
        ],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


def add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.uname = len(data), mtime, 1000, "someone"
    tar.addfile(info, io.BytesIO(data))


def docker_save(path: Path, *, created: str, mtime: int, folder: str) -> Path:
    """A tar as `docker save` writes it: a config named by its digest, v1-style layer folders."""
    layers = [b"rootfs layer bytes", b"model layer bytes"]
    cfg = json.dumps(config(created, [sha256(x) for x in layers]), indent=1).encode()
    names = [f"{folder}{i}/layer.tar" for i in range(len(layers))]
    manifest = [{"Config": f"{sha256(cfg)[7:]}.json", "RepoTags": ["old:tag"], "Layers": names}]
    with tarfile.open(path, "w") as tar:
        for name, data in zip(names, layers, strict=True):
            add(tar, name, data, mtime)
        add(tar, manifest[0]["Config"], cfg, mtime)
        add(tar, "manifest.json", json.dumps(manifest).encode(), mtime)
    return path


# -- the image config and docker save ------------------------------------------------------------


def test_the_config_gets_the_epoch_as_its_time_and_every_history_entrys() -> None:
    built = config("2026-12-01T12:45:22.508469415Z", ["sha256:a"])
    pinned = pinned_config(built, epoch=EPOCH)
    assert pinned["created"] == "2023-11-14T22:13:20Z" == rfc3339(EPOCH)
    assert [h["created"] for h in pinned["history"]] == ["2023-11-14T22:13:20Z"] * 3
    assert [h["created_by"] for h in pinned["history"]] == [h["created_by"] for h in built["history"]]
    assert pinned["history"][1]["empty_layer"] is True and pinned["config"] == built["config"]
    assert built["created"] == "2026-12-01T12:45:22.508469415Z"  # the input is left as it was


def test_the_config_is_written_one_way_whatever_order_its_keys_came_in() -> None:
    one = {"b": 1, "a": {"y": 2, "x": [3, 1]}}
    other = {"a": {"x": [3, 1], "y": 2}, "b": 1}
    assert config_bytes(one) == config_bytes(other) == b'{"a":{"x":[3,1],"y":2},"b":1}'
    assert rfc3339(315532800) == "1980-01-01T00:00:00Z"


def test_chain_ids_follow_the_oci_rule() -> None:
    first, second = chain_ids(["sha256:aa", "sha256:bb"])
    assert first == "sha256:aa" and second == sha256(b"sha256:aa sha256:bb")
    # the same layer twice still gets two names
    assert len(set(chain_ids(["sha256:aa", "sha256:aa"]))) == 2


def test_two_saves_of_one_image_built_at_different_times_become_the_same_bytes(tmp_path: Path) -> None:
    a = docker_save(tmp_path / "a.tar", created="2026-12-01T12:45:22Z", mtime=1796129122, folder="e0e98c")
    b = docker_save(tmp_path / "b.tar", created="2026-12-01T12:46:38Z", mtime=1796129198, folder="295176")
    tags = ("edgepack/rpi4:0123456789ab", "edgepack/rpi4:latest")
    first = reproducible_save(a, tmp_path / "a.out", epoch=EPOCH, tags=tags)
    second = reproducible_save(b, tmp_path / "b.out", epoch=EPOCH, tags=tags)
    assert first == second
    assert (tmp_path / "a.out").read_bytes() == (tmp_path / "b.out").read_bytes()


def test_the_rewritten_save_loads_as_an_image_whose_id_is_its_configs_digest(tmp_path: Path) -> None:
    saved = docker_save(tmp_path / "s.tar", created="2026-12-01T12:45:22Z", mtime=1796129122, folder="v1-")
    image_id = reproducible_save(saved, tmp_path / "out.tar", epoch=EPOCH, tags=["edgepack/rpi4:t"])
    with tarfile.open(tmp_path / "out.tar") as out:
        members = out.getmembers()
        (manifest,) = json.loads(out.extractfile("manifest.json").read())  # type: ignore[union-attr]
        cfg = out.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
        layers = [out.extractfile(name).read() for name in manifest["Layers"]]  # type: ignore[union-attr]
    assert image_id == sha256(cfg) and manifest["Config"] == f"{image_id[7:]}.json"
    assert manifest["RepoTags"] == ["edgepack/rpi4:t"]
    assert layers == [b"rootfs layer bytes", b"model layer bytes"]  # the layers are not touched
    diff_ids = json.loads(cfg)["rootfs"]["diff_ids"]
    assert manifest["Layers"] == [f"{c[7:]}/layer.tar" for c in chain_ids(diff_ids)]
    assert json.loads(cfg)["created"] == rfc3339(EPOCH)
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(EPOCH, 0, 0, "")}


def test_a_save_whose_manifest_and_config_disagree_is_refused(tmp_path: Path) -> None:
    saved = docker_save(tmp_path / "s.tar", created="2026-12-01T12:45:22Z", mtime=0, folder="x")
    broken = tmp_path / "broken.tar"
    with tarfile.open(saved) as src, tarfile.open(broken, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest[0]["Layers"] = manifest[0]["Layers"][:1]
                data = json.dumps(manifest).encode()
            add(dst, member.name, data, 0)
    with pytest.raises(InputError, match="holds 1 layers; its config names 2"):
        reproducible_save(broken, tmp_path / "out.tar", epoch=EPOCH, tags=[])


def test_buildx_can_build_every_layer_afresh() -> None:
    common: dict[str, Any] = {"context": Path("/c"), "dockerfile": Path("/d"), "platform": "linux/arm64",
                              "tags": ["t"], "labels": {}, "build_args": {}, "iidfile": None}  # fmt: skip
    argv = buildx_argv(**common, options=BuildxOptions(no_cache=True))
    assert "--no-cache" in argv and argv[-1] == "/c"
    assert "--no-cache" not in buildx_argv(**common)


# -- the layer tars of the build context ---------------------------------------------------------


def test_a_layer_tar_holds_the_tree_at_its_image_path_with_fixed_times_and_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    tree = tmp_path / "site-packages"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("x = 1\n")
    (tree / "mod.py").write_text("y = 2\n")
    (tmp_path / "ctx").mkdir()
    layer_tar(tmp_path / "ctx" / "deps.tar", at="usr/local/lib/python3.11/dist-packages", tree=tree)
    with tarfile.open(tmp_path / "ctx" / "deps.tar") as tar:
        members = tar.getmembers()
    site = "usr/local/lib/python3.11/dist-packages"
    assert [m.name for m in members] == [
        "usr", "usr/local", "usr/local/lib", "usr/local/lib/python3.11", site,
        f"{site}/mod.py", f"{site}/pkg", f"{site}/pkg/__init__.py",
    ]  # fmt: skip
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(EPOCH, 0, 0)}
    assert all(m.mode == 0o755 for m in members[:4])
    assert list((tmp_path / "ctx").iterdir()) == [tmp_path / "ctx" / "deps.tar"]  # no scratch left behind


def test_a_layer_tar_without_a_tree_still_makes_the_folder(tmp_path: Path) -> None:
    layer_tar(tmp_path / "deps.tar", at="usr/local/lib/python3.13/dist-packages", tree=None)
    with tarfile.open(tmp_path / "deps.tar") as tar:
        names = [(m.name, m.mode, m.isdir()) for m in tar.getmembers()]
    assert names[-1] == ("usr/local/lib/python3.13/dist-packages", 0o755, True) and len(names) == 5


# -- cross-built wheels -------------------------------------------------------------------------


def test_the_build_paths_are_mapped_out_of_the_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    target = load_target(Project(REPO), "rpi4")
    env = build_env(target, toolchain=Path("/tc"), sysroot=Path("/b/sysroot"), source=Path("/b/src/x-1.0"))
    assert env["CPPFLAGS"] == "-ffile-prefix-map=/b/src/x-1.0=. -ffile-prefix-map=/b/sysroot="
    assert env["SOURCE_DATE_EPOCH"] == str(EPOCH)
    spaced = prefix_map_flags(source=Path("/a b/src"), sysroot=Path("/s"))
    assert spaced == "'-ffile-prefix-map=/a b/src=.' -ffile-prefix-map=/s="  # setuptools splits it as a shell


def test_auditwheel_repairs_with_the_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert repair.tool_env()["SOURCE_DATE_EPOCH"] == "315532800"  # debian.rootfs's default, 1980-01-01
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    assert repair.tool_env()["SOURCE_DATE_EPOCH"] == str(EPOCH)


def test_a_wheel_is_rebuilt_for_another_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    target = load_target(Project(REPO), "rpi4")
    vad = load_recipe(REPO / "wheels", "webrtcvad")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    key = wheelhouse.entry_key(vad, strategy="cross", toolchain="gcc 12", target=target)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH + 1))
    assert key != wheelhouse.entry_key(vad, strategy="cross", toolchain="gcc 12", target=target)


def test_an_sdist_is_built_from_a_fresh_copy_of_its_one_top_folder(tmp_path: Path) -> None:
    sdist = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        add(tar, "demo-1.0/setup.py", b"# setup\n", 0)
    staged = stage_source(sdist, tmp_path / "scratch")
    assert staged == tmp_path / "scratch" / "unpacked" / "demo-1.0"
    assert (staged / "setup.py").read_text() == "# setup\n"


def test_a_source_folder_is_copied_so_its_build_leftovers_stay_out_of_the_cache(tmp_path: Path) -> None:
    source = tmp_path / "patched" / "src"
    source.mkdir(parents=True)
    (source / "setup.py").write_text("# patched\n")
    staged = stage_source(source, tmp_path / "scratch")
    (staged / "build").mkdir()  # what setuptools leaves where it builds
    assert (staged / "setup.py").read_text() == "# patched\n" and not (source / "build").exists()


def test_an_archive_with_two_top_folders_is_not_an_sdist(tmp_path: Path) -> None:
    sdist = tmp_path / "odd-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        add(tar, "one/setup.py", b"", 0)
        add(tar, "two/setup.py", b"", 0)
    with pytest.raises(InputError, match=r"odd-1\.0\.tar\.gz is not an sdist"):
        stage_source(sdist, tmp_path / "scratch")
