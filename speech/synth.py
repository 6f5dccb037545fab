"""Seeded synthetic speech from three synthesizer families, augmented, cached as log-mel.

Each utterance has its own random stream (``SeedSequence(seed, spawn_key=(split, index))``),
so a dataset is the same on every machine and any utterance can be rebuilt
alone. A voice of :mod:`speech.voices` speaks a sentence at a random rate and
pitch; the WAV is resampled to 16 kHz with soxr, its own silences trimmed, and
:mod:`speech.augment` applies speed, room, microphone, level, noise and
channel; :mod:`edgepack_runtime.features` turns it into log-mel frames.

Splits (speech/README.md has the table):

* ``train``, ``val``: espeak-ng (60 %) and flite (40 %) training voices, augmented;
  15 % of training texts are phrases of ordinary English (phrase diversity).
* ``test-espeak``, ``test-flite``, ``test-festival``: clean speech (level and
  padding only) of each family's test voices, audio kept; the bench adds the
  noise and channel conditions. festival is never in train or val.

    python -m speech.synth --out speech/.cache
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from edgepack.runner import Runner
from edgepack_runtime.features import FrontEndConfig, log_mel
from speech import augment, vocab
from speech.voices import Family, Voice, needs_stdin, synthesise_argv, test_voices, train_voices

SAMPLE_RATE = augment.SAMPLE_RATE
DATA_SEED = 20261207
SPLITS = ("train", "val", "test-espeak", "test-flite", "test-festival", "babble", "tune", "longform")
TRAIN_MIX: dict[Family, float] = {"espeak": 0.6, "flite": 0.4}
PHRASE_PROB = 0.15
# Ordinary English for phrase diversity (training) and for the non-command
# sets (threshold tuning, false-accept evaluation): three different texts.
LICENSES = Path("/usr/share/common-licenses")
PHRASE_TEXTS = ("MPL-2.0", "Artistic", "CC0-1.0")


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: Voice
    rate: float
    pitch: float
    recipe: augment.Recipe


def rng_for(split: str, index: int, seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index)))


def corpus_words(names: tuple[str, ...]) -> list[str]:
    """Lower-case alphabetic words of the named /usr/share/common-licenses texts."""
    text = " ".join((LICENSES / name).read_text(errors="replace") for name in names)
    return re.findall(r"[a-z]+", text.lower())


_PHRASE_WORDS: list[str] = []


def phrase(rng: np.random.Generator) -> str:
    if not _PHRASE_WORDS:
        _PHRASE_WORDS.extend(corpus_words(PHRASE_TEXTS))
    length = int(rng.integers(2, 8))
    start = int(rng.integers(0, len(_PHRASE_WORDS) - length))
    return " ".join(_PHRASE_WORDS[start : start + length])


def pick_voice(split: str, rng: np.random.Generator) -> Voice:
    if split.startswith("test-"):
        voices = test_voices(split.removeprefix("test-"))  # type: ignore[arg-type]
        return voices[int(rng.integers(len(voices)))]
    families = list(TRAIN_MIX)
    family = families[int(rng.choice(len(families), p=list(TRAIN_MIX.values())))]
    voices = train_voices(family)
    return voices[int(rng.integers(len(voices)))]


def draw(split: str, index: int, seed: int) -> tuple[Utterance, np.random.Generator]:
    """The recipe of one utterance, and the stream that then draws its noise and room."""
    rng = rng_for(split, index, seed)
    voice = pick_voice(split, rng)
    text = phrase(rng) if split == "train" and rng.random() < PHRASE_PROB else vocab.sentence(rng)
    rate, pitch = float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.0, 1.0))
    recipe = augment.draw_recipe(rng, strength=0.0 if split.startswith("test-") else 1.0)
    return Utterance(text, voice, rate, pitch, recipe), rng


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono 16-bit wav as float64 in [-1, 1], and its sample rate."""
    with wave.open(str(path), "rb") as f:
        if f.getnchannels() != 1 or f.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return data.astype(np.float64) / 32768.0, f.getframerate()


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def trim(speech: np.ndarray, *, threshold: float = 1e-3) -> np.ndarray:
    """Cut the engine's own leading and trailing silence, so the recipe alone sets it."""
    loud = np.flatnonzero(np.abs(speech) > threshold * max(1.0, np.abs(speech).max() / 0.3))
    return speech[loud[0] : loud[-1] + 1] if loud.size else speech


def speak(voice: Voice, text: str, *, rate: float, pitch: float, runner: Runner, workdir: Path) -> np.ndarray:
    """Clean speech at 16 kHz, float64, trimmed."""
    wav = workdir / "utt.wav"
    argv = synthesise_argv(voice, text, wav, rate=rate, pitch=pitch)
    runner.run(argv, what=f"{argv[0]} ({voice})", input=text.encode() if needs_stdin(voice) else None)
    speech, sr = read_wav(wav)
    if speech.size == 0:
        raise RuntimeError(f"{voice} wrote no audio for {text!r}")
    return trim(soxr.resample(speech, sr, SAMPLE_RATE))


def synthesise(
    utt: Utterance, rng: np.random.Generator, *, runner: Runner, workdir: Path, babble: np.ndarray | None
) -> np.ndarray:
    speech = speak(utt.voice, utt.text, rate=utt.rate, pitch=utt.pitch, runner=runner, workdir=workdir)
    return augment.apply(speech, utt.recipe, rng, babble=babble)


def babble_bank(seed: int, *, index: int = 0, talkers: int = 6, seconds: float = 30.0) -> np.ndarray:
    """Several training voices talking at once (grammar sentences and phrases), unit RMS.

    ``index`` picks an independent bank: 0 for training, 1 for the bench.
    """
    rng = rng_for("babble", index, seed)
    runner = Runner(echo=False)
    total = np.zeros(int(seconds * SAMPLE_RATE))
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(talkers):
            track: list[np.ndarray] = [np.zeros(int(rng.integers(0, SAMPLE_RATE)))]
            while sum(len(t) for t in track) < len(total):
                voice = pick_voice("train", rng)
                text = phrase(rng) if rng.random() < 0.5 else vocab.sentence(rng)
                s = speak(
                    voice,
                    text,
                    rate=rng.uniform(0.8, 1.2),
                    pitch=rng.random(),
                    runner=runner,
                    workdir=Path(tmp),
                )
                track += [s / augment.rms(s), np.zeros(int(rng.integers(0, SAMPLE_RATE // 4)))]
            total += np.concatenate(track)[: len(total)]
    return total / augment.rms(total)


def build_split(split: str, count: int, *, seed: int, out: Path, keep_audio: bool, part: int = 0) -> Path:
    """Synthesise ``count`` utterances and write ``out/<split>.npz``; part ``k`` > 0 is the
    utterances ``k * count ..`` of the same split, written to ``out/<split>-<k>.npz``."""
    runner = Runner(echo=False)
    config = FrontEndConfig()
    babble = babble_bank(seed) if not split.startswith("test-") else None
    feats, audio, meta = [], [], []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(part * count, (part + 1) * count):
            utt, rng = draw(split, index, seed)
            samples = synthesise(utt, rng, runner=runner, workdir=Path(tmp), babble=babble)
            feats.append(log_mel(samples, config))
            if keep_audio:
                audio.append(samples)
            meta.append(utt)
            if len(meta) % 500 == 0:
                print(f"{split}: {len(meta)}/{count} ({time.monotonic() - start:.0f} s)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "feats": np.concatenate(feats),
        "feat_lengths": np.array([len(f) for f in feats]),
        "texts": np.array([u.text for u in meta]),
        "voices": np.array([str(u.voice) for u in meta]),
        "noise": np.array([f"{u.recipe.noise}/{u.recipe.channel}" for u in meta]),
    }
    if keep_audio:
        arrays["audio"] = np.concatenate(audio)
        arrays["audio_lengths"] = np.array([len(a) for a in audio])
    path = out / (f"{split}-{part}.npz" if part else f"{split}.npz")
    tmp_path = path.with_suffix(".tmp.npz")
    np.savez(tmp_path, **arrays)
    tmp_path.replace(path)
    print(f"wrote {path}: {count} utterances in {time.monotonic() - start:.0f} s", flush=True)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("speech/.cache"))
    parser.add_argument("--seed", type=int, default=DATA_SEED)
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--val", type=int, default=400)
    parser.add_argument("--test", type=int, default=300, help="utterances per test family")
    parser.add_argument("--only", nargs="*", help="build only these splits")
    parser.add_argument("--train-parts", type=int, default=2, help="train = this many parts of --train")
    args = parser.parse_args(argv)
    Runner(echo=False).which("espeak-ng")
    plan = [
        ("test-festival", args.test),
        ("val", args.val),
        ("train", args.train),
        ("test-espeak", args.test),
        ("test-flite", args.test),
    ]
    for split, count in plan:
        if args.only and split not in args.only:
            continue
        for part in range(args.train_parts if split == "train" else 1):
            name = f"{split}-{part}.npz" if part else f"{split}.npz"
            if (args.out / name).exists():  # a cache: delete a file to rebuild it
                continue
            build_split(
                split, count, seed=args.seed, out=args.out, keep_audio=split.startswith("test-"), part=part
            )


if __name__ == "__main__":
    main()
