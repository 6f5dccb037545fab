"""The rpi4 SD-card image for real: built twice (same bytes), booted under QEMU, written to a loop device.

Budget on the 2-core machine: the card's rootfs tree ~1.5 min (cached in
build/cache between runs, like the container build's steps), each of the two
image assemblies ~4 min (mkfs, xz), the boot ~2.5-4 min, the write tests
seconds. The deps/model/app steps are the container build's, shared through
the repository's build/cache.
"""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepack.config import Project, SdcardConfig, load_target
from edgepack.flash import layout, qemu, write
from edgepack.flash import steps as flash_steps
from edgepack.fsutil import sha256_file
from edgepack.pipeline.context import Build
from edgepack.pipeline.steps import execute
from edgepack.runner import Runner

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "depmod", "qemu-system-aarch64", "losetup", "lsblk")
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHR0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVz edgepack-test"
HOSTNAME = "edge-card-test"


@pytest.fixture(scope="module", autouse=True)
def flash_tools() -> None:
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    missing = [tool for tool in TOOLS if shutil.which(tool, path=path) is None]
    if missing:
        message = f"SD-card tools missing: {', '.join(missing)} (run: edgepack doctor --fix)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Build, SdcardConfig, Path]:
    """The plan up to the card's rootfs tree (cached), then the image assembled twice from scratch."""
    proj = Project(REPO)
    target = load_target(proj, "rpi4")
    b = Build(target=target, project=proj, runner=Runner(echo=False), model=target.model)
    card = layout.require_sdcard(target, proj)
    records = execute(flash_steps.plan(b)[:-1], b.cache)
    tree = records[-1].outputs
    out = tmp_path_factory.mktemp("card")
    epoch = flash_steps.source_epoch(b)  # once: a commit between the two builds would move the default
    for name in ("one", "two"):
        flash_steps.make_image(
            Path(tree["tree"]), out / name, b=b, card=card, kernel=tree["kernel"], epoch=epoch
        )
    return b, card, out


def test_two_builds_are_the_same_bytes(built) -> None:
    _, card, out = built
    names = sorted(p.name for p in (out / "one").iterdir())
    stem = card.image_name
    assert names == sorted([f"{stem}.img", f"{stem}.img.sha256", f"{stem}.img.xz", f"{stem}.img.xz.sha256",
                            f"{stem}.rpi-imager.json"])  # fmt: skip
    same, different, _ = filecmp.cmpfiles(out / "one", out / "two", names, shallow=False)
    assert different == [] and sorted(same) == names


def test_outputs_agree_with_each_other(built) -> None:
    _, card, out = built
    image, xz = out / "one" / f"{card.image_name}.img", out / "one" / f"{card.image_name}.img.xz"
    entry = json.loads((out / "one" / f"{card.image_name}.rpi-imager.json").read_text())["os_list"][0]
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert entry["extract_sha256"] == digest and entry["extract_size"] == image.stat().st_size
    assert entry["image_download_sha256"] == hashlib.sha256(xz.read_bytes()).hexdigest()
    assert (out / "one" / f"{card.image_name}.img.sha256").read_text() == f"{digest}  {image.name}\n"
    assert image.stat().st_size <= card.card_mb * layout.MIB


def debugfs(partition: Path, request: str) -> str:
    result = subprocess.run(["debugfs", "-R", request, str(partition)], capture_output=True, text=True,
                            check=True)  # fmt: skip
    return result.stdout


@pytest.fixture(scope="module")
def root_partition(built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's second partition, at the offset its MBR gives."""
    _, card, out = built
    image = out / "one" / f"{card.image_name}.img"
    with image.open("rb") as disk:
        mbr = disk.read(512)
        start, sectors = (int.from_bytes(mbr[462 + o : 466 + o], "little") for o in (8, 12))
        assert mbr[462 + 4] == 0x83 and mbr[446 + 4] == 0x0C and mbr[510:] == b"\x55\xaa"
        part = tmp_path_factory.mktemp("root") / "root.ext4"
        disk.seek(start * 512)
        with part.open("wb") as sink:
            shutil.copyfileobj(disk, sink, length=1 << 20)
    with part.open("r+b") as sink:
        sink.truncate(sectors * 512)
    return part


def test_boot_partition_holds_what_the_firmware_reads(built) -> None:
    _, card, out = built
    spec = f"{out / 'one' / card.image_name}.img@@{layout.FIRST_LBA * layout.SECTOR}"
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    listing = subprocess.run(
        ["mdir", "-b", "-i", spec, "::/"], capture_output=True, text=True, check=True, env=env
    )
    names = {Path(line).name.lower() for line in listing.stdout.split()}
    wanted = {"start4.elf", "fixup4.dat", "vmlinuz", "initrd.img", "bcm2711-rpi-4-b.dtb", "config.txt"}
    assert wanted | {"cmdline.txt", "edgepack.conf"} <= names
    mtype = ["mtype", "-i", spec, "::/config.txt"]
    config = subprocess.run(mtype, capture_output=True, text=True, check=True, env=env).stdout
    assert "initramfs initrd.img followkernel" in config and "arm_64bit=1" in config


def test_root_filesystem_has_the_app_no_password_and_the_units(built, root_partition: Path) -> None:
    b, _, _ = built
    shadow = debugfs(root_partition, "cat /etc/shadow")
    assert shadow and all(line.split(":")[1] == "*" for line in shadow.splitlines())
    service = debugfs(root_partition, "cat /usr/lib/systemd/system/edgepack.service")
    assert "Restart=on-failure" in service and "edgepack_runtime serve" in service
    wants = debugfs(root_partition, "ls -l /etc/systemd/system/multi-user.target.wants")
    assert "edgepack-smoke.service" in wants and "edgepack.service" in wants
    assert debugfs(root_partition, "cat /etc/machine-id") == ""
    # The very model the container build baked and smoke-tested (the app step's file).
    app = next(r for r in execute(flash_steps.plan(b)[:-2], b.cache) if r.name == "app").outputs
    baked = Path(app["root"]) / "opt/edgepack/model/model.onnx"
    dumped = root_partition.parent / "model.onnx"
    subprocess.run(["debugfs", "-R", f"dump /opt/edgepack/model/model.onnx {dumped}", str(root_partition)],
                   capture_output=True, check=True)  # fmt: skip
    # digests, not the bytes: pytest's diff of two 2 MB byte strings runs for hours
    assert sha256_file(dumped) == sha256_file(baked)


def test_boots_under_qemu_into_the_smoke_test_with_first_boot_settings(built, tmp_path: Path) -> None:
    b, card, out = built
    image = tmp_path / "card.img"
    subprocess.run(
        ["cp", "--sparse=always", str(out / "one" / f"{card.image_name}.img"), str(image)], check=True
    )
    # The user's edit on the card, no rebuild: a hostname and an SSH key in the boot partition's file.
    settings = tmp_path / "edgepack.conf"
    settings.write_text(f"hostname={HOSTNAME}\nssh_authorized_key={SSH_KEY}\n")
    offset = layout.FIRST_LBA * layout.SECTOR
    subprocess.run(["mcopy", "-o", "-i", f"{image}@@{offset}", str(settings), "::/edgepack.conf"], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip

    result = qemu.boot(image, workdir=tmp_path / "boot", cpu=b.target.qemu_cpu, timeout_s=card.boot_timeout_s,
                       runner=Runner(echo=False))  # fmt: skip

    assert result.status == "ok", result.result[:500]
    assert result.host == HOSTNAME
    smoke = json.loads(result.result)
    assert smoke["text"] == "set the temperature to six six" == smoke["expected_text"]
    assert smoke["runtime"]["machine"] == "aarch64" and "asimddp" not in smoke["runtime"]["cpu_features"]
    reference = flash_steps.reference(b)
    assert reference is not None
    checks = qemu.check_against(result, reference, atol=b.target.smoke.atol, rtol=b.target.smoke.rtol)
    assert checks and all(c.ok for c in checks)
    console = result.log.read_text(errors="replace")
    assert f"edgepack-firstboot: hostname set to {HOSTNAME}" in console
    assert "edgepack-firstboot: SSH key added for user edge" in console


# -- flash.write on a real loop device (non-removable: it exercises --force) ------------------------


@contextlib.contextmanager
def loop_device(backing: Path, size: int) -> Iterator[str]:
    with backing.open("wb") as fh:
        fh.truncate(size)
    device = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    image = tmp_path / "small.img"
    image.write_bytes(os.urandom(3 << 20) + bytes(1 << 20))
    return image


def test_write_refuses_a_fixed_disk_then_writes_and_verifies_with_force(
    small_image: Path, tmp_path: Path
) -> None:
    asked: list[str] = []
    with loop_device(tmp_path / "card.bin", 16 << 20) as device:
        with pytest.raises(write.UnsafeDeviceError, match="not a removable disk"):
            write.write_image(small_image, device, runner=Runner(echo=False), force=False,
                              confirm=lambda q: pytest.fail("asked before the checks"))  # fmt: skip
        digest = write.write_image(small_image, device, runner=Runner(echo=False), force=True,
                                   confirm=lambda q: asked.append(q) or True)  # fmt: skip
    assert digest == hashlib.sha256(small_image.read_bytes()).hexdigest()
    assert (tmp_path / "card.bin").read_bytes()[: small_image.stat().st_size] == small_image.read_bytes()
    assert asked and device in asked[0] and "0.0 GB" in asked[0]


def test_write_refuses_a_device_smaller_than_the_image(small_image: Path, tmp_path: Path) -> None:
    with (
        loop_device(tmp_path / "tiny.bin", 2 << 20) as device,
        pytest.raises(write.UnsafeDeviceError, match="holds 2097152 bytes"),
    ):
        write.write_image(small_image, device, runner=Runner(echo=False), force=True, confirm=lambda q: True)


def test_write_refuses_a_mounted_device(small_image: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(tmp_path / "fat.bin", 64 << 20) as device:
        # ext4: this host's kernel may have no vfat (it is what a mounted card's root partition is anyway).
        subprocess.run(["mkfs.ext4", "-q", device], capture_output=True, check=True)
        subprocess.run(["mount", device, str(mnt)], check=True)
        try:
            with pytest.raises(write.UnsafeDeviceError, match=f"mounted at {mnt}"):
                write.write_image(
                    small_image, device, runner=Runner(echo=False), force=True, confirm=lambda q: True
                )
        finally:
            subprocess.run(["umount", str(mnt)], check=True)


def test_write_refuses_the_disk_the_system_runs_from(small_image: Path) -> None:
    source = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", "/"], capture_output=True, text=True
    ).stdout.strip()
    if not source.startswith("/dev/"):
        pytest.skip(f"/ is not on a block device here ({source})")
    parent = subprocess.run(
        ["lsblk", "-n", "-o", "PKNAME", source], capture_output=True, text=True
    ).stdout.strip()
    disk = f"/dev/{parent}" if parent else source
    with pytest.raises(write.UnsafeDeviceError, match="running system"):
        write.write_image(small_image, disk, runner=Runner(echo=False), force=True,
                          confirm=lambda q: pytest.fail("asked to overwrite the system disk"))  # fmt: skip
