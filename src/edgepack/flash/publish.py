"""The image's companions: .img.xz, sha256 files and an rpi-imager os_list entry.

xz is Python's lzma, single-threaded (multi-threaded xz splits the stream
by thread count: different bytes on different hosts), CRC64 check, so the
same image always compresses to the same bytes.
"""

from __future__ import annotations

import lzma
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgepack.fsutil import atomic_path, sha256_file, write_json, write_text


def compress(image: Path, out: Path, *, preset: int) -> None:
    with (
        atomic_path(out) as tmp,
        image.open("rb") as src,
        lzma.open(tmp, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=preset) as dst,
    ):
        while block := src.read(1 << 20):
            dst.write(block)


def write_sha256(path: Path) -> str:
    """``<path>.sha256`` in sha256sum's format; returns the digest."""
    digest = sha256_file(path)
    write_text(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    return digest


def manifest_entry(*, name: str, description: str, image: Path, xz: Path, image_sha: str, xz_sha: str,
                   epoch: int, url: str = "") -> dict[str, Any]:  # fmt: skip
    """One entry of rpi-imager's os_list JSON (the fields it reads to download, check and write)."""
    return {
        "name": name,
        "description": description,
        "url": url or xz.name,
        "extract_size": image.stat().st_size,
        "extract_sha256": image_sha,
        "image_download_size": xz.stat().st_size,
        "image_download_sha256": xz_sha,
        "release_date": datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d"),
        "devices": ["pi4-64bit"],
        # No "init_format": rpi-imager's own customisation (cloud-init, firstrun.sh) does not
        # apply to this image; edgepack.conf on the boot partition does that job.
    }


def write_manifest(path: Path, entry: dict[str, Any]) -> None:
    write_json(path, {"os_list": [entry]})


def publish_all(image: Path, *, name: str, description: str, epoch: int, preset: int) -> dict[str, Any]:
    """Write .img.xz, both .sha256 files and the manifest next to ``image``; return the entry."""
    xz = image.with_name(image.name + ".xz")
    compress(image, xz, preset=preset)
    entry = manifest_entry(name=name, description=description, image=image, xz=xz,
                           image_sha=write_sha256(image), xz_sha=write_sha256(xz), epoch=epoch)  # fmt: skip
    write_manifest(image.with_name(image.name.removesuffix(".img") + ".rpi-imager.json"), entry)
    return entry
