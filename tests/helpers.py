"""Test helpers: tiny random-init encoders saved to disk and loaded back like real weights."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(
    os.environ.get("MOVIEREC_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)
DATASET = SHARED / "data" / "tmdb-similar"
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
LITE0 = SHARED / "models" / "tf_efficientnet_lite0"
SHARED_REASON = (
    f"../shared not found at {SHARED} (set MOVIEREC_SHARED): real data/weights tests skipped"
)

VOCAB_TEXT = (
    "a the of and to in is for on with his her their an as by from at that this it who when "
    "love war space ship alien killer murder detective family father mother son daughter "
    "friend city night dark ghost house school team game music band dance king queen world "
    "earth journey find must save life death secret past future young old man woman boy girl "
    "dog action comedy drama horror thriller fantasy animation documentary adventure romance "
)
WORDS = VOCAB_TEXT.split()


def make_tiny_bert(directory: Path, **config_overrides: int) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocab, saved in Hugging Face format.

    `config_overrides` (BertConfig fields) build other shapes, e.g. BERT-base for benchmarks.
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,'!?-"))
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *chars,
        *("##" + c for c in chars),
    ]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    for key, value in config_overrides.items():
        setattr(config, key, value)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return directory


def make_tiny_timm(path: Path, name: str = "test_efficientnet") -> Path:
    """A timm test model's random-init weights in a safetensors file (the local-weights path)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def image_bytes(
    fmt: str = "JPEG", size=(64, 48), color=(200, 30, 30), seed: int | None = None
) -> bytes:
    if seed is None:
        im = Image.new("RGB", size, color)
    else:
        rng = np.random.default_rng(seed)
        im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()
