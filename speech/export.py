"""Export the trained model to ONNX and check it against eager torch.

    python -m speech.export     # speech/weights/cmdasr.pt -> speech/weights/cmdasr.onnx

The graph is :meth:`CmdAsr.forward_chunk`: inputs ``feats`` [B, 4 + T, n_mels]
(left context first) and ``h0`` [layers, B, hidden]; outputs ``log_probs``
[B, ceil(T / 2), V] and ``hN``. It is exported with the TorchScript exporter
(``dynamo=False``): torch 2.13's default dynamo exporter bakes the sequence
length into the Conv1d + GRU graph, so the time axis would not stay dynamic.

Checks, recorded in ``cmdasr.json`` under ``onnx``:
* onnxruntime vs eager torch at 37, 100 and 333 frames (max abs error < 1e-4);
* chunked inference carrying ``hN`` and the left context == whole-utterance inference;
* held-out WER of the full on-device path: int16 audio -> ``StreamingFeatures`` in
  random-size chunks -> ONNX in 32-frame chunks -> ``StreamingGreedyDecoder``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import warnings
from pathlib import Path

import jiwer
import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from edgepack_runtime.ctc import StreamingGreedyDecoder
from edgepack_runtime.features import FrontEndConfig, Normalizer, StreamingFeatures
from speech.model import CmdAsr
from speech.train import CACHE, WEIGHTS, save_json

TOLERANCE = 1e-4


class _Chunk(nn.Module):
    def __init__(self, model: CmdAsr) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_chunk(feats, h0)


def load_model(weights: Path) -> tuple[CmdAsr, dict]:
    meta = json.loads(weights.with_suffix(".json").read_text())
    arch = meta["architecture"]
    model = CmdAsr(
        n_mels=arch["n_mels"],
        vocab_size=arch["vocab_size"],
        channels=arch["channels"],
        hidden=arch["hidden"],
        layers=arch["layers"],
    )
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval(), meta


def export(model: CmdAsr, path: Path, *, left_context: int) -> None:
    feats = torch.zeros(1, left_context + 20, model.n_mels)
    tmp = path.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        # dynamo=False is deliberate (see the module docstring); h0 is an explicit
        # input, which is what the GRU batch-size warning asks for.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size", UserWarning)
        _export(model, feats, tmp)
    tmp.replace(path)


def _export(model: CmdAsr, feats: torch.Tensor, tmp: Path) -> None:
    torch.onnx.export(
        # A new wrapper module is in training mode, and the exporter restores that
        # mode recursively afterwards: make it eval so `model` stays eval too.
        _Chunk(model).eval(),
        (feats, model.initial_state(1)),
        str(tmp),
        dynamo=False,
        opset_version=17,
        input_names=["feats", "h0"],
        output_names=["log_probs", "hN"],
        dynamic_axes={
            "feats": {0: "batch", 1: "time"},
            "h0": {1: "batch"},
            "log_probs": {0: "batch", 1: "out_time"},
            "hN": {1: "batch"},
        },
    )


class OnnxStream:
    """The streaming rule of ``cmdasr.json`` on an onnxruntime session."""

    def __init__(self, session: ort.InferenceSession, meta: dict, batch: int = 1) -> None:
        self.session = session
        self.left = meta["left_context_frames"]
        self.history = np.zeros((batch, self.left, meta["n_mels"]), dtype=np.float32)
        layers, _, hidden = meta["state_shape"]
        self.h = np.zeros((layers, batch, hidden), dtype=np.float32)

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        x = np.concatenate([self.history, chunk], axis=1)
        out, self.h = self.session.run(None, {"feats": x, "h0": self.h})
        self.history = x[:, -self.left :]
        return out


def check_lengths(model: CmdAsr, session: ort.InferenceSession, meta: dict) -> dict:
    rng = np.random.default_rng(0)
    errors: dict[str, float] = {}
    for t in (37, 100, 333):
        feats = rng.standard_normal((2, t, meta["n_mels"])).astype(np.float32)
        with torch.no_grad():
            ref, ref_h = (v.numpy() for v in model(torch.from_numpy(feats)))
        padded = np.concatenate(
            [np.zeros((2, meta["left_context_frames"], meta["n_mels"]), np.float32), feats], 1
        )
        out, h = session.run(None, {"feats": padded, "h0": np.zeros_like(ref_h)})
        errors[f"whole_{t}"] = float(max(np.abs(out - ref).max(), np.abs(h - ref_h).max()))
        stream = OnnxStream(session, meta, batch=2)
        cuts = [0, *sorted(set((rng.integers(1, t, size=5) // 2 * 2).tolist()) - {0}), t]
        chunked = np.concatenate([stream.feed(feats[:, a:b]) for a, b in itertools.pairwise(cuts)], 1)
        errors[f"chunked_{t}"] = float(max(np.abs(chunked - ref).max(), np.abs(stream.h - ref_h).max()))
    worst = max(errors.values())
    print(f"max abs error vs eager torch: {worst:.2e} {errors}")
    if worst >= TOLERANCE:
        raise SystemExit(f"ONNX export check failed: max abs error {worst:.2e} >= {TOLERANCE}")
    return errors


def streaming_wer(session: ort.InferenceSession, meta: dict, test: Path, *, chunk_frames: int = 32) -> float:
    """WER of the on-device path, from int16 audio, on the held-out voices."""
    fe = meta["front_end"]
    config = FrontEndConfig(**{k: fe[k] for k in FrontEndConfig.__dataclass_fields__})
    normalizer = Normalizer(np.array(fe["mean"], np.float32), np.array(fe["std"], np.float32))
    rng = np.random.default_rng(1)
    with np.load(test) as data:
        audio = np.split(data["audio"], np.cumsum(data["audio_lengths"])[:-1])
        texts = list(data["texts"])
    hyps = []
    for samples in audio:
        features = StreamingFeatures(config, normalizer)
        stream = OnnxStream(session, meta)
        decoder = StreamingGreedyDecoder(meta["charset"], blank=meta["blank"])
        pending = np.zeros((0, config.n_mels), np.float32)
        pos = 0
        while pos < len(samples):
            size = int(rng.integers(1, 3200))
            pending = np.concatenate([pending, features.feed(samples[pos : pos + size])])
            pos += size
            while len(pending) >= chunk_frames or (pos >= len(samples) and len(pending)):
                chunk, pending = pending[:chunk_frames], pending[chunk_frames:]
                decoder.feed(stream.feed(chunk[None])[0])
        hyps.append(decoder.text)
    return float(jiwer.wer(texts, hyps))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS / "cmdasr.pt")
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, meta = load_model(args.weights)
    onnx_path = args.weights.with_suffix(".onnx")
    export(model, onnx_path, left_context=meta["left_context_frames"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    errors = check_lengths(model, session, meta)
    wer = streaming_wer(session, meta, args.cache / "test-festival.npz")
    print(f"held-out family (festival) WER, ONNX streaming from audio, greedy: {wer:.3%}")
    meta["onnx"] = {
        "file": onnx_path.name,
        "opset": 17,
        "exporter": "torch.onnx.export(dynamo=False)",
        "inputs": {"feats": ["batch", "left_context_frames + time", "n_mels"], "h0": meta["state_shape"]},
        "outputs": {"log_probs": ["batch", "ceil(time / subsampling)", "vocab"], "hN": meta["state_shape"]},
        "max_abs_error_vs_torch": errors,
        "test_wer_streaming": round(wer, 4),
        "bytes": onnx_path.stat().st_size,
    }
    save_json(args.weights.with_suffix(".json"), meta)


if __name__ == "__main__":
    main()
