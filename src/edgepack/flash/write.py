"""Write an image to a card, refusing the disks one must never overwrite.

The device is described by ``lsblk -J -b`` (through the Runner) and judged by
pure code (``check``, unit-tested on lsblk JSON): not a whole disk, the disk
holding / or any mounted partition, a non-removable disk without --force, a
disk smaller than the image: refused. Then its model and size are shown and
confirmed, the image is written with fsync, read back and compared by sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepack.errors import EdgepackError, InputError
from edgepack.runner import Runner

LSBLK_COLUMNS = "NAME,PATH,SIZE,RM,TYPE,MOUNTPOINTS,MODEL,TRAN,PKNAME"
BLOCK = 4 << 20


class UnsafeDeviceError(EdgepackError):
    """The device must not be written (system disk, mounted, too small, not removable)."""

    exit_code = 6


@dataclass(frozen=True)
class Device:
    path: str
    size: int
    removable: bool
    kind: str  # lsblk TYPE: disk, part, loop, rom...
    model: str
    mounts: tuple[str, ...]  # mount points of the device and its partitions

    def describe(self) -> str:
        kind = "removable" if self.removable else "fixed"
        return f"{self.path} ({self.model or 'no model'}, {self.size / 1e9:.1f} GB, {kind})"


def lsblk_argv(device: str) -> list[str]:
    return ["lsblk", "-J", "-b", "-o", LSBLK_COLUMNS, device]


def parse_lsblk(text: str) -> Device:
    """The first block device of ``lsblk -J`` output, with every mount point below it."""
    node = json.loads(text)["blockdevices"][0]
    return Device(path=node["path"], size=int(node["size"]), removable=_flag(node["rm"]), kind=node["type"],
                  model=(node.get("model") or "").strip(), mounts=tuple(sorted(_mounts(node))))  # fmt: skip


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")


def _mounts(node: dict[str, Any]) -> set[str]:
    found = {m for m in node.get("mountpoints") or [] if m}
    for child in node.get("children") or []:
        found |= _mounts(child)
    return found


def check(device: Device, *, image_bytes: int, force: bool) -> None:
    """Raise UnsafeDeviceError unless ``device`` may receive an image of ``image_bytes``."""
    if device.kind not in ("disk", "loop"):
        raise UnsafeDeviceError(
            f"writing to {device.path} refused: it is a {device.kind}, not a whole disk.",
            hint="Give the card's disk (e.g. /dev/sdb or /dev/mmcblk0), not a partition.",
        )
    if "/" in device.mounts:
        raise UnsafeDeviceError(f"writing to {device.path} refused: it holds the running system (/).")
    if device.mounts:
        raise UnsafeDeviceError(
            f"writing to {device.path} refused: it is mounted at {', '.join(device.mounts)}.",
            hint=f"Unmount it first (umount {' '.join(device.mounts)}).",
        )
    if device.size < image_bytes:
        raise UnsafeDeviceError(
            f"writing to {device.path} refused: it holds {device.size} bytes, the image needs {image_bytes}."
        )
    if not device.removable and not force:
        raise UnsafeDeviceError(
            f"writing to {device.path} refused: it is not a removable disk ({device.describe()}).",
            hint="If it really is the card (a card reader seen as a fixed disk), add --force.",
        )


def resolve(device: str, *, runner: Runner) -> Device:
    try:
        mode = Path(device).stat().st_mode
    except FileNotFoundError:
        raise InputError(f"writing the card failed because {device} does not exist.") from None
    if not stat.S_ISBLK(mode):
        raise UnsafeDeviceError(f"writing to {device} refused: it is not a block device.")
    result = runner.run(lsblk_argv(device), what=f"describing {device} (lsblk)", mutates=False)
    return parse_lsblk(result.stdout)


def write_image(
    image: Path, device: str, *, runner: Runner, force: bool, confirm: Callable[[str], bool]
) -> str:
    """Check, confirm, write, verify; return the sha256 both sides have."""
    if not image.is_file():
        raise InputError(f"writing the card failed because the image {image} does not exist.",
                         hint="Build it first: edgepack flash.image --target NAME")  # fmt: skip
    size = image.stat().st_size
    target = resolve(device, runner=runner)
    check(target, image_bytes=size, force=force)
    if not confirm(
        f"Write {image.name} ({size / 1e9:.2f} GB) to {target.describe()}? Everything on it is lost."
    ):
        raise EdgepackError("writing the card was cancelled; nothing was written.")
    if runner.dry_run:
        return ""
    written = _copy(image, Path(target.path))
    read_back = _hash_prefix(Path(target.path), size)
    if read_back != written:
        raise EdgepackError(
            f"verifying {target.path} failed: read back sha256 {read_back[:16]}…, written {written[:16]}….",
            hint="The card may be faulty or counterfeit (smaller than it claims): try another one.",
        )
    return written


def _copy(image: Path, device: Path) -> str:
    digest = hashlib.sha256()
    with image.open("rb") as src, device.open("r+b", buffering=0) as dst:
        while block := src.read(BLOCK):
            digest.update(block)
            dst.write(block)
        os.fsync(dst.fileno())
    return digest.hexdigest()


def _hash_prefix(device: Path, size: int) -> str:
    """sha256 of the first ``size`` bytes, read past the page cache (O_DIRECT where the device allows)."""
    _drop_cache(device)
    digest = hashlib.sha256()
    with device.open("rb", buffering=0) as src:
        left = size
        while left and (block := src.read(min(BLOCK, left))):
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def _drop_cache(device: Path) -> None:
    # Read back what the device holds, not what the page cache remembers writing.
    fd = os.open(device, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
