"""Fine-tune the command recogniser on the user's own recordings; write a new model spec.

    python -m speech.finetune --data DIR [--name NAME]       (or: invoke speech.finetune --data DIR)

DIR holds WAV files (any rate, mono or not: mixed and resampled to 16 kHz)
and ``manifest.jsonl``, one ``{"audio": "file.wav", "text": "turn on the light"}``
per line; a few minutes of audio is enough. Every fourth recording (at least
two) is kept aside as the check set. The base weights are trained further on
the rest (augmented with noise, room and level as in speech/augment.py, mixed
with as many replayed synthetic utterances when speech/.cache/train.npz
exists), and the check set's WER through the grammar decoder is measured
before and after. A fine-tune that makes it worse is refused and nothing is
written; otherwise:

* ``models/finetuned/NAME/cmdasr.{pt,json}``: the weights and their metadata
  (the base's front end, normalisation, grammar and calibration);
* ``models/finetuned/NAME/eval/``: the check set at 16 kHz, its manifest;
* ``models/NAME.yaml``: models/cmdasr.yaml pointing at both, ready for
  ``edgepack build --target rpi4 --model models/NAME.yaml`` (export,
  quantize, validate with the WER gate on the check set, image, smoke).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgepack.errors import EdgepackError, InputError
from edgepack_runtime.audio import AudioError, read_wav
from edgepack_runtime.features import FrontEndConfig, Normalizer, log_mel
from edgepack_runtime.grammar import GrammarDecoder, GrammarSpec
from edgepack_runtime.metrics import wer as utterance_wer
from edgepack_runtime.resample import resample
from speech import augment, vocab
from speech.export import load_model
from speech.synth import write_wav
from speech.train import CACHE, WEIGHTS, Split, load_split, save_json, train_epoch

MIN_RECORDINGS = 8
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


class FinetuneError(InputError):
    """Bad fine-tuning data, or a fine-tune that did not help (exit code 2)."""


@dataclass(frozen=True)
class Recording:
    path: Path
    text: str
    samples: np.ndarray  # float32 at 16 kHz
    where: str  # manifest.jsonl:LINE


def read_manifest(data: Path) -> list[Recording]:
    """Every recording of DIR/manifest.jsonl, or one error listing every bad line."""
    if not data.is_dir():
        raise FinetuneError(
            f"speech.finetune failed because {data} is not a folder.",
            hint="Give --data a folder of WAV files and manifest.jsonl.",
        )
    manifest = data / "manifest.jsonl"
    if not manifest.is_file():
        wavs = len(list(data.glob("*.wav")))
        raise FinetuneError(
            f"speech.finetune failed because {data} has no manifest.jsonl ({wavs} WAV files).",
            hint='Write one line per recording: {"audio": "file.wav", "text": "turn on the light"}.',
        )
    known = set(vocab.words())
    problems: list[str] = []
    recordings: list[Recording] = []
    for n, line in enumerate(manifest.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{manifest}:{n}"
        try:
            row = json.loads(line)
            audio, text = str(row["audio"]), " ".join(str(row["text"]).lower().split())
        except (json.JSONDecodeError, KeyError, TypeError):
            problems.append(f"{where}: not a JSON object with 'audio' and 'text'")
            continue
        unknown = [w for w in text.split() if w not in known]
        if unknown or not text:
            problems.append(
                f"{where}: {', '.join(repr(w) for w in unknown) or 'empty text'} "
                f"not in the command vocabulary (speech/vocab.py)"
            )
            continue
        path = data / audio
        if not path.is_file():
            problems.append(f"{where}: {audio} not found in {data}")
            continue
        try:
            wav = read_wav(path)
        except AudioError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not wav.samples.size:
            problems.append(f"{where}: {audio} is empty")
            continue
        samples = resample(wav.samples, src_rate=wav.rate, dst_rate=augment.SAMPLE_RATE)
        recordings.append(Recording(path, text, samples, where))
    if problems:
        shown = "\n  ".join(problems[:20]) + (
            f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        raise FinetuneError(
            f"speech.finetune failed because the manifest has {len(problems)} bad line(s):\n  {shown}",
            hint="Fix or remove those lines, then rerun.",
        )
    if len(recordings) < MIN_RECORDINGS:
        raise FinetuneError(
            f"speech.finetune failed because {manifest} lists {len(recordings)} recording(s); "
            f"at least {MIN_RECORDINGS} are needed (a quarter is kept aside to check the result).",
            hint="Record a few minutes: 40 to 100 commands.",
        )
    return recordings


def split(recordings: list[Recording]) -> tuple[list[Recording], list[Recording]]:
    """(train, check): every fourth recording is the check set."""
    check = recordings[3::4] or recordings[-2:]
    return [r for r in recordings if r not in check], check


def features(samples: np.ndarray, normalizer: Normalizer) -> np.ndarray:
    x = np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    return normalizer(log_mel(x, FrontEndConfig()))


def command_wer(
    model: torch.nn.Module, decoder: GrammarDecoder, feats: list[np.ndarray], texts: list[str]
) -> float:
    """Corpus WER of the grammar decoder's best sentences (what the board answers)."""
    model.eval()
    errors = 0.0
    with torch.no_grad():
        for f, ref in zip(feats, texts, strict=True):
            log_probs, _ = model(torch.from_numpy(f)[None])
            errors += utterance_wer(ref, decoder.decode(log_probs[0].numpy()).text) * len(ref.split())
    return errors / max(1, sum(len(t.split()) for t in texts))


def augmented(recordings: list[Recording], normalizer: Normalizer, rng: np.random.Generator) -> Split:
    """Each recording through speech.augment; babble is three other recordings at once."""
    feats = []
    for r in recordings:
        recipe = augment.draw_recipe(rng, strength=0.6)
        others = [recordings[int(i)].samples for i in rng.choice(len(recordings), 3)]
        babble = sum(np.resize(o / augment.rms(o), 16000 * 4) for o in others)
        x = augment.apply(r.samples, recipe, rng, babble=np.asarray(babble)).astype(np.float64) / 32768.0
        feats.append(features(x, normalizer))
    return Split(feats, [r.text for r in recordings], ["user"] * len(feats), ["aug"] * len(feats))


def finetune(data: Path, *, name: str, base: Path, epochs: int, root: Path, seed: int = 7) -> dict:
    if not NAME.match(name):
        raise FinetuneError(
            f"speech.finetune failed because --name {name!r} is not a short lower-case name.",
            hint="Use letters, digits and '-', e.g. --name cmdasr-kitchen.",
        )
    recordings = read_manifest(data)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, meta = load_model(base)
    fe = meta["front_end"]
    normalizer = Normalizer(np.array(fe["mean"], np.float32), np.array(fe["std"], np.float32))
    decoder = GrammarDecoder(GrammarSpec.from_dict(meta["grammar"]), meta["charset"], blank=meta["blank"])
    train, check = split(recordings)
    check_feats = [features(r.samples, normalizer) for r in check]
    check_texts = [r.text for r in check]
    before = command_wer(model, decoder, check_feats, check_texts)
    replay = load_split(CACHE / "train.npz", normalizer) if (CACHE / "train.npz").exists() else None
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    t0 = time.monotonic()
    for epoch in range(epochs):
        user = augmented(train, normalizer, rng)
        if replay is not None:
            pick = rng.choice(len(replay.feats), size=len(train), replace=False)
            user = Split(
                user.feats + [replay.feats[i] for i in pick],
                user.texts + [replay.texts[i] for i in pick],
                user.voices + ["replay"] * len(pick),
                user.noise + ["replay"] * len(pick),
            )
        # Epoch numbering from 1: every epoch may join pairs (train.epoch_items), as after the first there.
        train_epoch(model, opt, user, epoch=epoch + 1, epochs=epochs + 1, peak_lr=3e-4, batch_size=8, rng=rng)
    after = command_wer(model, decoder, check_feats, check_texts)
    result = {
        "recordings": len(recordings),
        "train": len(train),
        "check": len(check),
        "audio_seconds": round(sum(len(r.samples) for r in recordings) / augment.SAMPLE_RATE, 1),
        "check_wer_before": round(before, 4),
        "check_wer_after": round(after, 4),
        "epochs": epochs,
        "seconds": round(time.monotonic() - t0),
    }
    if after > before:
        raise FinetuneError(
            f"speech.finetune refused the result because the check set's WER got worse: "
            f"{before:.1%} before, {after:.1%} after ({len(check)} recordings kept aside). "
            "Nothing was written.",
            hint="Record more (or cleaner) commands, or try fewer --epochs.",
        )
    return write(model, meta, result, check, name=name, root=root)


def write(
    model: torch.nn.Module, meta: dict, result: dict, check: list[Recording], *, name: str, root: Path
) -> dict:
    out = root / "models" / "finetuned" / name
    (out / "eval").mkdir(parents=True, exist_ok=True)
    tmp = out / "cmdasr.pt.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(out / "cmdasr.pt")
    rows = []
    for i, r in enumerate(check):
        wav = f"check-{i:03d}.wav"
        write_wav(out / "eval" / wav, np.clip(np.round(r.samples * 32768.0), -32768, 32767).astype(np.int16))
        rows.append({"audio": wav, "text": r.text, "source": r.where})
    (out / "eval" / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    save_json(out / "cmdasr.json", meta | {"finetune": result, "base_test_wer": meta.get("test_wer")})
    rel = out.relative_to(root)
    spec = (root / "models" / "cmdasr.yaml").read_text()
    spec = spec.replace("speech/weights/cmdasr.pt", f"{rel}/cmdasr.pt")
    spec = spec.replace("speech/weights/cmdasr.json", f"{rel}/cmdasr.json")
    spec = spec.replace("assets/eval/cmdasr/manifest.jsonl", f"{rel}/eval/manifest.jsonl")
    total = len(check) + result["train"]
    header = f"# Fine-tuned from speech/weights/cmdasr.pt by speech.finetune on {total} recordings.\n"
    (root / "models" / f"{name}.yaml").write_text(header + spec)
    return result | {"spec": f"models/{name}.yaml", "weights": f"{rel}/cmdasr.pt"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of WAVs and manifest.jsonl")
    parser.add_argument("--name", default="cmdasr-finetuned", help="name of the new model spec")
    parser.add_argument("--base", type=Path, default=WEIGHTS / "cmdasr.pt")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--root", type=Path, default=Path(), help="the project root")
    args = parser.parse_args(argv)
    try:
        result = finetune(args.data, name=args.name, base=args.base, epochs=args.epochs, root=args.root)
    except EdgepackError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
