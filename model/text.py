"""Text encoder: a transformers BERT-family model + pooling -> float32 (N, D).

KoBERT (`skt/kobert-base-v1`) ships a SentencePiece model and expects BERT-style `[CLS] X [SEP]`
inputs, while its hub config names XLNetTokenizer (which would put `<sep><cls>` at the end). We
therefore drive its `spiece.model` with sentencepiece directly and add [CLS]/[SEP] ourselves, as
SKT's own `KoBERTTokenizer` does. Every other model uses `AutoTokenizer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from model.config import TextEncoderConfig
from model.device import autocast_context, resolve_device, set_precision

# Every attention backend but cuDNN's: it builds a plan for each new sequence length, and plots
# all have different lengths. Measured on an H200 with a BERT-base: 57 ms per new plot with it,
# 8 ms without (docs/PERFORMANCE.md, GPU figures).
_ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _resolve_file(name_or_dir: str, filename: str) -> str:
    local = Path(name_or_dir) / filename
    if local.is_file():
        return str(local)
    from huggingface_hub import hf_hub_download  # only for hub ids

    return hf_hub_download(name_or_dir, filename)


class KoBertTokenizer:
    """SentencePiece tokenizer producing BERT-style batches for KoBERT (vocab 8,002)."""

    def __init__(self, spm_path: str) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=spm_path)
        ids = {t: self.sp.piece_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]")}
        unk = self.sp.unk_id()
        missing = [t for t, i in ids.items() if i == unk and t != "[UNK]"]
        if missing:
            raise ValueError(f"{spm_path} lacks KoBERT special tokens {missing}")
        self.cls_id, self.sep_id, self.pad_id = ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]

    @classmethod
    def from_pretrained(cls, name_or_dir: str) -> KoBertTokenizer:
        return cls(_resolve_file(name_or_dir, "spiece.model"))

    def __call__(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        rows = [
            [self.cls_id] + self.sp.encode(t, out_type=int)[: max_length - 2] + [self.sep_id]
            for t in texts
        ]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": torch.zeros_like(input_ids),
        }


class _AutoTokenizerAdapter:
    def __init__(self, name_or_dir: str) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(name_or_dir)

    def __call__(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        return dict(
            self.tok(
                list(texts),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
        )


def pool(hidden: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, L, D) hidden states -> (B, D): the [CLS] vector or the mask-weighted mean."""
    if kind == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class TextEncoder(nn.Module):
    """Frozen pretrained text tower: `encode(texts)` -> float32 numpy (N, D)."""

    def __init__(self, config: TextEncoderConfig, device: str | None = "auto") -> None:
        super().__init__()
        from transformers import AutoModel

        self.config = config
        self.device = resolve_device(device)
        if config.resolved_tokenizer() == "kobert":
            self.tokenizer: KoBertTokenizer | _AutoTokenizerAdapter = (
                KoBertTokenizer.from_pretrained(config.name)
            )
        else:
            self.tokenizer = _AutoTokenizerAdapter(config.name)
        self.model = AutoModel.from_pretrained(config.name).to(self.device).eval()
        self.compute_dtype = set_precision(self.model, self.device, config.precision)
        positions = getattr(self.model.config, "max_position_embeddings", config.max_length)
        self.max_length = min(config.max_length, positions)
        self.pooling = config.resolved_pooling()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        batch_size = batch_size or self.config.batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = [t if t.strip() else "." for t in texts[start : start + batch_size]]
            batch = {
                k: v.to(self.device) for k, v in self.tokenizer(chunk, self.max_length).items()
            }
            autocast = autocast_context(self.device, self.compute_dtype)
            with autocast, sdpa_kernel(_ATTENTION_BACKENDS):
                hidden = self.model(**batch).last_hidden_state
            pooled = pool(hidden.float(), batch["attention_mask"], self.pooling)
            out[start : start + len(chunk)] = pooled.cpu().numpy()
        return out
