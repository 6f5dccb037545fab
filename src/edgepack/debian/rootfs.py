"""Assemble a distroless rootfs tar from locked .deb files.

The packages are unpacked without dpkg and without maintainer scripts; what
those scripts would have done and a container needs (accounts, /tmp, the
python3 symlink, bytecode) is done here, on the host, then everything is
written as a deterministic tar: same lock and inputs, same bytes.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepack.debian.control import parse_stanzas
from edgepack.debian.debfile import USRMERGE_DIRS, PathFilter, extract_deb, make_folders, read_deb
from edgepack.debian.lock import DebianLock, DebPackage
from edgepack.errors import ConfigError, InputError
from edgepack.fsutil import atomic_path
from edgepack.runner import Runner

# Documentation and translations are of no use on a board. Copyright files
# stay: the image redistributes (L)GPL binaries and must carry their licences.
# glibc's gconv modules (20 MB) serve iconv(3) only; UTF-8 and ASCII are built
# into glibc, and Python's codecs do not use iconv.
DROP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/lib/*-linux-*/gconv",
)
KEEP = ("usr/share/doc/*/copyright",)
# Links that Debian's maintainer scripts make with update-alternatives, which
# never run here: (the file a package ships, the name the loader looks for),
# from libblas3's and liblapack3's postinst. numpy links libblas.so.3.
ALTERNATIVES = (
    ("usr/lib/*-linux-*/blas/libblas.so.3", "libblas.so.3"),
    ("usr/lib/*-linux-*/lapack/liblapack.so.3", "liblapack.so.3"),
)
# 1980-01-01, the oldest date a zip file can hold; used when SOURCE_DATE_EPOCH is unset.
DEFAULT_EPOCH = 315532800
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PYTHON = re.compile(r"^3\.\d+$")
_NSSWITCH = "".join(
    f"{db}: files{' dns' if db == 'hosts' else ''}\n"
    for db in ("passwd", "group", "shadow", "hosts", "networks", "protocols", "services", "ethers", "rpc")
)


@dataclass(frozen=True)
class Account:
    """The unprivileged user the image runs as."""

    user: str
    uid: int

    @property
    def home(self) -> str:
        return f"home/{self.user}"


def build_rootfs_tar(
    lock: DebianLock,
    debs: Sequence[Path],
    *,
    out: Path,
    python: str,
    uid: int = 1000,
    user: str = "edge",
    runner: Runner | None = None,
    drop: Sequence[str] = DROP,
    keep: Sequence[str] = KEEP,
) -> None:
    """Unpack ``debs`` (in lock order), finish the tree, write ``out`` atomically.

    Bytecode is compiled by the host Python when it has the same major.minor as
    ``python`` (bytecode does not depend on the CPU), so that the first start
    under QEMU does not compile the stdlib; ``runner`` runs that step.
    ``drop`` and ``keep`` are glob patterns of rootfs paths left out, and of
    exceptions to them.
    """
    account = _account(user, uid)
    if not _PYTHON.match(python):
        raise ConfigError(f"python version {python!r} is not of the form 3.X.")
    if len(debs) != len(lock.packages):
        raise InputError(
            f"building the rootfs failed because {len(debs)} .deb files were given for "
            f"{len(lock.packages)} locked packages."
        )
    paths = PathFilter(drop=tuple(drop), keep=tuple(keep))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rootfs-", dir=out.parent) as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        for package, deb in zip(lock.packages, debs, strict=True):
            unpack_deb(package, deb, root=root, paths=paths)
        merge_usr(root)
        _link_alternatives(root)
        _write_accounts(root, account)
        _link_python(root, python)
        compile_bytecode(root, python, runner=runner or Runner(echo=False))
        with atomic_path(out) as tmp_out:
            write_tar(root, tmp_out, mtime=source_date_epoch(), account=account)
            tmp_out.chmod(0o644)  # mkstemp made it private; it is a build output


def _account(user: str, uid: int) -> Account:
    if not _USER.match(user) or user in ("root", "nobody"):
        raise ConfigError(f"user name {user!r} is not a valid unprivileged Linux user name.")
    if not 0 < uid < 65534:
        raise ConfigError(f"uid {uid} is not between 1 and 65533.")
    return Account(user=user, uid=uid)


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", str(DEFAULT_EPOCH))
    if not value.isdigit():
        raise ConfigError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds.")
    return int(value)


def unpack_deb(package: DebPackage, deb: Path, *, root: Path, paths: PathFilter) -> None:
    """Unpack one .deb after checking it is the package the lock names."""
    debfile = read_deb(deb)
    control = debfile.control()
    fields = next(parse_stanzas(control), {})
    if (fields.get("Package"), fields.get("Version")) != (package.name, package.version):
        raise InputError(
            f"building the rootfs failed because {deb} holds {fields.get('Package')} "
            f"{fields.get('Version')}, not {package.name} {package.version} as the lock says."
        )
    extract_deb(debfile, root, paths=paths)
    # What distroless images do instead of a dpkg database: vulnerability
    # scanners (trivy, syft, grype) read the installed packages from here.
    status = root / "var/lib/dpkg/status.d" / package.name
    make_folders(status.parent)
    status.write_text(control, encoding="utf-8")
    status.chmod(0o644)


def merge_usr(root: Path) -> None:
    """/bin, /sbin, /lib -> usr/...: the arm64 loader is /lib/ld-linux-aarch64.so.1."""
    for name in USRMERGE_DIRS:
        always = name in ("bin", "sbin", "lib")
        if always:
            make_folders(root / "usr" / name)
        if always or (root / "usr" / name).is_dir():
            (root / name).symlink_to(f"usr/{name}")


def _link_alternatives(root: Path) -> None:
    """What update-alternatives would do: multiarch/libblas.so.3 -> blas/libblas.so.3."""
    for pattern, name in ALTERNATIVES:
        for shipped in sorted(root.glob(pattern)):
            link = shipped.parent.parent / name
            if not link.exists() and not link.is_symlink():
                link.symlink_to(shipped.relative_to(link.parent))


def _write_accounts(root: Path, account: Account) -> None:
    """Users, groups and the folders that base-files and adduser would create."""
    nologin = "/usr/sbin/nologin"  # no login shell exists: the image has no shell at all
    files = {
        "etc/passwd": f"root:x:0:0:root:/root:{nologin}\n"
        f"{account.user}:x:{account.uid}:{account.uid}:{account.user}:/{account.home}:{nologin}\n"
        f"nobody:x:65534:65534:nobody:/nonexistent:{nologin}\n",
        "etc/group": f"root:x:0:\n{account.user}:x:{account.uid}:\nnogroup:x:65534:\n",
        "etc/nsswitch.conf": _NSSWITCH,
    }
    for rel, text in files.items():
        make_folders((root / rel).parent)
        (root / rel).write_text(text, encoding="utf-8")
        (root / rel).chmod(0o644)
    for rel, mode in (("tmp", 0o1777), ("root", 0o700), (account.home, 0o755)):
        make_folders(root / rel)
        (root / rel).chmod(mode)


def _link_python(root: Path, python: str) -> None:
    binary = root / f"usr/bin/python{python}"
    if not binary.is_file():
        raise ConfigError(
            f"building the rootfs failed because no locked package provides /usr/bin/python{python}.",
            hint=f"Add python{python}-minimal to the target's Debian roots, then refresh the lock.",
        )
    link = root / "usr/bin/python3"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(f"python{python}")


def compile_bytecode(root: Path, python: str, *, runner: Runner) -> None:
    """Precompile the stdlib with the host Python, when its bytecode matches the target's."""
    stdlib = root / f"usr/lib/python{python}"
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python or not stdlib.is_dir():
        return
    argv = [sys.executable, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash"]
    # -s/-p record /usr/lib/... in tracebacks rather than this temporary folder;
    # a fixed hash seed keeps frozenset constants in the same order: same bytes.
    argv += ["-s", str(root), "-p", "/", str(stdlib)]
    runner.run(argv, what="precompiling the Python stdlib", env={"PYTHONHASHSEED": "0"})


def write_tar(root: Path, out: Path, *, mtime: int, account: Account) -> None:
    """A tar of ``root``: sorted entries, fixed mtime, root-owned but the user's home."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel in _walk(root):
            info = _tarinfo(root / rel, rel, mtime=mtime, account=account)
            if info is None:
                continue
            if info.isreg():
                with (root / rel).open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def _walk(root: Path, rel: str = "") -> Iterator[str]:
    """Relative paths under ``root``, each folder before its content, names sorted."""
    with os.scandir(root / rel) as entries:
        children = sorted(entries, key=lambda entry: entry.name)
    for entry in children:
        child = f"{rel}/{entry.name}" if rel else entry.name
        yield child
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(root, child)


def _tarinfo(path: Path, rel: str, *, mtime: int, account: Account) -> tarfile.TarInfo | None:
    st = os.lstat(path)
    info = tarfile.TarInfo(rel)
    info.mtime = mtime
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(path.readlink()), 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    else:
        return None
    owned = rel == account.home or rel.startswith(account.home + "/")
    info.uid = info.gid = account.uid if owned else 0
    info.uname = info.gname = account.user if owned else "root"
    return info
