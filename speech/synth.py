"""Seeded synthetic speech: espeak-ng voices, rates and pitches, noise and gain.

Each utterance has its own random stream (``SeedSequence(seed, spawn_key=(split, index))``),
so a dataset is the same on every machine and any utterance can be rebuilt
alone. Audio is synthesised at espeak-ng's 22050 Hz, resampled to 16 kHz with
soxr, padded with silence, scaled to a random level and mixed with white or
pink noise at a random SNR; then the numpy front end
(:mod:`edgepack_runtime.features`) turns it into log-mel frames.

The test voices use variants and one accent that no training voice uses.

    python -m speech.synth --out speech/.cache
"""

from __future__ import annotations

import argparse
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from edgepack.runner import Runner
from edgepack_runtime.features import FrontEndConfig, log_mel
from speech import vocab

SAMPLE_RATE = 16000
DATA_SEED = 20261125

# espeak-ng's own English voices (`espeak-ng --voices=en`, the gmw/ ones; the
# mbrola ones need the mbrola binary and voice files, which are not installed).
TRAIN_BASES = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-029",
    "en-us-nyc",
)
# Variants (espeak-ng-data/voices/!v) paired with any training base. "" is
# the base voice's own timbre.
TRAIN_VARIANTS = (
    "",
    "m1", "m2", "m3", "m5", "m6", "m7", "m8",
    "f1", "f2", "f4", "f5",
    "klatt", "klatt2", "klatt4", "klatt5", "klatt6",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Gene", "Hugo", "Jacky",
    "Lee", "Michael", "Mike", "Mr serious", "Storm", "Tweaky", "adam", "anika",
    "announcer", "aunty", "belinda", "boris", "caleb", "david", "ed", "edward",
    "grandma", "grandpa", "iven", "iven2", "john", "linda", "max", "norbert",
    "paul", "quincy", "rob", "robert", "sandro", "shelby", "travis", "victor",
    "whisper", "whisperf", "croak",
)  # fmt: skip
# Held out: none of these variants, nor the West Midlands accent, is in training.
TEST_VOICES = (
    "en-us+m4",
    "en-gb-scotland+f3",
    "en-gb-x-gbcwmd+klatt3",
    "en-029+steph",
    "en-gb-x-rp+benjamin",
)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str
    rate: int  # words per minute (espeak-ng -s)
    pitch: int  # 0..99 (espeak-ng -p)
    gap: int  # extra pause between words, 10 ms units (espeak-ng -g)
    lead_s: float
    tail_s: float
    rms_db: float  # speech level, dBFS
    noise: str  # "none", "white" or "pink"
    snr_db: float


def voices_for(split: str) -> list[str]:
    if split == "test":
        return list(TEST_VOICES)
    return [base + (f"+{variant}" if variant else "") for base in TRAIN_BASES for variant in TRAIN_VARIANTS]


def rng_for(split: str, index: int, seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index)))


def draw(split: str, index: int, seed: int) -> tuple[Utterance, np.random.Generator]:
    """The recipe of one utterance, and the stream that then draws its noise."""
    rng = rng_for(split, index, seed)
    voices = voices_for(split)
    noise = ("none", "white", "pink")[int(rng.choice(3, p=[0.2, 0.4, 0.4]))]
    utt = Utterance(
        text=vocab.sentence(rng),
        voice=voices[int(rng.integers(len(voices)))],
        rate=int(rng.integers(120, 221)),
        pitch=int(rng.integers(20, 81)),
        gap=int(rng.integers(0, 4)),
        lead_s=float(rng.uniform(0.05, 0.4)),
        tail_s=float(rng.uniform(0.05, 0.3)),
        rms_db=float(rng.uniform(-38.0, -14.0)),
        noise=noise,
        snr_db=float(rng.uniform(10.0, 30.0)),
    )
    return utt, rng


def espeak_argv(utt: Utterance, wav: Path) -> list[str]:
    return [
        "espeak-ng",
        "-v", utt.voice,
        "-s", str(utt.rate),
        "-p", str(utt.pitch),
        "-g", str(utt.gap),
        "-w", str(wav),
        utt.text,
    ]  # fmt: skip


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono 16-bit wav as float64 in [-1, 1], and its sample rate."""
    with wave.open(str(path), "rb") as f:
        if f.getnchannels() != 1 or f.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return data.astype(np.float64) / 32768.0, f.getframerate()


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f power noise by shaping white noise's spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    return np.fft.irfft(spectrum / np.sqrt(freqs), n=n)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2) + 1e-20))


def trim(speech: np.ndarray, *, threshold: float = 1e-3) -> np.ndarray:
    """Cut espeak-ng's own leading and trailing silence (often 0.3 s or more), so
    that the random padding of :func:`augment` alone sets it."""
    loud = np.flatnonzero(np.abs(speech) > threshold)
    return speech[loud[0] : loud[-1] + 1] if loud.size else speech


def augment(speech: np.ndarray, utt: Utterance, rng: np.random.Generator) -> np.ndarray:
    """Pad with silence, set the level, add noise; returns int16 samples."""
    lead, tail = (np.zeros(round(s * SAMPLE_RATE)) for s in (utt.lead_s, utt.tail_s))
    active = speech[np.abs(speech) > 1e-4]
    level = 10 ** (utt.rms_db / 20) / rms(active if active.size else speech)
    audio = np.concatenate([lead, speech * level, tail])
    if utt.noise != "none":
        noise = rng.standard_normal(len(audio)) if utt.noise == "white" else pink_noise(len(audio), rng)
        target = 10 ** (utt.rms_db / 20) / 10 ** (utt.snr_db / 20)
        audio = audio + noise * (target / rms(noise))
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def synthesise(utt: Utterance, rng: np.random.Generator, *, runner: Runner, workdir: Path) -> np.ndarray:
    wav = workdir / "utt.wav"
    runner.run(espeak_argv(utt, wav), what=f"espeak-ng ({utt.voice})")
    speech, rate = read_wav(wav)
    if speech.size == 0:
        raise RuntimeError(f"espeak-ng wrote no audio for {utt}")
    return augment(trim(soxr.resample(speech, rate, SAMPLE_RATE)), utt, rng)


def build_split(split: str, count: int, *, seed: int, out: Path, keep_audio: bool) -> Path:
    """Synthesise ``count`` utterances and write ``out/<split>.npz``."""
    runner = Runner(echo=False)
    runner.which("espeak-ng")
    config = FrontEndConfig()
    feats, audio, meta = [], [], []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(count):
            utt, rng = draw(split, index, seed)
            samples = synthesise(utt, rng, runner=runner, workdir=Path(tmp))
            feats.append(log_mel(samples, config))
            if keep_audio:
                audio.append(samples)
            meta.append(utt)
            if (index + 1) % 500 == 0:
                print(f"{split}: {index + 1}/{count} ({time.monotonic() - start:.0f} s)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{split}.npz"
    arrays: dict[str, np.ndarray] = {
        "feats": np.concatenate(feats),
        "feat_lengths": np.array([len(f) for f in feats]),
        "texts": np.array([u.text for u in meta]),
        "voices": np.array([u.voice for u in meta]),
        "noise": np.array([u.noise for u in meta]),
    }
    if keep_audio:
        arrays["audio"] = np.concatenate(audio)
        arrays["audio_lengths"] = np.array([len(a) for a in audio])
    tmp_path = path.with_suffix(".tmp.npz")
    np.savez(tmp_path, **arrays)
    tmp_path.replace(path)
    print(f"wrote {path}: {count} utterances in {time.monotonic() - start:.0f} s", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("speech/.cache"))
    parser.add_argument("--seed", type=int, default=DATA_SEED)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=500)
    args = parser.parse_args()
    for split, count in (("test", args.test), ("val", args.val), ("train", args.train)):
        build_split(split, count, seed=args.seed, out=args.out, keep_audio=split == "test")


if __name__ == "__main__":
    main()
