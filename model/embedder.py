"""MovieEmbedder: the trainable part between cached encoder features and the 256-d space.

    text features (or token ids -> RNN/LSTM tower) ---+
                                                      +-> normalise -> head -> (B, 256)
    image features (mean over the movie's images) ---+

head = "conv" is the thesis' text-image network (Table 6); "linear" is concat -> FC (VSE++ style).
The input normalisation keeps KoBERT and EfficientNet features, whose scales differ by an order of
magnitude, from drowning each other:
  standardize  per-feature train-set mean/std (stored as buffers)
  l2           each modality L2-normalised, then scaled so every feature has unit RMS; the same
               geometry as the training-free cosine baseline, which the conv stack keeps better
               than standardised inputs (docs/REPRODUCTION.md)
  none         raw features (the thesis)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from model.config import FusionConfig
from model.fusion import ConcatLinear, TextImageNet
from model.seqtext import RecurrentTextEncoder

InputNorm = Literal["standardize", "l2", "none"]
INPUT_NORMS: tuple[str, ...] = get_args(InputNorm)
# What `movierec train` uses unless told otherwise (docs/REPRODUCTION.md items 6-7). The spec's own
# default stays "standardize": checkpoints and the untrained baseline were built with it.
DEFAULT_INPUT_NORM: InputNorm = "l2"


@dataclass
class EmbedderSpec:
    fusion: FusionConfig
    head: Literal["conv", "linear"] = "conv"
    text_tower: Literal["rnn", "lstm"] | None = None  # None: cached frozen text features
    vocab_size: int | None = None
    input_norm: InputNorm = "standardize"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fusion"] = self.fusion.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedderSpec:
        data = dict(data)
        data["fusion"] = FusionConfig.from_dict(data["fusion"])
        if "standardize" in data:  # checkpoints written before input_norm existed
            data["input_norm"] = "standardize" if data.pop("standardize") else "none"
        return cls(**data)


class MovieEmbedder(nn.Module):
    in_mean: torch.Tensor  # (T+I,) buffers: train-set feature mean and std
    in_std: torch.Tensor

    def __init__(self, spec: EmbedderSpec) -> None:
        super().__init__()
        self.spec = spec
        cfg = spec.fusion
        self.text_tower = (
            RecurrentTextEncoder(spec.vocab_size or 2, spec.text_tower, out_dim=cfg.text_dim)
            if spec.text_tower
            else None
        )
        self.head: nn.Module = (
            TextImageNet(cfg)
            if spec.head == "conv"
            else ConcatLinear(cfg.text_dim, cfg.image_dim, cfg.out_dim)
        )
        self.register_buffer("in_mean", torch.zeros(cfg.in_dim))
        self.register_buffer("in_std", torch.ones(cfg.in_dim))

    def fit_standardizer(self, text: torch.Tensor | None, image: torch.Tensor) -> None:
        """Set the input mean/std from training features (text is None when a text tower is
        trained jointly)."""
        if self.spec.input_norm != "standardize":
            return
        t_dim = self.spec.fusion.text_dim
        if text is not None:
            self.in_mean[:t_dim] = text.mean(0)
            self.in_std[:t_dim] = text.std(0).clamp_min(1e-6)
        self.in_mean[t_dim:] = image.mean(0)
        self.in_std[t_dim:] = image.std(0).clamp_min(1e-6)

    @property
    def l2_scale(self) -> float:
        """input_norm="l2" multiplies each unit-length modality by this: unit RMS per feature,
        both modalities weighted equally."""
        return (self.spec.fusion.in_dim / 2) ** 0.5

    def head_input(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """(B, T+I): the features as the head sees them, after `input_norm`."""
        if self.text_tower is not None:
            text = self.text_tower(text)
        if self.spec.input_norm == "l2":
            scale = self.l2_scale
            text, image = F.normalize(text, dim=1) * scale, F.normalize(image, dim=1) * scale
        return (torch.cat([text, image], dim=1) - self.in_mean) / self.in_std

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.head_input(text, image)
        t_dim = self.spec.fusion.text_dim
        return self.head(x[:, :t_dim], x[:, t_dim:])  # (B, out_dim), unit norm
