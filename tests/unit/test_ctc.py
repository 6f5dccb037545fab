"""Greedy CTC decoding, whole and streamed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgepack_runtime.ctc import StreamingGreedyDecoder, collapse, greedy_decode

CHARSET = "_ abc"


def _one_hot(path: list[int], vocab: int = len(CHARSET)) -> np.ndarray:
    scores = np.full((len(path), vocab), -5.0, dtype=np.float32)
    scores[np.arange(len(path)), path] = 0.0
    return scores


def test_collapse_merges_repeats_and_drops_blanks() -> None:
    assert collapse([0, 2, 2, 0, 2, 3, 3, 0, 1, 4], blank=0) == [2, 2, 3, 1, 4]
    assert collapse([], blank=0) == []
    assert collapse([2, 2, 3], blank=0, previous=2) == [3]


def test_greedy_decode_text() -> None:
    assert greedy_decode(_one_hot([0, 2, 2, 0, 2, 1, 1, 4, 0]), CHARSET, blank=0) == "aa c"
    with pytest.raises(ValueError, match=r"\[T, V\]"):
        greedy_decode(np.zeros(5), CHARSET, blank=0)


@pytest.mark.parametrize("seed", range(5))
def test_streaming_matches_whole_for_any_split(seed: int) -> None:
    rng = np.random.default_rng(seed)
    path = rng.integers(0, len(CHARSET), size=60)
    path[10:14] = 2  # a repeat that chunk cuts will split
    scores = _one_hot(path.tolist())
    cuts = sorted({0, len(path), *rng.integers(0, len(path), size=6).tolist(), 11, 12})
    decoder = StreamingGreedyDecoder(CHARSET, blank=0)
    pieces = [decoder.feed(scores[a:b]) for a, b in itertools.pairwise(cuts)]
    whole = greedy_decode(scores, CHARSET, blank=0)
    assert "".join(pieces) == whole == decoder.text
    decoder.reset()
    assert decoder.text == ""
    assert decoder.feed(scores) == whole
