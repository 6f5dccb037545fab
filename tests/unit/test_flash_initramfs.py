"""The handmade initramfs: module load order from modules.dep, a deterministic newc cpio."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from edgepack.errors import InputError
from edgepack.flash import initramfs

MODULES_DEP = """\
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/mmc/host/sdhci-iproc.ko: kernel/drivers/mmc/host/sdhci-pltfm.ko \
kernel/drivers/mmc/host/sdhci.ko
kernel/drivers/mmc/host/sdhci-pltfm.ko: kernel/drivers/mmc/host/sdhci.ko
kernel/drivers/mmc/host/sdhci.ko:
"""


def test_dependencies_load_first_each_once() -> None:
    order = initramfs.module_order(MODULES_DEP, ["sdhci_iproc", "ext4", "virtio-blk", "jbd2"])
    assert order == [
        "kernel/drivers/mmc/host/sdhci.ko", "kernel/drivers/mmc/host/sdhci-pltfm.ko",
        "kernel/drivers/mmc/host/sdhci-iproc.ko", "kernel/lib/crc16.ko", "kernel/fs/mbcache.ko",
        "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko", "kernel/drivers/block/virtio_blk.ko",
    ]  # fmt: skip


def test_an_unknown_module_is_named() -> None:
    with pytest.raises(InputError, match="no module 'virtio_gpu'"):
        initramfs.module_order(MODULES_DEP, ["virtio_gpu"])


def read_newc(data: bytes) -> list[tuple[str, int, int, bytes]]:
    """(name, mode, mtime, data) of each entry: a minimal reader of the kernel's format."""
    out, pos = [], 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos : pos + filesize]
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out.append((name, fields[1], fields[5], body))


def test_the_archive_is_deterministic_and_complete(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    moddir = root / "usr/lib/modules/6.1.0-test"
    for line in MODULES_DEP.splitlines():
        module = moddir / line.split(":")[0]
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_bytes(module.name.encode())
    (moddir / "modules.dep").write_text(MODULES_DEP)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/busybox").write_bytes(b"\x7fELF busybox")
    one, two = tmp_path / "one.img", tmp_path / "two.img"
    for out in (one, two):
        initramfs.build(root, out, kernel="6.1.0-test", modules=["ext4", "virtio_blk"], mtime=315532800)
    assert one.read_bytes() == two.read_bytes()
    entries = read_newc(gzip.GzipFile(fileobj=io.BytesIO(one.read_bytes())).read())
    names = [e[0] for e in entries]
    assert names == sorted(names) and {
        "init",
        "bin/busybox",
        "bin/sh",
        "etc/modules.order",
        "dev",
        "newroot",
    } <= set(names)
    assert {e[2] for e in entries} == {315532800}
    by_name = {e[0]: e for e in entries}
    assert by_name["etc/modules.order"][3].decode().split() == [
        "kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko",
        "kernel/drivers/block/virtio_blk.ko"]  # fmt: skip
    assert by_name["bin/sh"][1] == 0o120777 and by_name["bin/sh"][3] == b"busybox"
    assert by_name["init"][1] == 0o100755 and by_name["init"][3].startswith(b"#!/bin/busybox sh")
