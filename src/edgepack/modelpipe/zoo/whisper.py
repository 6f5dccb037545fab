"""Whisper (openai-whisper's model code) as two exportable graphs: encoder and cached decoder.

* encoder: ``mel`` [batch, 80, frames] -> ``audio_features`` [batch, frames / 2, d]. Whisper's own
  encoder asserts 30 s of audio (3000 frames); this one slices the positional embedding to the
  input, so the audio length is a dynamic axis (at 3000 frames it equals whisper's encoder).
* decoder with a kv-cache: ``tokens`` [batch, n], ``audio_features`` [batch, t, d], ``past``
  [2 * layers, batch, p, d] (self-attention keys and values of the p tokens before) -> ``logits``
  [batch, n, vocab], ``present`` [2 * layers, batch, p + n, d]. The first call passes p = 0;
  each next call passes the previous ``present``. Cross-attention keys and values are recomputed
  from ``audio_features`` each call (one graph, no second cache to keep in step).

Factories give Whisper's tiny dimensions with seeded random weights (no hub can be reached); a
spec points ``source.weights`` at a local checkpoint (e.g. tiny.pt) for the real ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TINY = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_vocab": 51865,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
}


def tiny_whisper(seed: int = 0) -> nn.Module:
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**TINY))
    nn.init.normal_(model.decoder.positional_embedding, std=0.02)  # torch.empty() in whisper: uninitialised
    return model.eval()


class Encoder(nn.Module):
    def __init__(self, whisper: nn.Module) -> None:
        super().__init__()
        self.encoder = whisper.encoder

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        x = F.gelu(e.conv2(F.gelu(e.conv1(mel)))).permute(0, 2, 1)
        x = x + e.positional_embedding[: x.shape[1]]
        for block in e.blocks:
            x = block(x)
        return e.ln_post(x)


def _attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None
) -> torch.Tensor:
    b, n, d = q.shape
    hd = d // heads
    q = q.reshape(b, n, heads, hd).transpose(1, 2)
    k = k.reshape(b, k.shape[1], heads, hd).transpose(1, 2)
    v = v.reshape(b, v.shape[1], heads, hd).transpose(1, 2)
    w = (q @ k.transpose(-1, -2)) * (hd**-0.5)
    if mask is not None:
        w = w + mask
    return (torch.softmax(w, dim=-1) @ v).transpose(1, 2).reshape(b, n, d)


class CachedDecoder(nn.Module):
    def __init__(self, whisper: nn.Module) -> None:
        super().__init__()
        self.decoder = whisper.decoder

    def forward(
        self, tokens: torch.Tensor, audio_features: torch.Tensor, past: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.decoder
        p, n = past.shape[2], tokens.shape[1]
        x = d.token_embedding(tokens) + d.positional_embedding[p : p + n]
        q_pos = torch.arange(n, device=tokens.device) + p
        k_pos = torch.arange(p + n, device=tokens.device)
        mask = torch.zeros(n, p + n).masked_fill(k_pos[None, :] > q_pos[:, None], float("-inf"))
        present = []
        for i, block in enumerate(d.blocks):
            h = block.attn_ln(x)
            k = torch.cat([past[2 * i], block.attn.key(h)], dim=1)
            v = torch.cat([past[2 * i + 1], block.attn.value(h)], dim=1)
            present += [k, v]
            x = x + block.attn.out(_attention(block.attn.query(h), k, v, block.attn.n_head, mask))
            h = block.cross_attn_ln(x)
            ca = block.cross_attn
            x = x + ca.out(
                _attention(ca.query(h), ca.key(audio_features), ca.value(audio_features), ca.n_head, None)
            )
            x = x + block.mlp(block.mlp_ln(x))
        logits = d.ln(x) @ d.token_embedding.weight.T
        return logits, torch.stack(present)


def tiny_encoder() -> nn.Module:
    return Encoder(tiny_whisper()).eval()


def tiny_decoder() -> nn.Module:
    return CachedDecoder(tiny_whisper()).eval()
