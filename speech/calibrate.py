"""Calibrate the grammar decoder's confidence and choose the reject threshold.

    python -m speech.calibrate      # after speech.train; writes grammar.calibration into cmdasr.json

Only training families take part (espeak-ng and flite), so festival, the
held-out family, stays unseen by every choice made here:

* commands: the validation split (augmented, 0-30 dB SNR, telephone band...);
  a decode counts as right when its sentence equals the reference;
* non-commands: Apache-2.0 read aloud (speech/longform.py), clean, with
  babble at 15 dB and pink noise at 10 dB, cut by the runtime's endpointer;
  plus a minute of each noise alone.

A logistic regression of the decoder's two features (``log1p(gap)`` and gap
per character, edgepack_runtime.grammar) on right (1) vs wrong or
non-command (0) gives the confidence; the threshold is the lowest that keeps
false accepts on the non-command audio at or under ``--max-fa`` per 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from edgepack_runtime.endpoint import segments
from edgepack_runtime.features import FrontEndConfig, Normalizer, log_mel
from edgepack_runtime.grammar import Calibration, Command, GrammarDecoder, GrammarSpec
from speech import augment, longform, synth
from speech.export import load_model
from speech.train import CACHE, WEIGHTS, load_split, save_json

TUNE_SECONDS = 600.0


def decode_all(model: torch.nn.Module, decoder: GrammarDecoder, feats: list[np.ndarray]) -> list[Command]:
    out = []
    with torch.no_grad():
        for f in feats:
            log_probs, _ = model(torch.from_numpy(f)[None])
            out.append(decoder.decode(log_probs[0].numpy()))
    return out


def segment_feats(x: np.ndarray, normalizer: Normalizer) -> list[np.ndarray]:
    config = FrontEndConfig()
    feats = []
    for seg in segments(x):
        piece = x[seg.start : seg.end]
        if len(piece) > config.win_length * 2:
            feats.append(normalizer(log_mel(piece, config)))
    return feats


def non_commands(cache: Path, seed: int, normalizer: Normalizer) -> tuple[list[np.ndarray], float]:
    """Segments of the tuning text (clean and noisy) and of noise alone; and their total seconds."""
    feats: list[np.ndarray] = []
    seconds = 0.0
    for i, (noise, snr) in enumerate((("none", 30.0), ("babble", 15.0), ("pink", 10.0))):
        x = longform.cached(
            cache,
            longform.TUNE_TEXT,
            ("espeak", "flite"),
            seconds=TUNE_SECONDS / 3,
            seed=seed,
            index=10 + i,
            noise=noise,
            snr_db=snr,
        )  # type: ignore[arg-type]
        feats += segment_feats(x, normalizer)
        seconds += len(x) / augment.SAMPLE_RATE
    rng = np.random.default_rng(seed)
    babble = synth.babble_bank(seed, index=2)
    for kind in ("white", "pink", "hum", "babble"):
        n = augment.noise(kind, 60 * augment.SAMPLE_RATE, rng, babble)  # type: ignore[arg-type]
        n = n / augment.rms(n) * 10 ** (rng.uniform(-50, -25) / 20)
        feats += segment_feats(np.clip(np.round(n * 32768), -32768, 32767).astype(np.int16), normalizer)
        seconds += 60.0
    return feats, seconds


def fit(x: np.ndarray, y: np.ndarray, *, steps: int = 100) -> np.ndarray:
    """Logistic regression by Newton's method; x [n, 2] -> weights [3] (bias first).

    Unweighted, so the confidence estimates P(right) on the tuning mix itself."""
    xb = np.column_stack([np.ones(len(x)), x])
    weight = np.full(len(y), 1.0 / len(y))
    w = np.zeros(3)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -60, 60)))
        grad = xb.T @ (weight * (p - y)) + 1e-4 * w
        hess = (xb * (weight * p * (1 - p))[:, None]).T @ xb + 1e-4 * np.eye(3)
        w -= np.linalg.solve(hess, grad)
    return w


def features(commands: list[Command]) -> np.ndarray:
    return np.array([[math.log1p(min(c.gap, 1e6)), min(c.gap, 1e6) / (len(c.text) + 1)] for c in commands])


def calibrate(weights: Path, cache: Path, *, seed: int, max_fa_per_10min: float) -> dict:
    model, meta = load_model(weights)
    fe = meta["front_end"]
    normalizer = Normalizer(np.array(fe["mean"], np.float32), np.array(fe["std"], np.float32))
    spec = GrammarSpec.from_dict(meta["grammar"])
    decoder = GrammarDecoder(spec, meta["charset"], blank=meta["blank"])
    val = load_split(cache / "val.npz", normalizer)
    pos = decode_all(model, decoder, val.feats)
    right = np.array([c.text == t for c, t in zip(pos, val.texts, strict=True)], dtype=float)
    neg_feats, neg_seconds = non_commands(cache, seed, normalizer)
    neg = decode_all(model, decoder, neg_feats)
    x = np.concatenate([features(pos), features(neg)])
    y = np.concatenate([right, np.zeros(len(neg))])
    w = fit(x, y)
    conf = lambda c: Calibration(float(w[0]), float(w[1]), float(w[2])).confidence(c.gap, len(c.text))  # noqa: E731
    neg_conf = np.sort([conf(c) for c in neg])[::-1]
    allowed = int(max_fa_per_10min * neg_seconds / 600)
    threshold = float(min(0.99, neg_conf[allowed] + 1e-6)) if len(neg_conf) > allowed else 0.05
    threshold = max(threshold, 0.05)
    pos_conf = np.array([conf(c) for c in pos])
    report = {
        "bias": round(float(w[0]), 4),
        "w_log": round(float(w[1]), 4),
        "w_char": round(float(w[2]), 4),
        "threshold": round(threshold, 4),
    }
    stats = {
        "tune_commands": len(pos),
        "tune_commands_right": int(right.sum()),
        "tune_accepted_right": int(((pos_conf >= threshold) & (right == 1)).sum()),
        "tune_accepted_wrong": int(((pos_conf >= threshold) & (right == 0)).sum()),
        "tune_non_command_segments": len(neg),
        "tune_non_command_minutes": round(neg_seconds / 60, 1),
        "tune_false_accepts": int((neg_conf >= threshold).sum()),
        "max_fa_per_10min": max_fa_per_10min,
    }
    meta["grammar"]["calibration"] = report
    meta["calibration"] = stats
    save_json(weights.with_suffix(".json"), meta)
    return report | stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS / "cmdasr.pt")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--seed", type=int, default=synth.DATA_SEED)
    parser.add_argument(
        "--max-fa", type=float, default=1.0, help="false accepts per 10 min allowed on tuning"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        json.dumps(
            calibrate(args.weights, args.cache, seed=args.seed, max_fa_per_10min=args.max_fa), indent=2
        )
    )


if __name__ == "__main__":
    main()
