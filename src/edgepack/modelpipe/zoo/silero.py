"""Silero VAD v5+ (16 kHz) as a torch module, loadable from the silero-vad wheel's own files.

Layer names follow the 16 kHz model inside ``silero_vad.jit`` (``_model.*``),
the weights the package's ONNX files hold too; ``silero_vad_16k.safetensors``
(the package's tinygrad port) loads with a rename table (models/silero-vad-safetensors.yaml)
and holds weights of another release: its outputs differ from the ONNX files'.

Interface: the package's streaming ONNX one, without the unused ``sr`` input:
``input`` [batch, 64 + 512] (the last 64 samples of the previous chunk, then the
chunk) and ``state`` [2, batch, 128] (LSTM h and c) -> ``output`` [batch, 1]
(speech probability) and ``stateN``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_FFT, HOP, PAD = 256, 128, 64


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.reparam_conv = nn.Conv1d(cin, cout, kernel_size=3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.reparam_conv(x))


class _STFT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("forward_basis_buffer", torch.zeros(2 * (N_FFT // 2 + 1), 1, N_FFT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv1d(F.pad(x, (0, PAD), mode="reflect").unsqueeze(1), self.forward_basis_buffer, stride=HOP)
        cutoff = N_FFT // 2 + 1
        return torch.sqrt(x[:, :cutoff, :] ** 2 + x[:, cutoff:, :] ** 2)  # magnitude


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTMCell(128, 128)
        self.decoder = nn.Sequential(
            nn.Dropout(0.1), nn.ReLU(), nn.Conv1d(128, 1, kernel_size=1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = self._lstm_step(x.squeeze(-1), state[0], state[1])
        return self.decoder(h.unsqueeze(-1)), torch.stack([h, c])

    def _lstm_step(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """nn.LSTMCell's arithmetic spelled out: the TorchScript exporter cannot export LSTMCell with a
        dynamic batch ("ONNX export of operator unsafe_chunk, unknown dimension size")."""
        cell = self.rnn
        gates = F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh)
        n = cell.hidden_size
        i, f = torch.sigmoid(gates[:, :n]), torch.sigmoid(gates[:, n : 2 * n])
        g, o = torch.tanh(gates[:, 2 * n : 3 * n]), torch.sigmoid(gates[:, 3 * n :])
        c = f * c + i * g
        return o * torch.tanh(c), c


class SileroVAD16k(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft = _STFT()
        self.encoder = nn.Sequential(
            _Block(129, 128, 1), _Block(128, 64, 2), _Block(64, 64, 2), _Block(64, 128, 1)
        )
        self.decoder = _Decoder()

    def forward(self, input: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.decoder(self.encoder(self.stft(input)), state)
        return out.squeeze(1).mean(dim=1, keepdim=True), state


def silero_vad_16k() -> nn.Module:
    return SileroVAD16k()
