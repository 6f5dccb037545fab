"""A slim target-architecture rootfs from Debian packages, built on the x86 host.

No emulation and no maintainer scripts (the distroless approach): apt, with a
private state, only downloads the index and the .deb files; the dependency
closure is resolved here so that no shell, perl, dpkg or apt comes along.

    lock = resolve_lock(suite=..., arch="arm64", roots=..., exclude=..., sources=..., runner=..., workdir=...)
    write_lock(path, lock)                       # committed; `edgepack lock`
    debs = fetch_debs(read_lock(path), sources=..., runner=..., store=...)
    build_rootfs_tar(lock, debs, out=..., python="3.11")
"""

from edgepack.debian.apt import fetch_debs, resolve_lock
from edgepack.debian.lock import DebianLock, DebPackage, read_lock, write_lock
from edgepack.debian.rootfs import build_rootfs_tar

__all__ = [
    "DebPackage",
    "DebianLock",
    "build_rootfs_tar",
    "fetch_debs",
    "read_lock",
    "resolve_lock",
    "write_lock",
]
