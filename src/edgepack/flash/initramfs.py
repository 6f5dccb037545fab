"""A small handmade initramfs: busybox, a few kernel modules, an /init script.

Debian's arm64 kernel has the root device's drivers (virtio_blk, the Pi 4's
SD host controller) and ext4 as modules, so something must load them before
the root filesystem can be mounted. initramfs-tools would run on the board
(or under emulation) and stamp the time into the archive; this one is
written here as a newc cpio, entries sorted, owner root, one fixed mtime:
same inputs, same bytes.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import InputError

INIT = Path(__file__).resolve().parents[1] / "resources" / "sdcard" / "init"
_DIR, _FILE, _LINK = 0o040000, 0o100000, 0o120000


@dataclass(frozen=True)
class Entry:
    path: str  # relative, no leading slash
    mode: int  # with the file type bits
    data: bytes = b""  # a file's content, or a symlink's target


def module_order(modules_dep: str, wanted: Sequence[str]) -> list[str]:
    """Module files to insmod, dependencies first, each once.

    ``modules.dep`` lists a module's full dependency closure, the ones to load
    last first (modprobe loads them from the end of the line).
    """
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_name(path)] = path
    order: list[str] = []
    for name in wanted:
        module = by_name.get(_name(name))
        if module is None:
            raise InputError(
                f"building the initramfs failed because the kernel has no module '{name}' "
                "(sdcard.initramfs_modules).",
                hint="Check the name against the kernel's modules.dep (it may be built in: then drop it).",
            )
        for item in [*reversed(deps[module]), module]:
            if item not in order:
                order.append(item)
    return order


def _name(module: str) -> str:
    return Path(module).name.removesuffix(".ko").replace("-", "_")


def entries(rootfs: Path, *, kernel: str, modules: Sequence[str]) -> list[Entry]:
    """The archive's content, taken from the card's own rootfs (same kernel, same busybox)."""
    busybox = rootfs / "usr/bin/busybox"
    if not busybox.is_file():
        raise InputError("building the initramfs failed because the rootfs has no busybox (busybox-static).")
    moddir = rootfs / "usr/lib/modules" / kernel
    order = module_order((moddir / "modules.dep").read_text(), modules)
    items = [
        Entry("init", _FILE | 0o755, INIT.read_bytes()),
        Entry("bin/busybox", _FILE | 0o755, busybox.read_bytes()),
        Entry("bin/sh", _LINK | 0o777, b"busybox"),
        Entry("etc/modules.order", _FILE | 0o644, "".join(f"{m}\n" for m in order).encode()),
    ]
    items += [Entry(f"lib/modules/{m}", _FILE | 0o644, (moddir / m).read_bytes()) for m in order]
    folders = {str(Path(e.path).parent) for e in items} | {"dev", "proc", "sys", "newroot"}
    for folder in list(folders):
        folders.update(str(p) for p in Path(folder).parents)
    items += [Entry(f, _DIR | 0o755) for f in folders - {"."}]
    return sorted(items, key=lambda e: e.path)


def cpio_newc(items: Sequence[Entry], *, mtime: int) -> bytes:
    """The SVR4 "newc" format the kernel unpacks, with inode numbers in order."""
    out = io.BytesIO()
    for ino, entry in enumerate([*items, Entry("TRAILER!!!", 0)], start=1):
        name = entry.path.encode() + b"\0"
        nlink = 2 if entry.mode & 0o170000 == _DIR else 1
        fields = (ino, entry.mode, 0, 0, nlink, mtime, len(entry.data), 0, 0, 0, 0, len(name), 0)
        out.write(b"070701" + b"".join(b"%08x" % f for f in fields) + name)
        out.write(b"\0" * (-out.tell() % 4))
        out.write(entry.data)
        out.write(b"\0" * (-out.tell() % 4))
    return out.getvalue()


def build(rootfs: Path, out: Path, *, kernel: str, modules: Sequence[str], mtime: int) -> list[str]:
    """Write the gzip-compressed initramfs to ``out``; return the module files it holds."""
    items = entries(rootfs, kernel=kernel, modules=modules)
    # mtime=0 in the gzip header and no file name: the bytes depend on the content only.
    out.write_bytes(gzip.compress(cpio_newc(items, mtime=mtime), compresslevel=9, mtime=0))
    return [
        e.path.removeprefix("lib/modules/") for e in items if e.path.startswith("lib/modules/") and e.data
    ]
