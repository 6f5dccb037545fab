"""The card's layout: identifiers, partition table, size checks, boot files, missing sdcard section."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from edgepack.config import Project, load_target
from edgepack.errors import ConfigError, InputError
from edgepack.flash import layout

REPO = Path(__file__).resolve().parents[2]


def test_ids_are_fixed_per_target_and_differ_between_targets(project: Project) -> None:
    rpi4 = load_target(project, "rpi4")
    other = dataclasses.replace(rpi4, name="rpi5")
    assert layout.Ids.of(rpi4) == layout.Ids.of(rpi4)
    assert layout.Ids.of(rpi4).root_uuid != layout.Ids.of(other).root_uuid
    assert uuid.UUID(layout.Ids.of(rpi4).root_uuid).version == 4


def test_mbr_has_the_signature_and_two_partitions() -> None:
    geo = layout.Geometry(boot_bytes=256 * layout.MIB, root_bytes=800 * layout.MIB)
    ids = layout.Ids(disk_id=0x12345678, fat_volume_id=1, root_uuid="", hash_seed="")
    mbr = layout.mbr(geo, ids)
    assert len(mbr) == 512 and mbr[510:] == b"\x55\xaa"
    assert mbr[440:444] == bytes.fromhex("78563412")
    boot, root = mbr[446:462], mbr[462:478]
    assert (boot[4], int.from_bytes(boot[8:12], "little"), int.from_bytes(boot[12:16], "little")) == (
        0x0C, 8192, 256 * 2048)  # fmt: skip
    assert (root[4], int.from_bytes(root[8:12], "little")) == (0x83, 8192 + 256 * 2048)
    assert int.from_bytes(root[12:16], "little") * 512 == 800 * layout.MIB
    assert mbr[478:510] == bytes(32)
    assert geo.total_bytes == 4 * layout.MIB + 1056 * layout.MIB


def test_an_image_larger_than_the_declared_card_is_refused(project: Project) -> None:
    card = layout.require_sdcard(load_target(project, "rpi4"), project)
    small = dataclasses.replace(card, card_mb=512)
    with pytest.raises(
        InputError, match=r"needs \d+ MiB and the declared card holds 512 MiB \(sdcard.card_mb\)"
    ):
        layout.geometry(small, root_content_bytes=600 * layout.MIB, target="rpi4")
    geo = layout.geometry(card, root_content_bytes=600 * layout.MIB, target="rpi4")
    assert geo.root_bytes == (660 + card.root_headroom_mb) * layout.MIB


def test_boot_files_name_the_root_by_uuid_and_load_the_initramfs(project: Project) -> None:
    target = load_target(project, "rpi4")
    card, ids = layout.require_sdcard(target, project), layout.Ids.of(target)
    assert layout.cmdline_txt(card, ids).endswith(f" root=UUID={ids.root_uuid}\n")
    assert "initramfs initrd.img followkernel\n" in layout.config_txt(card)
    assert f"PARTUUID={ids.disk_id:08x}-01 /boot/firmware vfat" in layout.fstab(ids)


def test_a_target_without_sdcard_section_names_its_file_and_the_key(project: Project) -> None:
    text = (project.targets_dir / "rpi4.yaml").read_text().split("\nsdcard:")[0]
    (project.targets_dir / "plain.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        layout.require_sdcard(load_target(project, "plain"), project)
    assert "plain.yaml" in info.value.message and "missing key 'sdcard'" in info.value.message
