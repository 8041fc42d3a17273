"""Image encoder: a timm trunk (num_classes=0) -> pooled features, mean-pooled over a
movie's images.

Preprocessing is resolved from the model (`timm.data.resolve_model_data_config`): the EfficientNet
variants disagree on mean/std and input size, so nothing is hard-coded here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from model.config import ImageEncoderConfig
from model.device import autocast_context, resolve_device


def create_trunk(config: ImageEncoderConfig) -> nn.Module:
    """timm model with its classifier removed; local weight files go through
    `pretrained_cfg_overlay`."""
    import timm

    kwargs: dict = {"num_classes": 0}
    pretrained = config.pretrained
    if config.weights:
        kwargs["pretrained_cfg_overlay"] = {"file": config.weights}
        pretrained = True
    return timm.create_model(config.name, pretrained=pretrained, **kwargs)


class ImageEncoder(nn.Module):
    """Frozen pretrained image tower: `encode(images)` -> float32 numpy (N, D)."""

    def __init__(self, config: ImageEncoderConfig, device: str | None = "auto") -> None:
        super().__init__()
        import timm.data

        self.config = config
        self.device = resolve_device(device)
        self.model = create_trunk(config).eval().to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        data_cfg = timm.data.resolve_model_data_config(self.model)
        if config.image_size:
            data_cfg["input_size"] = (3, config.image_size, config.image_size)
        self.data_config = data_cfg
        self.transform = timm.data.create_transform(**data_cfg, is_training=False)

    @property
    def dim(self) -> int:
        return int(self.model.num_features)  # type: ignore[arg-type]  # timm models have it

    @property
    def input_size(self) -> int:
        return int(self.data_config["input_size"][-1])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))  # (3, H, W)

    @torch.inference_mode()
    def encode_tensors(self, pixels: torch.Tensor) -> np.ndarray:
        """(N, 3, H, W) preprocessed -> (N, D); batching is the caller's job."""
        pixels = pixels.to(self.device)
        if self.device.type == "cuda":
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device):
            feats = self.model(pixels)
        return feats.float().cpu().numpy()

    def encode(self, images: Sequence[Image.Image], batch_size: int | None = None) -> np.ndarray:
        batch_size = batch_size or self.config.batch_size
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            out[start : start + len(chunk)] = self.encode_tensors(
                torch.stack([self.preprocess(im) for im in chunk])
            )
        return out

    def encode_movies(
        self, movies: Sequence[Sequence[Image.Image]], batch_size: int | None = None
    ) -> np.ndarray:
        """One vector per movie: its images' features, averaged (the thesis' image network)."""
        flat = [im for images in movies for im in images]
        if any(len(images) == 0 for images in movies):
            raise ValueError("every movie needs at least one image")
        feats = self.encode(flat, batch_size)
        out, start = [], 0
        for images in movies:
            out.append(feats[start : start + len(images)].mean(axis=0))
            start += len(images)
        return np.stack(out).astype(np.float32)
