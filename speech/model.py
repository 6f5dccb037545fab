"""A compact streaming acoustic model: causal conv front end, GRU, CTC over characters.

Layout: ``Conv1d(k=3) -> ReLU -> Conv1d(k=3, stride=2) -> ReLU -> LayerNorm -> GRU -> Linear``.
Both convolutions are unpadded ("valid"); :meth:`CmdAsr.forward` puts
``LEFT_CONTEXT`` zero frames before the utterance, so output frame ``t`` sees
input frames ``2t - 4 .. 2t`` (causal, no look-ahead) and the conv part has
exactly 4 frames of left receptive field.

Streaming uses :meth:`CmdAsr.forward_chunk`, which is what is exported to
ONNX: its input already carries its left context, and it runs the GRU only on
the new frames. The rule, also written into ``cmdasr.json``:

* keep a history of the last ``LEFT_CONTEXT`` input frames, starting as zeros;
* every chunk but the last has a multiple of ``SUBSAMPLING`` frames;
* run ``forward_chunk(cat(history, chunk), h)`` and carry its ``hN`` as the next ``h``;
* a chunk of ``T`` frames yields ``ceil(T / SUBSAMPLING)`` output frames.

The concatenated outputs then equal ``forward(whole_utterance)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEFT_CONTEXT = 4
SUBSAMPLING = 2


class CmdAsr(nn.Module):
    def __init__(
        self,
        *,
        n_mels: int = 40,
        vocab_size: int = 28,
        channels: int = 128,
        hidden: int = 192,
        layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.hidden = hidden
        self.layers = layers
        self.conv1 = nn.Conv1d(n_mels, channels, kernel_size=3)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3, stride=SUBSAMPLING)
        self.norm = nn.LayerNorm(channels)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(channels, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(self.layers, batch, self.hidden)

    def forward_chunk(self, feats: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``feats`` [B, LEFT_CONTEXT + T, n_mels] (context first), ``h0`` [layers, B, hidden].

        Returns log-probabilities [B, ceil(T / 2), V] and the final GRU state.
        """
        x = feats.transpose(1, 2)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.drop(self.norm(x.transpose(1, 2)))
        y, h_n = self.gru(x, h0)
        return F.log_softmax(self.out(self.drop(y)), dim=-1), h_n

    def forward(
        self, feats: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole utterances: ``feats`` [B, T, n_mels] -> ([B, ceil(T / 2), V], hN)."""
        if h0 is None:
            h0 = self.initial_state(feats.shape[0]).to(feats)
        return self.forward_chunk(F.pad(feats, (0, 0, LEFT_CONTEXT, 0)), h0)


def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Output frames for inputs of ``lengths`` frames."""
    return (lengths + SUBSAMPLING - 1) // SUBSAMPLING


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
