"""A folder of "user recordings" from one synthesizer voice: the fine-tuning demonstration's input.

    python -m speech.userdata --voice festival:ked_diphone --count 100 --out /tmp/ked

WAVs at the voice's own rate (festival's HTS voice: 32 kHz, flite's kal:
8 kHz; speech.finetune resamples them), lightly augmented (a room, a
microphone, some noise, as a phone on a table would record), and
``manifest.jsonl`` with their texts, in the format speech.finetune reads. The
sentences come from their own random streams (split "userdata"), so they are
not the test split's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import soxr

from edgepack.runner import Runner
from speech import augment, vocab
from speech.synth import read_wav, speak, write_wav
from speech.voices import Voice, synthesise_argv

SEED = 20261208


def native_rate(voice: Voice, runner: Runner, workdir: Path) -> int:
    wav = workdir / "probe.wav"
    runner.run(
        synthesise_argv(voice, "stop", wav, rate=1.0, pitch=0.5),
        what=str(voice),
        input=b"stop" if voice.family == "festival" else None,
    )
    return read_wav(wav)[1]


def make(voice: Voice, count: int, out: Path, *, seed: int = SEED) -> Path:
    runner = Runner(echo=False)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rate = native_rate(voice, runner, Path(tmp))
        for i in range(count):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
            text = vocab.sentence(rng)
            speech = speak(
                voice, text, rate=float(rng.uniform(0.85, 1.15)), pitch=0.5, runner=runner, workdir=Path(tmp)
            )
            recipe = augment.draw_recipe(rng, strength=0.5)
            if recipe.noise == "babble":  # no babble bank here: a home's steady noise instead
                recipe = replace(recipe, noise="pink")
            x = augment.apply(speech, recipe, rng).astype(np.float64) / 32768.0
            samples = soxr.resample(x, augment.SAMPLE_RATE, rate) if rate != augment.SAMPLE_RATE else x
            name = f"rec-{i:03d}.wav"
            write_wav(out / name, np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16), rate)
            rows.append({"audio": name, "text": text})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", type=Voice.parse, default=Voice("festival", "ked_diphone"))
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    make(args.voice, args.count, args.out, seed=args.seed)
    print(f"wrote {args.count} recordings of {args.voice} to {args.out}")


if __name__ == "__main__":
    main()
