"""Train the command recogniser with CTC on the cached synthetic data.

    python -m speech.synth --out speech/.cache   # once: data and features
    python -m speech.train                       # writes speech/weights/cmdasr.{pt,json}

Seeded and single-threaded, so a rerun on the same machine gives the same
weights. After every epoch the greedy word error rate on the validation split
(training voices, other sentences) is measured; the best epoch so far is
written to ``speech/weights`` and a resumable checkpoint to the cache, so an
interrupted run loses at most one epoch (``--resume`` continues it). The
held-out voices of the test split are scored once, at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import torch
from torch import nn

from edgepack_runtime.ctc import greedy_decode
from edgepack_runtime.features import FrontEndConfig, Normalizer
from speech import synth, vocab, voices
from speech.model import LEFT_CONTEXT, SUBSAMPLING, CmdAsr, output_lengths, parameter_count

WEIGHTS = Path("speech/weights")
CACHE = Path("speech/.cache")
TRAIN_SEED = 7


@dataclass(frozen=True)
class Split:
    feats: list[np.ndarray]  # normalised, [T, n_mels] each
    texts: list[str]
    voices: list[str]
    noise: list[str]


def load_split(path: Path, normalizer: Normalizer | None, *, families: tuple[str, ...] = ()) -> Split:
    """A cached split; ``families`` keeps only those voice families (leave-one-family-out)."""
    with np.load(path) as data:
        bounds = np.cumsum(data["feat_lengths"])[:-1]
        feats = np.split(data["feats"], bounds)
        if normalizer is not None:
            feats = [normalizer(f) for f in feats]
        texts, voices, noise = ([str(v) for v in data[k]] for k in ("texts", "voices", "noise"))
    keep = [i for i, v in enumerate(voices) if not families or v.partition(":")[0] in families]
    return Split(*([column[i] for i in keep] for column in (feats, texts, voices, noise)))


def easy(utt: synth.Utterance) -> bool:
    """A grammar sentence, no room, full band, and clean or at >= 15 dB SNR."""
    r = utt.recipe
    grammar = set(vocab.words())
    return (r.rt60_s == 0 and r.channel == "wide" and (r.noise == "none" or r.snr_db >= 15)
            and all(w in grammar for w in utt.text.split()))  # fmt: skip


def keep_families(data: Split, families: tuple[str, ...]) -> list[int]:
    return [i for i, v in enumerate(data.voices) if v.partition(":")[0] in families]


def concat(splits: list[Split]) -> Split:
    return Split(*([x for s in splits for x in getattr(s, f.name)] for f in dataclasses.fields(Split)))


def global_stats(path: Path) -> Normalizer:
    with np.load(path) as data:
        feats = data["feats"].astype(np.float64)
    return Normalizer(mean=feats.mean(axis=0).astype(np.float32), std=feats.std(axis=0).astype(np.float32))


def pad_batch(feats: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(f) for f in feats])
    out = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        out[i, : len(f)] = torch.from_numpy(f)
    return out, lengths


def batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, *, shortest_first: bool = False
) -> list[np.ndarray]:
    """Shuffled batches of similar length (sorted within pools of 50 batches).

    ``shortest_first`` (the first epoch) orders all batches by length instead
    ("SortaGrad"): CTC leaves its all-blank plateau sooner on short utterances.
    """
    if shortest_first:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    out = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


def spec_augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Two frequency masks (<= 6 bins), two time masks (<= 8 frames) and a random
    smooth per-bin offset (a microphone's colouring, +-3 dB-ish) per utterance."""
    x = x.clone()
    bins = x.shape[2]
    for b in range(x.shape[0]):
        for _ in range(2):
            width, start = int(rng.integers(0, 7)), int(rng.integers(0, bins - 6))
            x[b, :, start : start + width] = 0.0
            width, start = int(rng.integers(0, 9)), int(rng.integers(0, max(1, x.shape[1] - 8)))
            x[b, start : start + width, :] = 0.0
        tilt = np.interp(np.arange(bins), np.linspace(0, bins - 1, 4), rng.normal(0.0, 0.25, 4))
        x[b] += torch.from_numpy(tilt.astype(np.float32))
    return x


def transcribe(model: CmdAsr, feats: list[np.ndarray], *, batch_size: int = 64) -> list[str]:
    model.eval()
    texts = []
    with torch.no_grad():
        for start in range(0, len(feats), batch_size):
            x, lengths = pad_batch(feats[start : start + batch_size])
            log_probs, _ = model(x)
            for lp, n in zip(log_probs.numpy(), output_lengths(lengths).tolist(), strict=True):
                texts.append(greedy_decode(lp[:n], vocab.CHARSET, blank=vocab.BLANK))
    return texts


def wer(refs: list[str], hyps: list[str]) -> float:
    return float(jiwer.wer(refs, hyps))


def epoch_items(n: int, rng: np.random.Generator, *, pair_prob: float) -> list[tuple[int, ...]]:
    """Every utterance once, some joined in pairs ("cmd one" + "cmd two").

    A causal model trained only on single commands learns to spell the most
    common first word ("turn", "set") from the frame count since the start,
    before any audio, and then never learns first words from the audio. Pairs
    put sentence-initial words mid-stream, where there is no position cue.
    Log-mel frames are 25 ms local, so joining feature sequences stands in for
    joining the audio.
    """
    order = rng.permutation(n)
    items: list[tuple[int, ...]] = []
    i = 0
    while i < n:
        take = 2 if i + 1 < n and rng.random() < pair_prob else 1
        items.append(tuple(int(j) for j in order[i : i + take]))
        i += take
    return items


def learning_rate(progress: float, *, peak: float, warmup: float = 0.08) -> float:
    """Linear warm-up to ``peak``, then cosine decay to zero; ``progress`` in [0, 1]."""
    if progress < warmup:
        return float(peak * (0.04 + 0.96 * progress / warmup))
    return float(peak * 0.5 * (1.0 + np.cos(np.pi * (progress - warmup) / (1.0 - warmup))))


def train_epoch(
    model: CmdAsr, opt: torch.optim.Optimizer, data: Split, *, epoch: int, epochs: int, peak_lr: float,
    batch_size: int, rng: np.random.Generator, pool: list[int] | None = None,
) -> float:  # fmt: skip
    """One pass over ``data`` (or only its utterances ``pool``); returns the mean CTC loss."""
    model.train()
    ctc = nn.CTCLoss(blank=vocab.BLANK, zero_infinity=True)
    pool = pool if pool is not None else list(range(len(data.feats)))
    items = [
        tuple(pool[i] for i in item)
        for item in epoch_items(len(pool), rng, pair_prob=0.0 if epoch == 0 else 0.5)
    ]
    feats = [np.concatenate([data.feats[i] for i in item]) for item in items]
    texts = [" ".join(data.texts[i] for i in item) for item in items]
    total = 0.0
    groups = batches(np.array([len(f) for f in feats]), batch_size, rng, shortest_first=epoch == 0)
    for step, idx in enumerate(groups):
        for group in opt.param_groups:
            group["lr"] = learning_rate((epoch + step / len(groups)) / epochs, peak=peak_lr)
        x, x_len = pad_batch([feats[i] for i in idx])
        targets = [torch.tensor(vocab.encode(texts[i])) for i in idx]
        log_probs, _ = model(spec_augment(x, rng))
        loss = ctc(
            log_probs.transpose(0, 1),
            torch.cat(targets),
            output_lengths(x_len),
            torch.tensor([len(t) for t in targets]),
        )
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        total += loss.item()
    return total / len(groups)


def metadata(
    model: CmdAsr,
    normalizer: Normalizer,
    config: FrontEndConfig,
    *,
    families: tuple[str, ...],
    **extra: object,
) -> dict:
    return {
        "model": "cmdasr",
        "format": "torch state_dict (cmdasr.pt), ONNX opset 17 (cmdasr.onnx)",
        "front_end": {
            **dataclasses.asdict(config),
            "window": "hann, periodic, win_length samples zero-padded to n_fft",
            "mel_scale": "htk (2595 * log10(1 + hz / 700)), triangular, peak 1.0",
            "framing": "no centering: frame i = samples [i * hop, i * hop + win)",
            "log": "log(mel_power + log_floor)",
            "mean": [round(float(v), 6) for v in normalizer.mean],
            "std": [round(float(v), 6) for v in normalizer.std],
        },
        "sample_rate": config.sample_rate,
        "n_mels": config.n_mels,
        "n_fft": config.n_fft,
        "win": config.win_length,
        "hop": config.hop_length,
        "charset": vocab.CHARSET,
        "blank": vocab.BLANK,
        "subsampling": SUBSAMPLING,
        "left_context_frames": LEFT_CONTEXT,
        "streaming_rule": (
            "prepend the previous left_context_frames input frames (zeros before the first chunk) to "
            "each chunk; every chunk but the last has a multiple of `subsampling` frames; carry hN "
            "into the next h0; a chunk of T frames gives ceil(T / subsampling) output frames"
        ),
        "architecture": {
            "n_mels": model.n_mels,
            "channels": model.conv1.out_channels,
            "hidden": model.hidden,
            "layers": model.layers,
            "vocab_size": model.out.out_features,
            "parameters": parameter_count(model),
        },
        "state_shape": [model.layers, "batch", model.hidden],
        "data": {
            "seed": synth.DATA_SEED,
            "generator": (
                "speech/synth.py: espeak-ng + flite voices, speed/pitch, room, microphone, level, "
                "white/pink/babble/hum noise 0-30 dB SNR, telephone band and 8 kHz (speech/augment.py)"
            ),
            "train_families": list(families),
            "train_voices": [str(v) for f in families for v in voices.train_voices(f)],
            "held_out_family": [str(v) for v in voices.test_voices("festival")],
        },
        "grammar": vocab.grammar_spec(),
        "torch": torch.__version__,
        **extra,
    }


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def save_weights(model: CmdAsr, path: Path) -> None:
    tmp = path.with_suffix(".pt.tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--families", default="espeak,flite", help="voice families to train on (leave-one-family-out)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--easy-epochs", type=int, default=2, help="first epochs on the easy utterances only")
    parser.add_argument("--data-seed", type=int, default=synth.DATA_SEED)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: CACHE/checkpoint.pt")
    parser.add_argument("--score-only", action="store_true", help="only score the saved weights on test")
    args = parser.parse_args(argv)
    if args.score_only:
        finish(args.out, args.cache, global_stats(args.cache / "train.npz"))
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = FrontEndConfig()
    normalizer = global_stats(args.cache / "train.npz")
    families = tuple(args.families.split(","))
    parts = [args.cache / "train.npz", *sorted(args.cache.glob("train-*.npz"))]
    train = concat([load_split(p, normalizer) for p in parts])
    # The recipe of utterance i is synth.draw("train", i): cheap to redraw, no audio needed.
    is_easy = [easy(synth.draw("train", i, args.data_seed)[0]) for i in range(len(train.feats))]
    everything = keep_families(train, families)
    easy_pool = [i for i in everything if is_easy[i]]
    val = load_split(args.cache / "val.npz", normalizer, families=families)
    model = CmdAsr(n_mels=config.n_mels, vocab_size=len(vocab.CHARSET))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ckpt_path = args.checkpoint or args.cache / "checkpoint.pt"
    start_epoch, best, elapsed, history = 0, float("inf"), 0.0, []
    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        start_epoch, best, elapsed, history = ckpt["epoch"], ckpt["best"], ckpt["elapsed"], ckpt["history"]
    print(f"{parameter_count(model)} parameters, {len(everything)} training utterances "
          f"({len(easy_pool)} easy ones for the first {args.easy_epochs} epochs)", flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = {"train": len(everything), "train_easy": len(easy_pool), "val": len(val.feats)}
    for epoch in range(start_epoch, args.epochs):
        t0 = time.monotonic()
        loss = train_epoch(
            model, opt, train, epoch=epoch, epochs=args.epochs, peak_lr=args.lr,
            batch_size=args.batch_size, rng=rng,
            pool=easy_pool if epoch < args.easy_epochs else everything,
        )  # fmt: skip
        val_wer = wer(val.texts, transcribe(model, val.feats))
        elapsed += time.monotonic() - t0
        history.append({"epoch": epoch + 1, "loss": round(loss, 4), "val_wer": round(val_wer, 4)})
        print(
            f"epoch {epoch + 1}: loss {loss:.3f} val WER {val_wer:.3%} ({elapsed / 60:.1f} min)", flush=True
        )
        if val_wer <= best:
            best = val_wer
            save_weights(model, args.out / "cmdasr.pt")
            meta = metadata(
                model, normalizer, config, families=families, epoch=epoch + 1, val_wer=val_wer,
                train_seconds=round(elapsed),
                train_seed=args.seed, dataset_sizes=sizes, history=history,
            )  # fmt: skip
            save_json(args.out / "cmdasr.json", meta)
        torch.save(
            {
                "model": model.state_dict(), "opt": opt.state_dict(),
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
                "best": best, "elapsed": elapsed, "history": history,
            },
            ckpt_path,
        )  # fmt: skip
    finish(args.out, args.cache, normalizer)


def finish(out: Path, cache: Path, normalizer: Normalizer) -> None:
    """Score the best weights (greedy, free text) on each family's test voices; record it."""
    meta = json.loads((out / "cmdasr.json").read_text())
    model = CmdAsr(n_mels=meta["n_mels"], vocab_size=len(meta["charset"]))
    model.load_state_dict(torch.load(out / "cmdasr.pt", weights_only=True))
    meta["test_wer"] = {}
    for family in voices.FAMILIES:
        path = cache / f"test-{family}.npz"
        if not path.exists():
            continue
        test = load_split(path, normalizer)
        hyps = transcribe(model, test.feats)
        per_voice = {}
        for voice in sorted(set(test.voices)):
            pairs = [(r, h) for r, h, v in zip(test.texts, hyps, test.voices, strict=True) if v == voice]
            per_voice[voice] = round(wer([r for r, _ in pairs], [h for _, h in pairs]), 4)
        meta["test_wer"][family] = {"wer": round(wer(test.texts, hyps), 4), "per_voice": per_voice}
        print(f"{family}: held-out WER {meta['test_wer'][family]['wer']:.3%} per voice {per_voice}")
        for r, h in [(r, h) for r, h in zip(test.texts, hyps, strict=True) if r != h][:5]:
            print(f"  ref: {r!r}\n  hyp: {h!r}")
    save_json(out / "cmdasr.json", meta)


if __name__ == "__main__":
    main()
