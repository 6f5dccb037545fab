"""Non-command speech: ordinary English read aloud, for rejection (false accepts).

Sentences of a text from /usr/share/common-licenses (Debian's base-files),
each read by a random voice of the given families at a random rate, joined
by 0.25-0.9 s pauses at a random level, optionally with noise. Seeded and
cached like the command data. Three different texts keep the roles apart:
MPL-2.0/Artistic/CC0 phrases are in training (speech/synth.py), Apache-2.0
tunes the reject threshold (read by training families), GPL-3 measures
false accepts (read by festival, the held-out family).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from edgepack.runner import Runner
from speech import augment
from speech.synth import LICENSES, rng_for, speak
from speech.voices import Family, test_voices, train_voices

TUNE_TEXT, EVAL_TEXT = "Apache-2.0", "GPL-3"


def sentences(name: str, *, max_words: int = 22) -> list[str]:
    """The text's sentences as lower-case words, long ones cut into pieces."""
    text = (LICENSES / name).read_text(errors="replace")
    out = []
    for raw in re.split(r"[.;:!?]\s|\n\s*\n", text):
        words = re.findall(r"[a-z]+", raw.lower())
        for start in range(0, len(words), max_words):
            piece = words[start : start + max_words]
            if len(piece) >= 3:
                out.append(" ".join(piece))
    return out


def read_aloud(
    name: str,
    families: tuple[Family, ...],
    *,
    seconds: float,
    seed: int,
    index: int,
    noise: augment.Noise = "none",
    snr_db: float = 30.0,
    babble: np.ndarray | None = None,
) -> np.ndarray:
    """At least ``seconds`` of the text read aloud (from its start), int16 at 16 kHz."""
    rng = rng_for("longform", index, seed)
    voices = [v for f in families for v in (test_voices(f) if f == "festival" else train_voices(f))]
    runner = Runner(echo=False)
    parts: list[np.ndarray] = [np.zeros(int(0.5 * augment.SAMPLE_RATE))]
    total = len(parts[0])
    level = 10 ** (-26 / 20)
    with tempfile.TemporaryDirectory() as tmp:
        for text in sentences(name):
            voice = voices[int(rng.integers(len(voices)))]
            s = speak(
                voice,
                text,
                rate=float(rng.uniform(0.85, 1.15)),
                pitch=float(rng.random()),
                runner=runner,
                workdir=Path(tmp),
            )
            gain = level * 10 ** (rng.uniform(-4, 4) / 20) / augment.rms(s[np.abs(s) > 1e-3])
            pause = np.zeros(int(rng.uniform(0.25, 0.9) * augment.SAMPLE_RATE))
            parts += [s * gain, pause]
            total += len(s) + len(pause)
            if total >= seconds * augment.SAMPLE_RATE:
                break
    x = np.concatenate(parts)
    if noise != "none":
        n = augment.noise(noise, len(x), rng, babble)
        x = x + n * (level / 10 ** (snr_db / 20) / augment.rms(n))
    x = x * min(1.0, 0.99 / np.abs(x).max())
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def cached(
    cache: Path,
    name: str,
    families: tuple[Family, ...],
    *,
    seconds: float,
    seed: int,
    index: int,
    noise: augment.Noise = "none",
    snr_db: float = 30.0,
) -> np.ndarray:
    key = f"longform-{name}-{'+'.join(families)}-{noise}{snr_db:g}-{seconds:g}s-{seed}-{index}.npy"
    path = cache / key
    if path.exists():
        return np.load(path)
    from speech.synth import babble_bank

    babble = babble_bank(seed, index=1) if noise == "babble" else None
    x = read_aloud(
        name, families, seconds=seconds, seed=seed, index=index, noise=noise, snr_db=snr_db, babble=babble
    )
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), x)
    path.with_suffix(".tmp.npy").replace(path)
    return x
