"""Unpack .deb files with Python alone: an ar archive holding two tarballs.

No dpkg on the host is needed and no maintainer script runs (the distroless
approach): the rootfs is the union of the packages' data.tar members.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from edgepack.errors import InputError

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
# Merged /usr (Debian 12+): the top-level dirs are symlinks into /usr, so a
# package's ./lib/... file lands in usr/lib/... as it would on a real system.
USRMERGE_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True)
class DebFile:
    """The two tarballs of a .deb, still compressed."""

    path: Path
    control_tar: tuple[str, bytes]
    data_tar: tuple[str, bytes]

    def control(self) -> str:
        """The package's ./control file (its stanza in the Packages index, roughly)."""
        with _open_tar(self.path, *self.control_tar) as tar:
            for member in tar:
                if member.isfile() and PurePosixPath(member.name).name == "control":
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return handle.read().decode("utf-8", errors="replace")
        raise InputError(f"reading {self.path.name} failed because it has no control file.")


def read_deb(path: Path) -> DebFile:
    """Split a .deb (ar archive) into its control and data tarballs."""
    blob = path.read_bytes()
    if not blob.startswith(_AR_MAGIC):
        raise InputError(f"reading {path} failed because it is not a .deb (ar) archive.")
    members: dict[str, tuple[str, bytes]] = {}
    offset = len(_AR_MAGIC)
    while offset + _AR_HEADER <= len(blob):
        header = blob[offset : offset + _AR_HEADER]
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip() or 0)
        start = offset + _AR_HEADER
        members[name.split(".tar")[0]] = (name, blob[start : start + size])
        offset = start + size + (size % 2)  # members are padded to an even offset
    if "control" not in members or "data" not in members:
        raise InputError(f"reading {path} failed because it lacks control.tar or data.tar.")
    return DebFile(path=path, control_tar=members["control"], data_tar=members["data"])


def _open_tar(deb: Path, name: str, data: bytes) -> tarfile.TarFile:
    if name.endswith(".zst"):
        # Python 3.11's tarfile has no zstd; Debian's own archive uses xz.
        raise InputError(
            f"unpacking {deb.name} failed because its {name} is zstd-compressed.",
            hint="Use Debian sources: Debian packages use xz.",
        )
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


@dataclass(frozen=True)
class PathFilter:
    """Which rootfs paths to leave out: glob patterns (``*`` also matches ``/``)."""

    drop: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # exceptions to ``drop``

    def wanted(self, rel: str) -> bool:
        def matches(patterns: tuple[str, ...]) -> bool:
            return any(fnmatchcase(rel, p) or fnmatchcase(rel, p + "/*") for p in patterns)

        return not matches(self.drop) or matches(self.keep)


def rootfs_path(member: str) -> str | None:
    """Where a data.tar member goes, relative to the rootfs; None to skip it."""
    parts = [p for p in PurePosixPath(member).parts if p not in ("/", ".")]
    if ".." in parts:
        raise InputError(f"unpacking failed because member {member!r} climbs out of the rootfs.")
    if not parts or (len(parts) == 1 and parts[0] in USRMERGE_DIRS):
        return None  # the root, and /bin, /lib...: rootfs.py makes them symlinks into /usr
    if parts[0] in USRMERGE_DIRS:
        parts.insert(0, "usr")
    return "/".join(parts)


def extract_deb(deb: DebFile, root: Path, *, paths: PathFilter) -> None:
    """Write the data.tar members of ``deb`` under ``root`` (later packages overwrite)."""
    with _open_tar(deb.path, *deb.data_tar) as tar:
        for member in tar:
            rel = rootfs_path(member.name)
            if rel is not None and paths.wanted(rel):
                _write_member(tar, member, root=root, rel=rel, deb=deb.path)


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, *, root: Path, rel: str, deb: Path) -> None:
    dest = root / rel
    _check_inside(root, dest.parent, deb=deb, rel=rel)
    make_folders(dest.parent)
    if member.isdir():
        if not dest.is_symlink():  # dpkg keeps a symlink where a package ships a folder
            dest.mkdir(exist_ok=True)
            dest.chmod(member.mode & 0o7777)
        return
    _make_room(dest, deb=deb, rel=rel)
    if member.issym():
        dest.symlink_to(member.linkname)
    elif member.islnk():
        # Hard links are dereferenced: the tar writer stores plain files.
        source = rootfs_path(member.linkname)
        if source is None or not (root / source).is_file():
            raise InputError(f"unpacking {deb.name} failed because hard link {rel} has no target.")
        shutil.copyfile(root / source, dest)
        dest.chmod(member.mode & 0o7777)
    elif member.isfile():
        handle = tar.extractfile(member)
        assert handle is not None  # a regular file always has data
        with handle, dest.open("wb") as out:
            shutil.copyfileobj(handle, out)
        dest.chmod(member.mode & 0o7777)
    # Device nodes and FIFOs are skipped: a container runtime provides /dev.


def make_folders(folder: Path) -> None:
    """mkdir -p with mode 0755 whatever the umask, so that the tar is the same on every host."""
    missing = []
    while not folder.exists() and not folder.is_symlink():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        path.chmod(0o755)


def _check_inside(root: Path, folder: Path, *, deb: Path, rel: str) -> None:
    # resolve() follows symlinks the packages created: an absolute one would
    # otherwise make a member land on the host, outside the rootfs.
    if not folder.resolve().is_relative_to(root.resolve()):
        raise InputError(f"unpacking {deb.name} failed because {rel} would be written outside the rootfs.")


def _make_room(dest: Path, *, deb: Path, rel: str) -> None:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        raise InputError(f"unpacking {deb.name} failed because {rel} is a folder in another package.")
