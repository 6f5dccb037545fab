"""Greedy CTC decoding: best token per frame, collapse repeats, drop blanks.

:class:`StreamingGreedyDecoder` carries the previous frame's token across
chunks, so a repeat split over a chunk boundary is still collapsed and the
streamed text equals the whole-utterance text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def best_path(log_probs: np.ndarray) -> np.ndarray:
    """Argmax token per frame of ``[T, V]`` scores."""
    if log_probs.ndim != 2:
        raise ValueError(f"expected [T, V] scores, got shape {log_probs.shape}")
    best: np.ndarray = np.argmax(log_probs, axis=-1)
    return best


def collapse(tokens: Sequence[int] | np.ndarray, *, blank: int, previous: int | None = None) -> list[int]:
    """Collapse runs of a token, then drop blanks; ``previous`` is the token before ``tokens``."""
    out: list[int] = []
    for token in (int(t) for t in tokens):
        if token != previous and token != blank:
            out.append(token)
        previous = token
    return out


def tokens_to_text(tokens: Sequence[int], charset: str | Sequence[str]) -> str:
    return "".join(charset[t] for t in tokens)


def greedy_decode(log_probs: np.ndarray, charset: str | Sequence[str], *, blank: int) -> str:
    """Text of one utterance's ``[T, V]`` scores; ``charset[blank]`` is never emitted."""
    return tokens_to_text(collapse(best_path(log_probs), blank=blank), charset)


@dataclass
class StreamingGreedyDecoder:
    """Greedy decoding over consecutive chunks of one utterance."""

    charset: str | Sequence[str]
    blank: int

    def __post_init__(self) -> None:
        self._previous: int | None = None
        self.tokens: list[int] = []

    def feed(self, log_probs: np.ndarray) -> str:
        """Decode the next chunk of ``[T, V]`` scores; return the text it adds."""
        path = best_path(log_probs)
        new = collapse(path, blank=self.blank, previous=self._previous)
        if len(path):
            self._previous = int(path[-1])
        self.tokens.extend(new)
        return tokens_to_text(new, self.charset)

    @property
    def text(self) -> str:
        return tokens_to_text(self.tokens, self.charset)

    def reset(self) -> None:
        self._previous = None
        self.tokens = []
