"""Filesystem images and the disk image, made without mounting anything.

* boot: ``mkfs.vfat --invariant`` with a fixed volume id, files copied in by
  mtools' ``mcopy -m`` (the files' own, clamped, mtimes);
* root: ``mkfs.ext4 -d`` from the assembled tree with a fixed UUID, hash
  seed and feature set (our mke2fs.conf), E2FSPROGS_FAKE_TIME for the
  superblock. e2fsprogs 1.47.0 copies each file's ctime from the host, which
  no one can set, and its atime, which mkfs's own reading of a folder moves
  (relatime), so debugfs then sets both in every created inode;
* disk: our MBR, then both partitions at their offsets (sparse file).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edgepack.errors import CommandError
from edgepack.flash import layout
from edgepack.runner import Runner

MKE2FS_CONF = Path(__file__).resolve().parents[1] / "resources" / "sdcard" / "mke2fs.conf"
FIRST_CREATED_INODE = 12  # 1-10 are reserved, 11 is lost+found: mkfs -d numbers the tree from 12


def tool(runner: Runner, name: str, *, package: str) -> str:
    """A system tool's path; /usr/sbin and /sbin are searched too (not on every user's PATH)."""
    for folder in (Path("/usr/sbin"), Path("/sbin")):
        if not shutil.which(name) and os.access(folder / name, os.X_OK):
            return str(folder / name)
    return runner.which(name, hint=f"Install it (Debian package: {package}), or run: edgepack doctor --fix")


def clamp_mtimes(root: Path, *, mtime: int) -> None:
    """Every entry's atime and mtime set to ``mtime`` (symlinks themselves, not their targets)."""
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.utime(Path(folder) / name, (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


def make_fat(
    out: Path, files: Sequence[Path], *, size: int, volume_id: int, label: str, runner: Runner
) -> None:
    """A FAT32 filesystem image of ``size`` bytes holding ``files`` at its root."""
    out.unlink(missing_ok=True)
    mkfs = tool(runner, "mkfs.vfat", package="dosfstools")
    runner.run([mkfs, "-F", "32", "-n", label, "-i", f"{volume_id:08x}", "--invariant", "-C", str(out),
                str(size // 1024)], what="mkfs.vfat of the boot partition")  # fmt: skip
    mcopy = tool(runner, "mcopy", package="mtools")
    # MTOOLS_SKIP_CHECK: the image is not a floppy of a standard geometry.
    runner.run([mcopy, "-i", str(out), "-m", "-o", *map(str, files), "::/"],
               what="copying the boot files (mcopy)", env={"MTOOLS_SKIP_CHECK": "1"})  # fmt: skip


def make_ext4(out: Path, tree: Path, *, size: int, ids: layout.Ids, mtime: int, runner: Runner) -> None:
    """An ext4 image of ``size`` bytes filled from ``tree``, the same bytes for the same tree."""
    out.unlink(missing_ok=True)
    clamp_mtimes(tree, mtime=mtime)
    env = {"E2FSPROGS_FAKE_TIME": str(mtime), "MKE2FS_CONFIG": str(MKE2FS_CONF)}
    mkfs = tool(runner, "mkfs.ext4", package="e2fsprogs")
    argv = [mkfs, "-q", "-F", "-t", "ext4", "-L", "rootfs", "-U", ids.root_uuid,
            "-E", f"hash_seed={ids.hash_seed},root_owner=0:0",
            "-d", str(tree), str(out), f"{size // 1024}k"]  # fmt: skip
    runner.run(argv, what="mkfs.ext4 of the root filesystem", env=env)
    used = _used_inodes(out, runner=runner)
    inodes = range(FIRST_CREATED_INODE, used + 1)
    script = "".join(
        f"set_inode_field <{i}> {field} @{mtime}\n" for i in inodes for field in ("ctime", "atime")
    )
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", dir=out.parent) as cmds:
        cmds.write(script)
        cmds.flush()
        runner.run(
            [tool(runner, "debugfs", package="e2fsprogs"), "-w", "-f", cmds.name, str(out)],
            what="fixing the inodes' ctime and atime (debugfs)",
            env=env,
        )


def _used_inodes(image: Path, *, runner: Runner) -> int:
    """Highest inode number in use: mkfs -d allocates them in order, so it is the count in use."""
    result = runner.run(
        [tool(runner, "dumpe2fs", package="e2fsprogs"), "-h", str(image)],
        what="reading the root filesystem's superblock",
    )
    fields = dict(re.findall(r"^(Inode count|Free inodes):\s+(\d+)$", result.stdout, flags=re.M))
    if len(fields) != 2:
        raise CommandError(
            "dumpe2fs printed no inode counts.", argv=result.argv, returncode=0, output=result.stdout
        )
    return int(fields["Inode count"]) - int(fields["Free inodes"])


def assemble_disk(out: Path, *, geo: layout.Geometry, ids: layout.Ids, boot: Path, root: Path) -> None:
    """MBR + boot partition + root partition; the gaps stay holes (sparse)."""
    with out.open("wb") as disk:
        disk.truncate(geo.total_bytes)
        disk.write(layout.mbr(geo, ids))
        for offset, part in ((geo.boot_offset, boot), (geo.root_offset, root)):
            disk.seek(offset)
            with part.open("rb") as source:
                while block := source.read(1 << 20):
                    disk.write(block)
