"""Streaming ASR: the streaming rule gives the whole-file result; partial text; latency and RTF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepack_runtime.asr import Recognizer, decode_session, transcribe_stream
from edgepack_runtime.audio import read_wav


@pytest.fixture(scope="module")
def rec(asr_model: Path) -> Recognizer:
    return Recognizer.load(asr_model)


@pytest.mark.parametrize(("chunk_ms", "block"), [(20, 160), (160, 333), (320, 320), (1000, 4000)])
def test_streaming_equals_whole_file(rec: Recognizer, heldout: list, chunk_ms: int, block: int) -> None:
    for wav, _ in heldout[:3]:
        samples = read_wav(wav).samples
        whole = rec.transcribe(samples)
        streamed = transcribe_stream(rec, samples, chunk_ms=chunk_ms, block=block)
        assert streamed.text == whole.text
        assert streamed.log_probs.shape == whole.log_probs.shape
        np.testing.assert_allclose(streamed.log_probs, whole.log_probs, atol=1e-4)


def test_held_out_utterances_are_mostly_recognised(rec: Recognizer, heldout: list) -> None:
    """No WER is hard-coded here (the weights may improve); a working model gets most words right."""
    right = sum(transcribe_stream(rec, read_wav(w).samples).text == t for w, t in heldout[:8])
    assert right >= 5


def test_partial_text_grows_to_the_final_text(rec: Recognizer, heldout: list) -> None:
    result = transcribe_stream(rec, read_wav(heldout[0][0]).samples, chunk_ms=160)
    assert len(result.partials) >= 3 and result.partials[-1] == result.text
    assert all(b.startswith(a) for a, b in zip(result.partials, result.partials[1:], strict=False))
    assert len(result.chunk_ms) == -(-result.log_probs.shape[0] // 8)  # 16 frames -> 8 outputs per chunk
    assert all(ms > 0 for ms in result.chunk_ms) and 0 < result.rtf < 1


def test_chunks_are_whole_multiples_of_the_subsampling(rec: Recognizer) -> None:
    assert rec.meta.subsampling == 2 and rec.meta.left_context == 4
    assert [rec.chunk_frames(ms) for ms in (0, 10, 20, 30, 160, 325)] == [2, 2, 2, 2, 16, 32]


def test_decode_session_is_the_streaming_path(rec: Recognizer, heldout: list) -> None:
    samples = read_wav(heldout[1][0]).samples
    assert decode_session(rec.session, samples, 16000) == rec.transcribe(samples).text
