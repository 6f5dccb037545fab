"""The image's companions: deterministic xz, sha256sum-format files, the rpi-imager entry."""

from __future__ import annotations

import hashlib
import json
import lzma
from pathlib import Path

from edgepack.flash import publish


def test_xz_sha_and_manifest(tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    image.write_bytes(b"\0" * 100_000 + b"edgepack" * 1000)
    entry = publish.publish_all(
        image, name="edgepack rpi4", description="a Pi 4", epoch=1_700_000_000, preset=3
    )
    xz = tmp_path / "card.img.xz"
    assert lzma.decompress(xz.read_bytes()) == image.read_bytes()
    first = xz.read_bytes()
    publish.compress(image, xz, preset=3)
    assert xz.read_bytes() == first  # single-threaded, fixed preset: same bytes
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert (tmp_path / "card.img.sha256").read_text() == f"{digest}  card.img\n"
    manifest = json.loads((tmp_path / "card.rpi-imager.json").read_text())
    assert manifest == {"os_list": [entry]}
    assert entry["extract_sha256"] == digest and entry["extract_size"] == image.stat().st_size
    assert entry["image_download_sha256"] == hashlib.sha256(first).hexdigest()
    assert entry["image_download_size"] == len(first) and entry["url"] == "card.img.xz"
    assert entry["release_date"] == "2023-11-14"
