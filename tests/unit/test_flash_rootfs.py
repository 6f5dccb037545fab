"""The card's rootfs configured by hand, and the QEMU command line (pure parts, no subprocess)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgepack.config import Project, load_target
from edgepack.errors import InputError
from edgepack.flash import qemu, rootfs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A rootfs with only what the configuration step reads: the units it enables and the sshd template."""
    root = tmp_path / "root"
    for unit in ("ssh.service", "systemd-networkd.service", "multi-user.target"):
        (root / rootfs.UNITS_DIR).mkdir(parents=True, exist_ok=True)
        (root / rootfs.UNITS_DIR / unit).write_text("[Unit]\n")
    (root / "usr/share/openssh").mkdir(parents=True)
    (root / "usr/share/openssh/sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    return root


def configure(tree: Path, tmp_path: Path) -> None:
    shutil.copytree(REPO / "targets", tmp_path / "targets")
    project = Project(tmp_path)
    target = load_target(project, "rpi4")
    assert target.sdcard is not None
    rootfs._write_system(tree, target=target, card=target.sdcard)
    rootfs._install_units(tree, threads=target.threads)


def test_no_account_has_a_password_and_edge_exists(tree: Path, tmp_path: Path) -> None:
    configure(tree, tmp_path)
    shadow = (tree / "etc/shadow").read_text().splitlines()
    assert {line.split(":")[0] for line in shadow} >= {"root", "edge"}
    assert all(line.split(":")[1] == "*" for line in shadow)
    assert "edge:x:1000:1000:edgepack:/home/edge:/bin/sh" in (tree / "etc/passwd").read_text()
    assert (tree / "etc/shadow").stat().st_mode & 0o777 == 0o600
    assert "PasswordAuthentication no" in (tree / "etc/ssh/sshd_config").read_text()


def test_machine_id_is_empty_and_hostname_is_the_default(tree: Path, tmp_path: Path) -> None:
    configure(tree, tmp_path)
    assert (tree / "etc/machine-id").read_text() == ""
    assert (tree / "etc/hostname").read_text() == "edgepack-rpi4\n"
    assert "/boot/firmware vfat" in (tree / "etc/fstab").read_text()


def test_units_are_enabled_and_gettys_masked_as_systemctl_would(tree: Path, tmp_path: Path) -> None:
    configure(tree, tmp_path)
    system = tree / "etc/systemd/system"
    for wants, units in rootfs.ENABLED.items():
        for unit in units:
            assert (system / wants / unit).readlink() == Path(f"/{rootfs.UNITS_DIR}/{unit}")
    assert all((system / unit).readlink() == Path("/dev/null") for unit in rootfs.MASKED)
    assert (system / "default.target").readlink().name == "multi-user.target"
    smoke = (tree / rootfs.UNITS_DIR / "edgepack-smoke.service").read_text()
    assert "StandardOutput=journal+console" in smoke and "User=edge" in smoke
    assert (tree / "etc/default/edgepack").read_text().startswith("EDGEPACK_THREADS=4\n")


def test_a_unit_no_package_provides_is_named(tree: Path, tmp_path: Path) -> None:
    (tree / rootfs.UNITS_DIR / "ssh.service").unlink()
    with pytest.raises(InputError, match=r"no locked package provides ssh\.service"):
        configure(tree, tmp_path)


def test_kernel_version_needs_exactly_one_kernel(tmp_path: Path) -> None:
    (tmp_path / "usr/lib/modules/6.1.0-56-arm64").mkdir(parents=True)
    assert rootfs.kernel_version(tmp_path) == "6.1.0-56-arm64"
    (tmp_path / "usr/lib/modules/6.1.0-57-arm64").mkdir()
    with pytest.raises(InputError, match="holds 2 kernels"):
        rootfs.kernel_version(tmp_path)


def test_qemu_argv_boots_the_image_as_a_snapshot_without_network() -> None:
    argv = qemu.boot_argv(qemu="/usr/bin/qemu-system-aarch64", image=Path("/b/card.img"),
                          kernel=Path("/w/vmlinuz"), initrd=Path("/w/initrd.img"),
                          cmdline="rw root=UUID=x console=ttyAMA0", cpu="cortex-a72")  # fmt: skip
    assert argv == [
        "/usr/bin/qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
        "-nographic", "-nic", "none", "-no-reboot", "-kernel", "/w/vmlinuz", "-initrd", "/w/initrd.img",
        "-append", "rw root=UUID=x console=ttyAMA0",
        "-drive", "file=/b/card.img,if=virtio,format=raw,snapshot=on",
    ]  # fmt: skip


def test_console_lines_are_recognised() -> None:
    line = 'edgepack-smoke[220]: EDGEPACK-SMOKE status=ok host=edge-01 result={"text": "set"}'
    match = qemu.RESULT.search(line)
    assert match and (match["status"], match["host"], match["result"]) == ("ok", "edge-01", '{"text": "set"}')
    assert qemu.FATAL.search("edgepack-initramfs: root UUID=abc not found; block devices: vda")
    assert qemu.FATAL.search("[   12.3] Kernel panic - not syncing: Attempted to kill init!")
