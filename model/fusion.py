"""The text-image network (Table 6) and the training-free fallback projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import FusionConfig


class TextImageNet(nn.Module):
    """[text ; image] as a 1-channel sequence -> 5 conv modules -> flatten -> FC -> L2 normalise."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = 1
        for kernel, filters in zip(config.kernel_sizes, config.filters, strict=True):
            layers += [
                nn.Conv1d(in_channels, filters, kernel, stride=1, padding=config.padding),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(config.pool_size, config.pool_stride),
                nn.Dropout(config.dropout),
            ]
            in_channels = filters
        self.features = nn.Sequential(*layers)
        self.flat_dim = in_channels * self.output_length(config)
        self.head = nn.Linear(self.flat_dim, config.out_dim)

    @staticmethod
    def output_length(config: FusionConfig) -> int:
        """Sequence length after the conv stack; raises if the input is too short for the spec."""
        length = config.in_dim
        for kernel in config.kernel_sizes:
            if config.padding == "valid":
                length = length - kernel + 1
            length = (length - config.pool_size) // config.pool_stride + 1
            if length < 1:
                raise ValueError(
                    f"input of {config.in_dim} features is too short for kernels "
                    f"{config.kernel_sizes}; use 'same' padding or smaller kernels"
                )
        return length

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = torch.cat([text, image], dim=1).unsqueeze(1)  # (B, 1, T+I)
        x = self.features(x)  # (B, C, L)
        x = self.head(x.flatten(1))  # (B, out_dim)
        return F.normalize(x, dim=1)


class ConcatLinear(nn.Module):
    """concat -> FC -> L2: the VSE++ style head and, frozen at a seed, the 'untrained' baseline."""

    def __init__(self, text_dim: int, image_dim: int, out_dim: int = 256) -> None:
        super().__init__()
        self.linear = nn.Linear(text_dim + image_dim, out_dim)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(torch.cat([text, image], dim=1)), dim=1)


FALLBACK_SEED = 0  # the service's projection when no fusion checkpoint is configured


class RandomProjection(nn.Module):
    """Training-free fallback: L2-normalise each modality, concat, fixed seeded Gaussian projection.

    A Johnson-Lindenstrauss projection keeps cosine similarities of the concatenated features
    approximately, so it is a sane default until a fusion checkpoint is trained.
    """

    weight: torch.Tensor  # (T+I, out_dim) buffer, fixed by the seed

    def __init__(self, text_dim: int, image_dim: int, out_dim: int = 256, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        weight = torch.randn(text_dim + image_dim, out_dim, generator=gen) / out_dim**0.5
        self.register_buffer("weight", weight)
        self.seed = seed

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = torch.cat([F.normalize(text, dim=1), F.normalize(image, dim=1)], dim=1)
        return F.normalize(x @ self.weight, dim=1)
