"""Sample callables of the guide's models (docs/your-model.md): real inputs, made as each model's own
pre-processing makes them, from data that travels with edgepack (no download at run time).

Each is a ``samples:`` entry (``edgepack.modelpipe.zoo.guide:NAME``): it takes no argument and
yields dicts of numpy arrays, one input set each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

_PACKAGE = Path(__file__).resolve().parents[2]  # src/edgepack: files of several kinds, always present

# --- Magika (content-type classifier): the first and last 1024 bytes of a file --------------------

MAGIKA_BEG, MAGIKA_END, MAGIKA_PAD, MAGIKA_BLOCK = 1024, 1024, 256, 4096  # its config.min.json


def magika_features(content: bytes) -> np.ndarray:
    """Magika v3's input for one file: [1, 2048] int32, bytes 0..255, padding 256.

    As magika computes it: whitespace stripped from the start of the first block and the end
    of the last, the beginning padded on the right and the end on the left.
    """
    beg = content[:MAGIKA_BLOCK].lstrip()[:MAGIKA_BEG]
    end = content[-MAGIKA_BLOCK:].rstrip()[-MAGIKA_END:] if content else b""
    row = np.full(MAGIKA_BEG + MAGIKA_END, MAGIKA_PAD, dtype=np.int32)
    row[: len(beg)] = np.frombuffer(beg, dtype=np.uint8)
    if end:
        row[MAGIKA_BEG + MAGIKA_END - len(end) :] = np.frombuffer(end, dtype=np.uint8)
    return row[None, :]


def magika_files() -> list[Path]:
    """A few files of different kinds that ship with edgepack: Python, YAML, JSON, text, binary."""
    kinds = ("*.py", "resources/*.yaml", "resources/*.json", "resources/*.in", "_data/assets/audio/*.wav")
    found: list[Path] = []
    for pattern in kinds:
        found += sorted(p for p in _PACKAGE.glob(pattern) if p.is_file() and p.stat().st_size > 64)[:4]
    found += sorted(p for p in _PACKAGE.rglob("*.pyc"))[:2]
    return found


def magika_samples() -> Iterator[dict[str, np.ndarray]]:
    for path in magika_files():
        yield {"bytes": magika_features(path.read_bytes())}


# --- PP-OCRv4 text detector (rapidocr-onnxruntime): an image with text, normalised as it does -----


def text_image(lines: list[str], *, width: int = 160, height: int = 96, seed: int = 0) -> np.ndarray:
    """An RGB image (H, W, 3 uint8) with dark text on a light, slightly noisy page."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    page = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((6 + 4 * i, 8 + 22 * i), line, fill=tuple(int(v) for v in rng.integers(0, 60, 3)))
    pixels = np.asarray(page.resize((width * 2, height * 2)), dtype=np.int16)  # larger glyphs
    noise = rng.integers(-8, 9, pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def ocr_det_input(rgb: np.ndarray) -> np.ndarray:
    """rapidocr's DetPreProcess: BGR, (x / 255 - 0.5) / 0.5, sides a multiple of 32, NCHW float32."""
    h, w = (rgb.shape[0] // 32) * 32, (rgb.shape[1] // 32) * 32
    bgr = rgb[:h, :w, ::-1].astype(np.float32)
    return ((bgr / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()


_OCR_TEXT = (
    ["EDGEPACK 2026", "smoke test"],
    ["Raspberry Pi 4", "cortex-a72"],
    ["int8 vs fp32", "IoU 0.9"],
    ["HELLO WORLD", "text here"],
    ["model stage", "quantize auto"],
    ["12:45 PM", "total 3.50"],
)


def ocr_det_samples() -> Iterator[dict[str, np.ndarray]]:
    for seed, lines in enumerate(_OCR_TEXT):
        yield {"x": ocr_det_input(text_image(lines, seed=seed))}
