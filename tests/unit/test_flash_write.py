"""flash.write's safety logic on lsblk JSON fixtures (no device is touched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.flash.write import UnsafeDeviceError, check, lsblk_argv, parse_lsblk

FIXTURES = Path(__file__).parent / "fixtures" / "lsblk"
IMAGE = 1_400_000_000


def device(name: str):  # type: ignore[no-untyped-def]
    return parse_lsblk((FIXTURES / f"{name}.json").read_text())


def test_lsblk_argv_asks_json_bytes_and_the_columns_checked() -> None:
    columns = "NAME,PATH,SIZE,RM,TYPE,MOUNTPOINTS,MODEL,TRAN,PKNAME"
    assert lsblk_argv("/dev/sdb") == ["lsblk", "-J", "-b", "-o", columns, "/dev/sdb"]


def test_parse_collects_the_partitions_mount_points() -> None:
    disk = device("system_disk")
    assert disk.mounts == ("/", "/boot/efi", "/home")
    assert (disk.removable, disk.kind, disk.model) == (False, "disk", "Samsung SSD 980")
    assert device("sd_card").model == "SD/MMC CRW"
    assert device("small_card").removable  # lsblk of util-linux < 2.37 prints "1"


def test_a_removable_unmounted_card_large_enough_is_accepted() -> None:
    check(device("sd_card"), image_bytes=IMAGE, force=False)


@pytest.mark.parametrize(
    ("fixture", "force", "words"),
    [
        ("system_disk", True, "holds the running system (/)"),
        ("sd_card_mounted", False, "mounted at /media/user/BOOT"),
        ("fixed_disk", False, "not a removable disk"),
        ("small_card", False, "holds 1073741824 bytes, the image needs 1400000000"),
        ("partition", True, "is a part, not a whole disk"),
    ],
)
def test_unsafe_devices_are_refused(fixture: str, force: bool, words: str) -> None:
    with pytest.raises(UnsafeDeviceError, match="refused") as info:
        check(device(fixture), image_bytes=IMAGE, force=force)
    assert words in info.value.message
    assert info.value.exit_code == 6


def test_force_allows_a_fixed_disk_only() -> None:
    check(device("fixed_disk"), image_bytes=IMAGE, force=True)
    with pytest.raises(UnsafeDeviceError, match="mounted"):
        check(device("sd_card_mounted"), image_bytes=IMAGE, force=True)
