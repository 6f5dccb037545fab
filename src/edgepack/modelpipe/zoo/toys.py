"""Small models that exhibit the failures edgepack's checks exist for (and the demos of them).

Each is seeded, so the same factory always gives the same weights.
"""

from __future__ import annotations

import torch
from torch import nn


class Branchy(nn.Module):
    """A data-dependent branch: a trace freezes the path its example input took."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        if h.sum() > 0:
            return torch.relu(h)
        return -h


class LengthAsConstant(nn.Module):
    """Reads a size with int(): a trace (and the TorchScript exporter's trace) bakes it in."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.arange(int(x.shape[1]), dtype=x.dtype).reshape(1, -1, 1)
        return self.proj(x) + ramp


class ConvGRU(nn.Module):
    """Conv1d + GRU over [batch, frames, features]: torch 2.13's dynamo exporter fixes 'frames'."""

    def __init__(self, features: int = 8, channels: int = 16, hidden: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(features, channels, kernel_size=3, padding=1)
        self.gru = nn.GRU(channels, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        out, _ = self.gru(y)
        return out


class StreamingCTC(nn.Module):
    """The project's ASR interface: feats [B, T, n_mels], state [layers, B, hidden] -> log-probs, state."""

    def __init__(self, n_mels: int = 20, hidden: int = 32, vocab: int = 12) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(n_mels, hidden, kernel_size=3, padding=1)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, feats: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.conv(feats.transpose(1, 2))).transpose(1, 2)
        y, hn = self.gru(x, h0)
        return torch.log_softmax(self.head(y), dim=-1), hn


def branchy() -> nn.Module:
    return Branchy()


def length_as_constant() -> nn.Module:
    return LengthAsConstant()


def conv_gru() -> nn.Module:
    return ConvGRU()


def streaming_ctc() -> nn.Module:
    return StreamingCTC()


class RateAware(nn.Module):
    """Like a whole Silero VAD .jit: forward(x, sr: int), a branch on the rate, and state that carries
    from call to call until reset_states(). Saved with torch.jit.script(...).save(): a TorchScript file."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(16, 8)
        self.h = torch.zeros(0)

    def forward(self, x: torch.Tensor, sr: int) -> torch.Tensor:
        if sr == 8000:
            x = x * 2.0
        y = torch.tanh(self.proj(x))
        if self.h.numel() > 0:
            y = y + self.h
        self.h = y.detach().mean(0, keepdim=True)
        return y

    @torch.jit.export
    def reset_states(self) -> None:
        self.h = torch.zeros(0)


class LazyContext(nn.Module):
    """RateAware's state made Silero's way, `if not len(self.context)`: a `not` on an int, which the
    ONNX exporter refuses ("bitwise Not for non-boolean input values")."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(16, 8)
        self.context = torch.zeros(0)

    def forward(self, x: torch.Tensor, sr: int) -> torch.Tensor:
        if not len(self.context):
            self.context = torch.zeros(x.shape[0], 16)
        y = torch.tanh(self.proj(x + self.context)) * (2.0 if sr == 8000 else 1.0)
        self.context = x.detach()
        return y

    @torch.jit.export
    def reset_states(self) -> None:
        self.context = torch.zeros(0)
