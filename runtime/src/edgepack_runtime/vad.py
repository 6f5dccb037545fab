"""Silero VAD (v5+ ONNX) run as a stream: fixed chunks, carried state and context."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort

# Silero VAD v5 at 16 kHz takes 512-sample chunks, each prefixed by the last 64
# samples of the previous one (the model's own wrapper does the same).
CHUNK = 512
CONTEXT = 64
RATE = 16000


@dataclass
class SileroVAD:
    session: ort.InferenceSession
    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), dtype=np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros((1, CONTEXT), dtype=np.float32))

    def __post_init__(self) -> None:
        # The package's ONNX files take the rate as input `sr`; an export of the 16 kHz model alone does not.
        self.takes_rate = any(i.name == "sr" for i in self.session.get_inputs())

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, CONTEXT), dtype=np.float32)

    def step(self, chunk: np.ndarray) -> float:
        """Speech probability of one 512-sample chunk at 16 kHz."""
        x = np.concatenate([self.context, chunk.reshape(1, CHUNK).astype(np.float32)], axis=1)
        feeds = {"input": x, "state": self.state}
        if self.takes_rate:
            feeds["sr"] = np.array(RATE, dtype=np.int64)
        prob, self.state = self.session.run(None, feeds)
        self.context = x[:, -CONTEXT:]
        return float(prob[0, 0])

    def probabilities(self, samples: np.ndarray, *, chunk_seconds: list[float] | None = None) -> np.ndarray:
        """Per-chunk probabilities over a whole signal (the tail is zero-padded).

        ``chunk_seconds`` collects each chunk's inference time, the latency a
        streaming caller sees.
        """
        self.reset()
        pad = (-len(samples)) % CHUNK
        padded = np.concatenate([samples.astype(np.float32), np.zeros(pad, dtype=np.float32)])
        probs = []
        for chunk in padded.reshape(-1, CHUNK):
            t0 = time.perf_counter()
            probs.append(self.step(chunk))
            if chunk_seconds is not None:
                chunk_seconds.append(time.perf_counter() - t0)
        return np.array(probs, dtype=np.float32)
