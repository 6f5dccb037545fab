"""The project's command recogniser (speech/model.py) as it is exported: its streaming step.

``forward`` is :meth:`CmdAsr.forward_chunk`: ``feats`` [B, left_context + T,
n_mels] with the left context first, ``h0`` [layers, B, hidden] ->
log-probabilities [B, ceil(T / 2), V] and ``hN``; the runtime applies the
streaming rule around it (edgepack_runtime.asr).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

try:
    from speech.model import CmdAsr
except ImportError:  # speech/ is the project's training code at the repository root, not an installed package
    sys.path.append(str(Path(__file__).resolve().parents[4]))
    from speech.model import CmdAsr


class CmdAsrChunk(CmdAsr):
    def forward(self, feats: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.forward_chunk(feats, h0)


def cmdasr_chunk() -> CmdAsrChunk:
    """The architecture of speech/weights/cmdasr.pt (the defaults of CmdAsr)."""
    return CmdAsrChunk()
