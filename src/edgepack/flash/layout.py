"""The card's layout: partitions, fixed identifiers and the boot files' text.

Everything here is pure: a target's ``sdcard:`` section and the sizes of the
trees become offsets, identifiers and file contents. Identifiers (disk id,
filesystem UUID, FAT volume id, ext4 hash seed) are derived from the target's
name, so that two builds of the same inputs give the same bytes, and two
targets never share a UUID.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from edgepack.config import Project, SdcardConfig, Target
from edgepack.errors import ConfigError, InputError

MIB = 1 << 20
SECTOR = 512
# The first partition starts at 4 MiB, on an erase-block boundary of most SD cards.
FIRST_LBA = 4 * MIB // SECTOR


def require_sdcard(target: Target, project: Project) -> SdcardConfig:
    """The target's ``sdcard:`` section, or a ConfigError naming its file and the key."""
    if target.sdcard is None:
        path = project.targets_dir / f"{target.name}.yaml"
        raise ConfigError(
            f"{path}: target '{target.name}' has no SD-card layout (missing key 'sdcard').",
            hint="Add an 'sdcard:' section (see targets/rpi4.yaml), or pick a target that has one.",
        )
    return target.sdcard


@dataclass(frozen=True)
class Ids:
    """Fixed identifiers of one target's card."""

    disk_id: int  # MBR disk signature: PARTUUIDs read <disk_id>-01, -02
    fat_volume_id: int
    root_uuid: str
    hash_seed: str

    @classmethod
    def of(cls, target: Target) -> Ids:
        seed = hashlib.sha256(f"edgepack-sdcard:{target.name}".encode()).digest()
        return cls(
            disk_id=int.from_bytes(seed[0:4], "little") or 1,
            fat_volume_id=int.from_bytes(seed[4:8], "little"),
            root_uuid=str(uuid.UUID(bytes=seed[8:24], version=4)),
            hash_seed=str(uuid.UUID(bytes=seed[16:32], version=4)),
        )


@dataclass(frozen=True)
class Geometry:
    """Two partitions: FAT32 boot, then ext4 root; sizes in bytes."""

    boot_bytes: int
    root_bytes: int

    @property
    def boot_offset(self) -> int:
        return FIRST_LBA * SECTOR

    @property
    def root_offset(self) -> int:
        return self.boot_offset + self.boot_bytes

    @property
    def total_bytes(self) -> int:
        return self.root_offset + self.root_bytes


def geometry(card: SdcardConfig, *, root_content_bytes: int, target: str) -> Geometry:
    """Size the root filesystem to its content plus ~10% and the headroom; refuse what the card cannot hold.

    The +10% covers ext4's own metadata (inode tables, journal, block rounding).
    """
    root_mb = -(-root_content_bytes * 11 // 10 // MIB) + card.root_headroom_mb
    geo = Geometry(boot_bytes=card.boot_mb * MIB, root_bytes=root_mb * MIB)
    if geo.total_bytes > card.card_mb * MIB:
        raise InputError(
            f"building the SD-card image of {target} failed because it needs {geo.total_bytes // MIB} MiB "
            f"and the declared card holds {card.card_mb} MiB (sdcard.card_mb).",
            hint="Declare a larger card, lower sdcard.root_headroom_mb, or drop more from the rootfs.",
        )
    return geo


def cmdline_txt(card: SdcardConfig, ids: Ids) -> str:
    # root=UUID is resolved by the initramfs (busybox findfs): the same line boots
    # /dev/mmcblk0p2 on the board and /dev/vda2 under QEMU.
    return f"{card.cmdline} root=UUID={ids.root_uuid}\n"


def config_txt(card: SdcardConfig) -> str:
    return "".join(f"{line}\n" for line in card.config_txt)


def fstab(ids: Ids) -> str:
    # Pass 0: the image has no fsck (e2fsprogs is not installed).
    return (
        f"UUID={ids.root_uuid} / ext4 rw,noatime 0 0\n"
        f"PARTUUID={ids.disk_id:08x}-01 /boot/firmware vfat rw,noatime,umask=0022 0 0\n"
    )


def mbr(geo: Geometry, ids: Ids) -> bytes:
    """The first sector: disk signature and two primary partitions (FAT32 LBA 0x0c, Linux 0x83).

    Written here rather than by sfdisk on the image: 40 lines of struct
    packing, no tool version in the bytes.
    """
    sector = bytearray(SECTOR)
    sector[440:444] = ids.disk_id.to_bytes(4, "little")
    entries = ((0x0C, geo.boot_offset, geo.boot_bytes), (0x83, geo.root_offset, geo.root_bytes))
    for index, (kind, offset, size) in enumerate(entries):
        entry = 446 + 16 * index
        # CHS fields set to the LBA-only marker (fe ff ff); firmware and kernels use the LBA fields.
        sector[entry : entry + 16] = (
            bytes([0x80 if index == 0 else 0x00, 0xFE, 0xFF, 0xFF, kind, 0xFE, 0xFF, 0xFF])
            + (offset // SECTOR).to_bytes(4, "little")
            + (size // SECTOR).to_bytes(4, "little")
        )
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)
