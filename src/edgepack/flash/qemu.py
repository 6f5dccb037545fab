"""Boot the card image under qemu-system-aarch64 and wait for the smoke result.

QEMU has no Raspberry Pi 4 machine in Debian 12's 7.2 (raspi4b came in
9.0), so the generic ``virt`` machine runs the board's CPU model with the
image's own kernel and initramfs, taken out of its FAT partition with mtools
(which proves they are in the image), and the kernel command line of its
cmdline.txt plus QEMU's serial console. The disk is the image itself,
``snapshot=on``: the boot never changes it. No network (``-nic none``).
"""

from __future__ import annotations

import io
import json
import re
import selectors
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepack.errors import CommandError, SmokeTestError
from edgepack.flash import layout
from edgepack.pipeline import smoke
from edgepack.pipeline.smoke import OutputCheck
from edgepack.runner import Runner

RESULT = re.compile(r"EDGEPACK-SMOKE status=(?P<status>\w+) host=(?P<host>\S+) result=(?P<result>.*)")
# Lines after which waiting longer is pointless: the boot cannot reach the smoke test.
FATAL = re.compile(r"Kernel panic|edgepack-initramfs: root .* not found|Failed to start edgepack-smoke")
SERIAL_CONSOLE = "console=ttyAMA0"  # virt's PL011; the last console= gets /dev/console


@dataclass(frozen=True)
class BootResult:
    status: str
    host: str
    result: str  # the runtime's smoke JSON, as printed
    seconds: float
    log: Path


def boot_argv(*, qemu: str, image: Path, kernel: Path, initrd: Path, cmdline: str, cpu: str, smp: int = 2,
              memory_mb: int = 1024) -> list[str]:  # fmt: skip
    return [qemu, "-M", "virt", "-cpu", cpu, "-smp", str(smp), "-m", str(memory_mb), "-nographic",
            "-nic", "none", "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
            "-drive", f"file={image},if=virtio,format=raw,snapshot=on"]  # fmt: skip


def extract_boot_file(image: Path, name: str, out: Path, *, runner: Runner) -> Path:
    """Copy ``name`` out of the image's FAT partition (mtools reads it at its offset)."""
    offset = layout.FIRST_LBA * layout.SECTOR
    argv = ["mcopy", "-n", "-i", f"{image}@@{offset}", f"::/{name}", str(out)]
    runner.run(argv, what=f"reading {name} from the image's boot partition", env={"MTOOLS_SKIP_CHECK": "1"})
    return out


def boot(image: Path, *, workdir: Path, cpu: str, timeout_s: float, runner: Runner) -> BootResult:
    """Boot ``image`` headless; return the smoke line it prints, or fail within ``timeout_s``."""
    workdir.mkdir(parents=True, exist_ok=True)
    kernel = extract_boot_file(image, "vmlinuz", workdir / "vmlinuz", runner=runner)
    initrd = extract_boot_file(image, "initrd.img", workdir / "initrd.img", runner=runner)
    cmdline_file = extract_boot_file(image, "cmdline.txt", workdir / "cmdline.txt", runner=runner)
    cmdline = f"{cmdline_file.read_text().strip()} {SERIAL_CONSOLE}"
    qemu = runner.which("qemu-system-aarch64", hint="Install it (Debian package: qemu-system-arm), "
                        "or run: edgepack doctor --fix")  # fmt: skip
    argv = boot_argv(qemu=qemu, image=image, kernel=kernel, initrd=initrd, cmdline=cmdline, cpu=cpu)
    log = workdir / "console.log"
    return _watch(argv, log=log, timeout_s=timeout_s, runner=runner)


def _watch(argv: list[str], *, log: Path, timeout_s: float, runner: Runner) -> BootResult:
    """Run QEMU, copy the serial console to ``log``, stop at the smoke line or the deadline."""
    t0 = time.monotonic()
    with log.open("wb") as sink, runner.streaming(argv, what="booting the image under QEMU") as proc:
        # stdout=PIPE, buffered: read1 returns what is there without waiting for more
        assert isinstance(proc.stdout, io.BufferedIOBase)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        partial, fatal = b"", ""  # the console's last, unfinished line; a line that ends all hope
        try:
            while not fatal and (left := timeout_s - (time.monotonic() - t0)) > 0:
                if not sel.select(timeout=min(left, 5.0)):
                    continue
                chunk = proc.stdout.read1(65536)
                if not chunk:
                    fatal = "QEMU exited"
                    break
                sink.write(chunk)
                sink.flush()
                *lines, partial = (partial + chunk).split(b"\n")
                for line in (raw.decode("utf-8", errors="replace").strip() for raw in lines):
                    if match := RESULT.search(line):
                        return BootResult(match["status"], match["host"], match["result"].strip(),
                                          round(time.monotonic() - t0, 1), log)  # fmt: skip
                    fatal = fatal or (line if FATAL.search(line) else "")
        finally:
            proc.kill()
            proc.wait()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    why = f"the console showed: {fatal}" if fatal else f"no smoke result appeared within {timeout_s:.0f} s"
    raise CommandError(
        f"booting the image under QEMU failed because {why} (console log: {log}).",
        argv=argv, returncode=proc.returncode if proc.returncode is not None else -1, output=tail,
        hint="Read the console log: the kernel, the initramfs or a unit stopped there.",
    )  # fmt: skip


@dataclass(frozen=True)
class CardSmoke:
    """The smoke line a booted card printed on its console (a ``pipeline.smoke.SmokeRunner``)."""

    boot: BootResult

    @property
    def where(self) -> str:
        return f"the card image booted under QEMU (console log: {self.boot.log})"

    def run_smoke(self) -> dict[str, Any]:
        try:
            emulated = json.loads(self.boot.result)
        except json.JSONDecodeError:
            emulated = None
        if self.boot.status != "ok" or not isinstance(emulated, dict) or "outputs" not in emulated:
            raise SmokeTestError(
                f"the smoke test on the booted image failed: {self.boot.result[:300]} "
                f"(console log: {self.boot.log}).",
                hint="The same runtime passed in the container: compare the kernel/CPU, and the console log.",
            )
        return emulated


def check_against(
    result: BootResult, reference: dict[str, Any], *, atol: float, rtol: float
) -> list[OutputCheck]:
    """The booted card's smoke outputs against the host reference, as the container's smoke is checked."""
    return smoke.verify(reference, CardSmoke(result), atol=atol, rtol=rtol)[1]
