"""edgepack.debian without the network or a subprocess: synthetic indexes and .deb files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from edgepack.debian import (
    DebianLock,
    DebPackage,
    build_rootfs_tar,
    fetch_debs,
    read_lock,
    resolve_lock,
    write_lock,
)
from edgepack.debian.apt import AptState
from edgepack.debian.closure import PackageIndex, resolve_closure
from edgepack.debian.control import Relation, compare_versions, parse_relations, parse_stanzas
from edgepack.debian.debfile import PathFilter, rootfs_path
from edgepack.errors import ConfigError, EdgepackError, InputError
from edgepack.locks.store import Store
from edgepack.runner import Result
from tests.conftest import FakeRunner, ok

SOURCES = ["deb http://deb.debian.org/debian bookworm main"]
HOST_PY = f"{sys.version_info.major}.{sys.version_info.minor}"


# --- control syntax -------------------------------------------------------------------------


def test_parse_stanzas_joins_continuations_and_keeps_asked_fields() -> None:
    text = (
        "Package: a\nVersion: 1\nDepends: b,\n c (>= 2)\nDescription: x\n more\n"
        "  \n"  # a separator line holding only blanks still separates
        "Package: b\nVersion: 2\n\n\n"
    )
    stanzas = list(parse_stanzas(text, keep=frozenset({"Package", "Depends"})))
    assert stanzas == [{"Package": "a", "Depends": "b,\n c (>= 2)"}, {"Package": "b"}]
    assert parse_relations(stanzas[0]["Depends"]) == ((Relation("b"),), (Relation("c", ">=", "2"),))


def test_parse_relations_alternatives_qualifiers_and_obsolete_ops() -> None:
    deps = parse_relations("a | b (= 1:2.0-1), python3:any (>= 3.2~), c (< 3), d [arm64]")
    assert deps == (
        (Relation("a"), Relation("b", "=", "1:2.0-1")),
        (Relation("python3", ">=", "3.2~"),),
        (Relation("c", "<=", "3"),),
        (Relation("d"),),
    )
    with pytest.raises(ValueError, match="not a package relation"):
        parse_relations("Not A Name")


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("2.36-9+deb12u14", "2.36-9+deb12u7", 1),  # numeric, not string, order
        ("1.0~rc1", "1.0", -1),  # ~ sorts before the end
        ("1:1.0", "2.0", 1),  # epoch first
        ("1.0", "1.0-0", 0),
        ("1.0a", "1.0+", -1),  # letters before other characters
        ("3.11.2-6+deb12u9", "3.11.2-6+deb12u9", 0),
    ],
)
def test_compare_versions_follows_dpkg(a: str, b: str, order: int) -> None:
    assert compare_versions(a, b) == order
    assert compare_versions(b, a) == -order


# --- closure --------------------------------------------------------------------------------


def stanza(name: str, version: str = "1", **fields: str) -> str:
    """A Packages stanza; keyword names use _ for - (pre_depends -> Pre-Depends)."""
    sha = hashlib.sha256(f"{name}={version}".encode()).hexdigest()
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {fields.pop('arch', 'arm64')}"]
    lines += [
        f"{key.replace('_', '-').title().replace('Sha256', 'SHA256')}: {v}" for key, v in fields.items()
    ]
    lines += [f"Filename: pool/main/{name}_{version}.deb", "Size: 10", f"SHA256: {sha}"]
    return "\n".join(lines) + "\n"


def index_of(*stanzas: str) -> PackageIndex:
    return PackageIndex.from_stanzas(parse_stanzas("\n".join(stanzas)), arch="arm64")


def names(index: PackageIndex, roots: list[str], exclude: list[str] = []) -> list[str]:  # noqa: B006
    return [f"{c.name}={c.version}" for c in resolve_closure(index, roots=roots, exclude=exclude)]


def test_index_keeps_target_arch_and_all_highest_version_first() -> None:
    index = index_of(
        stanza("libc6", "2.36-9+deb12u7"),
        stanza("libc6", "2.36-9+deb12u14"),
        stanza("libc6", "2.36-9+deb12u14"),  # the same version in two suites counts once
        stanza("libc6", "9.9", arch="armhf"),
        stanza("tzdata", "2025b", arch="all"),
    )
    assert [c.version for c in index.packages["libc6"]] == ["2.36-9+deb12u14", "2.36-9+deb12u7"]
    assert "tzdata" in index.packages


def test_closure_follows_depends_and_pre_depends_but_not_recommends() -> None:
    index = index_of(
        stanza("py", depends="libpy (= 2), zlib", pre_depends="libc6", recommends="ca-certificates"),
        stanza("libpy", "3"),
        stanza("libpy", "2", depends="libc6 (>= 2)"),
        stanza("zlib", depends="libc6"),
        stanza("libc6", "2.36", depends="libgcc-s1"),
        stanza("libgcc-s1"),
        stanza("ca-certificates"),
    )
    assert names(index, ["py"]) == ["libc6=2.36", "libgcc-s1=1", "libpy=2", "py=1", "zlib=1"]


def test_closure_alternatives_take_the_first_available_not_excluded() -> None:
    index = index_of(
        stanza("stdlib", depends="media-types | mime-support, readline-common"),
        stanza("mime-support"),
        stanza("readline-common", depends="dpkg (>= 1.15) | install-info"),
        stanza("dpkg", "1.21", depends="tar"),
        stanza("install-info"),
        stanza("tar"),
    )
    # media-types is not in the sources: the next alternative is taken.
    assert names(index, ["stdlib"]) == [
        "dpkg=1.21",
        "mime-support=1",
        "readline-common=1",
        "stdlib=1",
        "tar=1",
    ]
    assert names(index, ["stdlib"], ["dpkg"]) == [
        "install-info=1",
        "mime-support=1",
        "readline-common=1",
        "stdlib=1",
    ]
    # All alternatives excluded: the dependency is dropped, not an error.
    assert names(index, ["stdlib"], ["dpkg", "install-info"]) == [
        "mime-support=1",
        "readline-common=1",
        "stdlib=1",
    ]


def test_closure_virtual_packages_prefer_priority_and_versioned_provides() -> None:
    index = index_of(
        stanza("tool", depends="awk, debconf-2.0, libfoo (>= 2)"),
        stanza("gawk", provides="awk", priority="optional"),
        stanza("mawk", provides="awk", priority="required"),
        stanza("cdebconf", provides="debconf-2.0"),
        stanza("old-foo", provides="libfoo (= 1)"),
        stanza("new-foo", provides="libfoo (= 2)"),
        stanza("bare-foo", provides="libfoo"),  # unversioned: cannot meet (>= 2)
    )
    assert names(index, ["tool"]) == ["cdebconf=1", "mawk=1", "new-foo=1", "tool=1"]


def test_closure_missing_dependency_names_it_and_the_chain() -> None:
    index = index_of(stanza("py", depends="libpy"), stanza("libpy", depends="libssl3 (>= 3)"))
    with pytest.raises(ConfigError) as info:
        resolve_closure(index, roots=["py"], exclude=[])
    assert "py -> libpy depends on 'libssl3 (>= 3)'" in info.value.message
    with pytest.raises(ConfigError, match="'nope' was not found"):
        resolve_closure(index, roots=["nope"], exclude=[])
    with pytest.raises(ConfigError, match="both a root and excluded"):
        resolve_closure(index, roots=["py"], exclude=["py"])


def test_closure_conflicting_exact_versions_is_an_error() -> None:
    index = index_of(
        stanza("a", depends="lib (= 1)"),
        stanza("b", depends="lib (= 2)"),
        stanza("lib", "1"),
        stanza("lib", "2"),
    )
    with pytest.raises(ConfigError, match="lib 1 is already selected"):
        resolve_closure(index, roots=["a", "b"], exclude=[])


# --- lock -----------------------------------------------------------------------------------


def package(name: str, data: bytes = b"", version: str = "1") -> DebPackage:
    return DebPackage(
        name, version, "arm64", hashlib.sha256(data or name.encode()).hexdigest(), f"pool/{name}.deb", 9
    )


LOCK = DebianLock(
    suite="bookworm",
    arch="arm64",
    roots=("python3.11-minimal", "libc6"),
    exclude=("perl-base", "dpkg"),
    packages=(package("libc6"), package("python3.11-minimal")),
)


def test_lock_round_trip_is_canonical(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "rpi4.json"
    write_lock(path, LOCK)
    data = json.loads(path.read_text())
    assert data["roots"] == ["libc6", "python3.11-minimal"]  # sorted
    assert data["exclude"] == ["dpkg", "perl-base"]
    loaded = read_lock(path)
    assert loaded.packages == LOCK.packages
    assert loaded.digest() == LOCK.digest()
    shuffled = DebianLock(**{**LOCK.__dict__, "packages": LOCK.packages[::-1], "roots": LOCK.roots[::-1]})
    assert shuffled.digest() == LOCK.digest()
    newer = DebianLock(**{**LOCK.__dict__, "packages": (package("libc6", version="2"),)})
    assert newer.digest() != LOCK.digest()


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ('{"format": 1}', "lacks arch, exclude, packages, roots, suite"),
        ("PATCH_SHA", "is not a sha256"),
        ("PATCH_KEY", "unknown keys colour"),
        ("PATCH_EMPTY", "lists no packages"),
    ],
)
def test_read_lock_errors_name_the_file_and_the_refresh(
    tmp_path: Path, content: str | None, cause: str
) -> None:
    path = tmp_path / "rpi4.lock.json"
    if content is not None:
        write_lock(path, LOCK)
        data = json.loads(path.read_text())
        if content == "PATCH_SHA":
            data["packages"][0]["sha256"] = "abc"
        elif content == "PATCH_KEY":
            data["packages"][1]["colour"] = "blue"
        elif content == "PATCH_EMPTY":
            data["packages"] = []
        path.write_text(content if not content.startswith("PATCH") else json.dumps(data))
    with pytest.raises(InputError) as info:
        read_lock(path, target="rpi4")
    assert str(path) in info.value.message
    assert cause in info.value.message
    assert info.value.hint.endswith("run: edgepack lock --target rpi4")


# --- apt with a private state ---------------------------------------------------------------


def option(argv: list[str], key: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(key + "="))


def serves(index_text: str) -> tuple:
    """A handler for `apt-get update` that leaves ``index_text`` as a Packages list."""

    def answer(argv: list[str]) -> Result:
        lists = Path(option(argv, "Dir::State::Lists"))
        (lists / "deb.debian.org_debian_dists_bookworm_main_binary-arm64_Packages").write_text(index_text)
        return Result(argv, 0, "", "")

    return (lambda argv: argv[0] == "apt-get" and argv[-1] == "update", answer)


def test_apt_options_keep_the_host_state_untouched(tmp_path: Path) -> None:
    argv = AptState(root=tmp_path, arch="arm64").argv("update")
    assert argv[0] == "apt-get" and argv[-1] == "update"
    assert option(argv, "Dir::State::status") == str(tmp_path / "status")
    assert option(argv, "Dir::Etc::SourceList") == str(tmp_path / "etc/sources.list")
    assert option(argv, "APT::Architectures") == "arm64"
    assert option(argv, "Acquire::GzipIndexes") == "false"
    folders = [arg.split("=", 1)[1] for arg in argv if arg.startswith("Dir::")]
    assert len(folders) == 7 and all(folder.startswith(str(tmp_path)) for folder in folders)


def test_resolve_lock_reads_the_private_index(tmp_path: Path, fake_runner: FakeRunner) -> None:
    fake_runner.on(*serves(stanza("py", depends="libc6") + "\n" + stanza("libc6", "2.36")))
    lock = resolve_lock(
        suite="bookworm",
        arch="arm64",
        roots=["py"],
        exclude=["dpkg"],
        sources=SOURCES,
        runner=fake_runner,
        workdir=tmp_path,
    )
    assert [(p.name, p.version, p.filename) for p in lock.packages] == [
        ("libc6", "2.36", "pool/main/libc6_2.36.deb"),
        ("py", "1", "pool/main/py_1.deb"),
    ]
    assert (tmp_path / "apt/etc/sources.list").read_text() == SOURCES[0] + "\n"
    assert (tmp_path / "apt/status").read_text() == ""
    # The host's apt.conf.d (hooks, GzipIndexes) is not read: APT_CONFIG moves the parts.
    apt_conf = AptState(root=tmp_path / "apt", arch="arm64").env()["APT_CONFIG"]
    assert Path(apt_conf).read_text() == f'Dir::Etc::Parts "{tmp_path}/apt/etc/apt.conf.d";\n'


@pytest.mark.parametrize(
    ("suite", "sources", "cause"),
    [
        ("trixie", SOURCES, "no Debian source is for suite 'trixie'"),
        ("bookworm", ["http://deb.debian.org/debian bookworm main"], "not a one-line apt source"),
    ],
)
def test_resolve_lock_rejects_mismatched_sources(
    tmp_path: Path, fake_runner: FakeRunner, suite: str, sources: list[str], cause: str
) -> None:
    with pytest.raises(ConfigError, match=cause):
        resolve_lock(
            suite=suite,
            arch="arm64",
            roots=["py"],
            exclude=[],
            sources=sources,
            runner=fake_runner,
            workdir=tmp_path,
        )
    assert fake_runner.calls == []


# --- .deb files and the rootfs tar ----------------------------------------------------------


def tar_bytes(entries: Mapping[str, bytes | str], *, compression: str) -> bytes:
    """A tarball: bytes are files, "->x" a symlink to x, "=>x" a hard link to x, "/" a folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content == "/":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type = tarfile.SYMTYPE if content.startswith("->") else tarfile.LNKTYPE
                info.linkname = content[2:]
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755 if "bin/" in name else 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def make_deb(path: Path, name: str, data: Mapping[str, bytes | str], *, version: str = "1") -> DebPackage:
    control = f"Package: {name}\nVersion: {version}\nArchitecture: arm64\n".encode()
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", tar_bytes({"./control": control}, compression="gz")),
        ("data.tar.xz", tar_bytes(data, compression="xz")),
    ]
    blob = b"!<arch>\n"
    for member, content in members:
        blob += f"{member:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode()
        blob += content + (b"\n" if len(content) % 2 else b"")
    path.write_bytes(blob)
    return DebPackage(name, version, "arm64", hashlib.sha256(blob).hexdigest(), f"pool/{name}.deb", len(blob))


PY = f"python{HOST_PY}"


def synthetic_debs(folder: Path, *, python: str = PY) -> tuple[DebianLock, list[Path]]:
    folder.mkdir(exist_ok=True)
    specs = {
        "libc6": {
            "./": "/",
            "./lib/": "/",
            "./lib/ld-linux-aarch64.so.1": "->aarch64-linux-gnu/ld-linux-aarch64.so.1",
            "./lib/aarch64-linux-gnu/ld-linux-aarch64.so.1": b"\x7fELF loader",
            "./usr/lib/aarch64-linux-gnu/gconv/UTF-16.so": b"gconv",
            "./usr/share/doc/libc6/copyright": b"LGPL",
            "./usr/share/doc/libc6/changelog.Debian.gz": b"log",
            "./usr/share/locale/de/LC_MESSAGES/libc.mo": b"mo",
        },
        "python-min": {
            f"./usr/bin/{python}": b"\x7fELF python",
            f"./usr/bin/{python}-hardlink": f"=>./usr/bin/{python}",
            "./usr/share/man/man1/python.1.gz": b"man",
        },
    }
    packages, debs = [], []
    for name, data in specs.items():
        debs.append(folder / f"{name}.deb")
        packages.append(make_deb(debs[-1], name, data))
    return DebianLock("bookworm", "arm64", ("python-min",), (), tuple(packages)), debs


def members(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_rootfs_paths_follow_merged_usr_and_refuse_climbing() -> None:
    assert rootfs_path("./lib/aarch64-linux-gnu/libc.so.6") == "usr/lib/aarch64-linux-gnu/libc.so.6"
    assert rootfs_path("./bin/") is None  # merged /usr: a symlink, whatever a package ships
    assert rootfs_path("./lib64") is None
    assert rootfs_path("./") is None
    with pytest.raises(InputError, match="climbs out"):
        rootfs_path("./usr/../../etc/passwd")
    paths = PathFilter(drop=("usr/share/doc", "usr/lib/*-linux-*/gconv"), keep=("usr/share/doc/*/copyright",))
    assert not paths.wanted("usr/share/doc/libc6/changelog.gz")
    assert paths.wanted("usr/share/doc/libc6/copyright")
    assert not paths.wanted("usr/lib/aarch64-linux-gnu/gconv/UTF-16.so")
    assert paths.wanted("usr/share/docs")


def test_rootfs_tar_is_deterministic_and_distroless(
    tmp_path: Path, fake_runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    lock, debs = synthetic_debs(tmp_path / "debs", python="python3.99")
    first, second = tmp_path / "one" / "rootfs.tar", tmp_path / "two" / "rootfs.tar"
    build_rootfs_tar(lock, debs, out=first, python="3.99", uid=1234, user="kws", runner=fake_runner)
    previous = os.umask(0o002)  # nothing may depend on the umask
    try:
        build_rootfs_tar(lock, debs, out=second, python="3.99", uid=1234, user="kws", runner=fake_runner)
    finally:
        os.umask(previous)
    assert first.read_bytes() == second.read_bytes()
    assert fake_runner.calls == []  # the host is not Python 3.99: no bytecode step
    tree = members(first)
    assert list(tree) == sorted(tree, key=lambda name: name.split("/"))
    assert {m.mtime for m in tree.values()} == {1700000000}
    assert tree["lib"].issym() and tree["lib"].linkname == "usr/lib"
    assert tree["usr/lib/ld-linux-aarch64.so.1"].linkname == "aarch64-linux-gnu/ld-linux-aarch64.so.1"
    assert tree["usr/bin/python3"].linkname == "python3.99"
    assert tree["usr/bin/python3.99-hardlink"].isreg()  # hard links are dereferenced
    assert tree["tmp"].mode == 0o1777
    assert (tree["home/kws"].uid, tree["home/kws"].uname, tree["etc/passwd"].uid) == (1234, "kws", 0)
    assert "usr/share/doc/libc6/copyright" in tree
    kept = "\n".join(tree)
    assert not re.search(r"changelog|/man/|/locale/|gconv|bin/sh", kept)
    assert "var/lib/dpkg/status.d/libc6" in tree
    with tarfile.open(first) as tar:
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
    assert "kws:x:1234:1234:kws:/home/kws:/usr/sbin/nologin\n" in passwd


def test_rootfs_precompiles_the_stdlib_with_a_matching_host_python(
    tmp_path: Path, fake_runner: FakeRunner
) -> None:
    lock, debs = synthetic_debs(tmp_path / "debs")
    stdlib_deb = tmp_path / "debs" / "stdlib.deb"
    stdlib = make_deb(stdlib_deb, "stdlib", {f"./usr/lib/{PY}/os.py": b"import sys\n"})
    lock = DebianLock(lock.suite, lock.arch, lock.roots, (), (*lock.packages, stdlib))
    fake_runner.on(lambda argv: "compileall" in argv, ok())
    build_rootfs_tar(
        lock, [*debs, stdlib_deb], out=tmp_path / "rootfs.tar", python=HOST_PY, runner=fake_runner
    )
    (argv,) = fake_runner.calls
    assert argv[:3] == [sys.executable, "-m", "compileall"]
    assert argv[argv.index("--invalidation-mode") + 1] == "unchecked-hash"
    assert argv[argv.index("-p") + 1] == "/"  # tracebacks name /usr/lib/..., not the build folder
    assert argv[-1].endswith(f"/usr/lib/{PY}")


@pytest.mark.parametrize(
    ("kwargs", "error", "cause"),
    [
        ({"python": "3.99"}, ConfigError, "provides /usr/bin/python3.99"),
        ({"python": "three"}, ConfigError, "not of the form 3.X"),
        ({"user": "root"}, ConfigError, "not a valid unprivileged"),
        ({"uid": 0}, ConfigError, "uid 0"),
        ({"swap": True}, InputError, "holds python-min 1, not libc6 1"),
    ],
)
def test_rootfs_rejects_bad_inputs(tmp_path: Path, kwargs: dict, error: type, cause: str) -> None:
    lock, debs = synthetic_debs(tmp_path / "debs")
    if kwargs.pop("swap", False):
        debs = debs[::-1]
    options = {"python": HOST_PY, **kwargs}
    with pytest.raises(error, match=re.escape(cause)):
        build_rootfs_tar(lock, debs, out=tmp_path / "rootfs.tar", **options)
    assert not (tmp_path / "rootfs.tar").exists()


def test_dry_run_echoes_apt_and_changes_no_cache(tmp_path: Path, fake_runner: FakeRunner) -> None:
    fake_runner.dry_run = True
    lock = resolve_lock(
        suite="bookworm",
        arch="arm64",
        roots=["py"],
        exclude=[],
        sources=SOURCES,
        runner=fake_runner,
        workdir=tmp_path,
    )
    assert lock.packages == ()
    with pytest.raises(EdgepackError, match="lists no packages"):
        write_lock(tmp_path / "lock.json", lock)
    paths = fetch_debs(LOCK, sources=SOURCES, runner=fake_runner, store=Store(tmp_path / "store"))
    assert [call[-1] for call in fake_runner.calls] == ["update"]
    assert len(paths) == 2 and not (tmp_path / "store").exists()


def test_rootfs_refuses_to_write_through_a_symlink_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    debs = tmp_path / "debs"
    debs.mkdir()
    evil = make_deb(debs / "evil.deb", "evil", {"./usr/lib/x": f"->{outside}", "./usr/lib/x/owned": b"!"})
    lock = DebianLock("bookworm", "arm64", ("evil",), (), (evil,))
    with pytest.raises(InputError, match="usr/lib/x/owned would be written outside the rootfs"):
        build_rootfs_tar(lock, [debs / "evil.deb"], out=tmp_path / "rootfs.tar", python=HOST_PY)
    assert not outside.exists()
