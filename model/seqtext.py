"""The thesis' trainable and classic text encoders: RNN / LSTM (trained jointly) and Word2Vec
means."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize_words(text: str) -> list[str]:
    """Lower-cased word tokens. The thesis used a Korean morphological analyser; \\w+ is the
    language-neutral stand-in (whitespace-delimited Korean eojeol stay whole words)."""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Word -> id (0 = padding, 1 = unknown), built from training text only."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = ["<pad>", "<unk>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 1, max_size: int = 50_000) -> Vocabulary:
        counts = Counter(w for t in texts for w in tokenize_words(t))
        kept = [w for w, c in counts.most_common(max_size) if c >= min_count]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str], max_length: int = 512) -> np.ndarray:
        """Zero-padded id matrix (N, L), L = the longest synopsis (capped at max_length)."""
        rows = [[self.index.get(w, 1) for w in tokenize_words(t)][:max_length] for t in texts]
        width = max(1, max((len(r) for r in rows), default=1))
        out = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out


class RecurrentTextEncoder(nn.Module):
    """Embedding -> RNN/LSTM with 20 tanh cells -> linear to 768 (the thesis' RNN and LSTM
    towers)."""

    def __init__(
        self,
        vocab_size: int,
        kind: Literal["rnn", "lstm"] = "lstm",
        hidden: int = 20,
        embed_dim: int = 128,
        out_dim: int = 768,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        rnn_cls = nn.LSTM if kind == "lstm" else nn.RNN
        self.rnn = rnn_cls(embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, out_dim)
        self.out_dim = out_dim

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        lengths = (token_ids != 0).sum(dim=1).clamp_min(1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(token_ids), lengths, batch_first=True, enforce_sorted=False
        )
        _, state = self.rnn(packed)
        last = state[0] if isinstance(state, tuple) else state  # (1, B, H)
        return torch.tanh(self.out(last[-1]))  # (B, out_dim)


class Word2VecEncoder:
    """Mean of pretrained word vectors (gensim KeyedVectors; `pip install movierec[word2vec]`)."""

    def __init__(self, path: str) -> None:
        try:
            from gensim.models import KeyedVectors
        except ImportError as exc:  # optional extra
            raise ImportError("Word2Vec needs gensim: pip install 'movierec[word2vec]'") from exc
        if path.endswith((".bin", ".txt", ".vec")):
            self.vectors = KeyedVectors.load_word2vec_format(path, binary=path.endswith(".bin"))
        else:
            self.vectors = KeyedVectors.load(path)
        self.name = f"word2vec:{path}"

    @property
    def dim(self) -> int:
        return int(self.vectors.vector_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = [w for w in tokenize_words(text) if w in self.vectors.key_to_index]
            if words:
                out[i] = np.mean([self.vectors[w] for w in words], axis=0)
        return out
