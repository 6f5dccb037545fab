"""Speech recognition with the bundled CTC model: whole files and streams.

The model's rate, front end, charset and streaming rule come from its ONNX
metadata (:mod:`edgepack_runtime.modelmeta`). Streaming follows that rule:
features are computed incrementally (:class:`StreamingFeatures`), every
chunk but the last has a multiple of ``subsampling`` frames and is prefixed
with the previous ``left_context`` input frames (zeros at the start), the
GRU state ``hN`` is carried into the next ``h0``, and a streaming greedy CTC
decoder emits text as chunks arrive. The concatenated log-probabilities then
equal one whole-file run, so both give the same text (tests/unit/test_asr_stream.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgepack_runtime.audio import AudioError
from edgepack_runtime.ctc import StreamingGreedyDecoder, greedy_decode
from edgepack_runtime.features import StreamingFeatures, log_mel
from edgepack_runtime.grammar import Command, GrammarDecoder, GrammarSpec
from edgepack_runtime.modelmeta import AsrMeta, asr_meta, custom_props
from edgepack_runtime.session import session as ort_session

DEFAULT_CHUNK_MS = 320


@dataclass(frozen=True)
class Transcript:
    text: str
    log_probs: np.ndarray  # [frames / subsampling, vocab]
    audio_seconds: float
    compute_seconds: float
    chunk_ms: list[float] = field(default_factory=list)  # streaming: latency of each chunk
    partials: list[str] = field(default_factory=list)  # streaming: the text after each chunk that added some

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else math.nan


@dataclass
class Recognizer:
    session: Any  # onnxruntime.InferenceSession
    meta: AsrMeta
    grammar: GrammarDecoder | None = None  # from the model's edgepack.grammar, if it has one

    @classmethod
    def load(cls, model: Path, *, threads: int = 1) -> Recognizer:
        if not model.is_file():
            hint = " (outside the image: --model PATH, or --target NAME: its last build)"
            shown = hint if str(model).startswith("/opt/") else ""
            raise FileNotFoundError(f"{model}: no such model file{shown}")
        return cls.from_session(ort_session(model, threads=threads), shown_as=str(model))

    @classmethod
    def from_session(cls, session: Any, *, shown_as: str = "model") -> Recognizer:
        props = custom_props(session)
        meta = asr_meta(props, shown_as=shown_as)
        spec = GrammarSpec.from_props(props)
        grammar = GrammarDecoder(spec, meta.charset, blank=meta.blank) if spec is not None else None
        return cls(session, meta, grammar)

    def command(self, log_probs: np.ndarray) -> Command | None:
        """The best command of the model's grammar (None for a model without one)."""
        return self.grammar.decode(log_probs) if self.grammar is not None else None

    @property
    def rate(self) -> int:
        return self.meta.sample_rate

    def chunk_frames(self, chunk_ms: float) -> int:
        """Feature frames per chunk for ``chunk_ms``: a positive multiple of the subsampling."""
        m = self.meta
        frames = round(chunk_ms / 1000 * m.sample_rate / m.frontend.hop_length)
        return max(m.subsampling, frames - frames % m.subsampling)

    def initial_state(self) -> tuple[np.ndarray, np.ndarray]:
        m = self.meta
        history = np.zeros((1, m.left_context, m.frontend.n_mels), dtype=np.float32)
        return history, np.zeros((m.layers, 1, m.hidden), dtype=np.float32)

    def run(self, feats: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One graph run: ``feats`` [1, left_context + T, n_mels] -> log-probs [ceil(T / sub), V], hN."""
        log_probs, h_n = self.session.run(None, {"feats": feats, "h0": h0})
        return log_probs[0], h_n

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """The whole utterance in one run (samples at :attr:`rate`)."""
        t0 = time.perf_counter()
        feats = log_mel(samples, self.meta.frontend, normalizer=self.meta.normalizer)
        if len(feats) == 0:
            raise AudioError(f"audio of {len(samples)} samples is shorter than one analysis window.")
        history, h0 = self.initial_state()
        log_probs, _ = self.run(np.concatenate([history, feats[None]], axis=1), h0)
        text = greedy_decode(log_probs, self.meta.charset, blank=self.meta.blank)
        return Transcript(text, log_probs, len(samples) / self.rate, time.perf_counter() - t0)

    def stream(self, *, chunk_ms: float = DEFAULT_CHUNK_MS) -> AsrStream:
        return AsrStream(self, self.chunk_frames(chunk_ms))


class AsrStream:
    """One utterance arriving in pieces: :meth:`feed` returns the text each piece adds."""

    def __init__(self, recognizer: Recognizer, chunk_frames: int) -> None:
        m = recognizer.meta
        self.rec, self.chunk_frames = recognizer, chunk_frames
        self.features = StreamingFeatures(m.frontend, m.normalizer)
        self.history, self.h = recognizer.initial_state()
        self.pending = np.zeros((0, m.frontend.n_mels), dtype=np.float32)
        self.decoder = StreamingGreedyDecoder(m.charset, blank=m.blank)
        self.samples_in = 0
        self.compute_seconds = 0.0
        self.chunk_ms: list[float] = []
        self.partials: list[str] = []
        self._log_probs: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> str:
        """Add samples; run every complete chunk. A chunk's latency counts from this call's start."""
        t0 = time.perf_counter()
        self.samples_in += len(samples)
        self.pending = np.concatenate([self.pending, self.features.feed(samples)])
        added = ""
        while len(self.pending) >= self.chunk_frames:
            added += self._run(self.pending[: self.chunk_frames], t0)
            self.pending = self.pending[self.chunk_frames :]
        self.compute_seconds += time.perf_counter() - t0
        return added

    def finish(self) -> str:
        """Run what is left (any number of frames) and return the text it adds."""
        t0 = time.perf_counter()
        added = self._run(self.pending, t0) if len(self.pending) else ""
        self.pending = self.pending[:0]
        self.compute_seconds += time.perf_counter() - t0
        return added

    def _run(self, chunk: np.ndarray, t0: float) -> str:
        x = np.concatenate([self.history, chunk[None]], axis=1)
        log_probs, self.h = self.rec.run(x, self.h)
        self.history = x[:, -self.rec.meta.left_context :]
        self._log_probs.append(log_probs)
        added = self.decoder.feed(log_probs)
        self.chunk_ms.append((time.perf_counter() - t0) * 1e3)
        if added:
            self.partials.append(self.decoder.text)
        return added

    @property
    def text(self) -> str:
        return self.decoder.text

    def transcript(self) -> Transcript:
        vocab = len(self.rec.meta.charset)
        log_probs = np.concatenate(self._log_probs) if self._log_probs else np.zeros((0, vocab), np.float32)
        return Transcript(self.text, log_probs, self.samples_in / self.rec.rate, self.compute_seconds,
                          list(self.chunk_ms), list(self.partials))  # fmt: skip


def transcribe_stream(
    rec: Recognizer, samples: np.ndarray, *, chunk_ms: float = DEFAULT_CHUNK_MS, block: int = 320
) -> Transcript:
    """Stream a whole signal through :class:`AsrStream` in blocks of ``block`` samples."""
    stream = rec.stream(chunk_ms=chunk_ms)
    for start in range(0, len(samples), block):
        stream.feed(samples[start : start + block])
    stream.finish()
    return stream.transcript()


def decode_session(session: Any, samples: np.ndarray, rate: int) -> str:
    """The on-device streaming path on one utterance, free-text (greedy CTC) output."""
    rec = Recognizer.from_session(session)
    if rate != rec.rate:
        raise AudioError(f"evaluation audio is {rate} Hz, the model expects {rec.rate} Hz.")
    return transcribe_stream(rec, samples).text


def decode_command_session(session: Any, samples: np.ndarray, rate: int) -> str:
    """``evaluate.decoder`` of models/cmdasr.yaml: streaming, then the grammar's best sentence.

    The best guess is scored even when its confidence is below the reject
    threshold (rejection is measured on its own by bench/asr.py); a model
    without a grammar gives its free text.
    """
    rec = Recognizer.from_session(session)
    if rate != rec.rate:
        raise AudioError(f"evaluation audio is {rate} Hz, the model expects {rec.rate} Hz.")
    result = transcribe_stream(rec, samples)
    command = rec.command(result.log_probs)
    return command.text if command is not None else result.text
