"""Image encoder: a timm trunk (num_classes=0) -> pooled features, mean-pooled over a
movie's images.

Preprocessing is resolved from the model (`timm.data.resolve_model_data_config`): the EfficientNet
variants disagree on mean/std and input size, so nothing is hard-coded here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from model.config import ImageEncoderConfig
from model.crop_resize import resize_and_crop
from model.cuda_graphs import GraphedForward
from model.device import autocast_context, resolve_device, set_precision
from model.fold_bn import fold_batch_norms

Source = TypeVar("Source")
log = logging.getLogger("movierec.image")


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


@cache
def _resize_pool() -> ThreadPoolExecutor:
    """Threads for resizing one movie's images at once: Pillow's resize releases the GIL, and at
    600 px a resize costs about 12 ms per image, a third of a movie's ingest time on a GPU
    (docs/PERFORMANCE.md)."""
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="resize")


def _as_is(image: Image.Image) -> Image.Image:
    return image


def _probe(input_size: int, device: torch.device) -> torch.Tensor:
    """A small fixed random image batch for `fold_batch_norms`: its probe forward and check."""
    size = min(int(input_size), 128)  # a convolutional trunk takes any size; 600 px costs 20x
    generator = torch.Generator().manual_seed(0)
    return torch.randn((1, 3, size, size), generator=generator).to(device)


class ImageEncoder(nn.Module):
    """Frozen pretrained image tower: `encode(images)` -> float32 numpy (N, D)."""

    def __init__(self, config: ImageEncoderConfig, device: str | None = "auto") -> None:
        super().__init__()
        import timm.data

        self.config = config
        self.device = resolve_device(device)
        self.model = create_trunk(config).eval().to(self.device)
        data_cfg = timm.data.resolve_model_data_config(self.model)
        # Frozen, so its batch norms fold into the convolutions (checked on a probe), then
        # channels-last on every device: cuDNN's and oneDNN's convolutions both run it natively.
        # Each about 1.25-1.3x on 2 CPU cores for EfficientNets (docs/PERFORMANCE.md section 3).
        folded = fold_batch_norms(self.model, _probe(data_cfg["input_size"][-1], self.device))
        log.info("%s: %d batch norms folded into their convolutions", config.name, folded)
        self.model = self.model.to(memory_format=torch.channels_last)
        self.compute_dtype = set_precision(self.model, self.device, config.precision)
        if config.image_size:
            data_cfg["input_size"] = (3, config.image_size, config.image_size)
        self.data_config = data_cfg
        self.transform = timm.data.create_transform(**data_cfg, is_training=False)
        # Split timm's eval transform: the PIL resize/crop runs where the image arrives (a
        # request thread, in parallel), the to-float and normalisation run batched on the device.
        names = [type(t).__name__ for t in self.transform.transforms]
        if names[-2:] not in (["ToTensor", "Normalize"], ["MaybeToTensor", "Normalize"]):
            raise ValueError(f"unexpected timm eval transform {names} for {config.name}")
        # timm's pixels (to within rounding), resampled over the kept crop only
        self._resize_crop = resize_and_crop(self.transform)
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(data_cfg["mean"], device=self.device).view(shape)
        self._std = torch.tensor(data_cfg["std"], device=self.device).view(shape)
        self.graphed: GraphedForward | None = None
        if self.device.type == "cuda" and config.cuda_graphs:
            self.graphed = GraphedForward(
                self._forward,
                sample_shape=tuple(data_cfg["input_size"]),
                dtype=torch.uint8,
                device=self.device,
                max_batch=config.batch_size,
            )

    @property
    def dim(self) -> int:
        return int(self.model.num_features)  # type: ignore[arg-type]  # timm models have it

    @property
    def input_size(self) -> int:
        return int(self.data_config["input_size"][-1])

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Images -> (N, 3, H, W) uint8 model input before normalisation: the CPU half of
        `encode`, safe to run in many threads at once; a quarter of the memory of floats."""
        return self.prepare_from(images, _as_is)

    def prepare_from(
        self, sources: Sequence[Source], decode: Callable[[Source], Image.Image]
    ) -> torch.Tensor:
        """`prepare` for images not decoded yet (uploads): each is decoded and resized in one
        task of the resize pool, so a movie's images decode in parallel too, not one after
        another before their resizes (1-2 ms less per movie of 3 posters on 2 cores; more where
        large stills meet many cores). The first source that fails to decode, in order, raises."""
        if not sources:
            raise ValueError("every movie needs at least one image")

        def one(source: Source) -> np.ndarray:
            return self._resize_one(decode(source))

        pool = _resize_pool() if len(sources) > 1 else None  # one image: no thread hop
        arrays = list(pool.map(one, sources)) if pool else [one(sources[0])]
        # The layout change in numpy, not torch: a torch copy this size runs an OpenMP parallel
        # region, and every thread that runs one keeps its own OpenMP team. With the request
        # threads' teams alive, the embedding worker's encoders used 1.4 of 2 CPU cores instead
        # of 2 (docs/PERFORMANCE.md section 3).
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))

    def _resize_one(self, image: Image.Image) -> np.ndarray:
        return np.asarray(self._resize_crop(image.convert("RGB")))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 from `prepare` -> float input on the device, as timm's
        ToTensor + Normalize would give."""
        x = pixels.to(self.device, non_blocking=True).float().div_(255.0)
        return (x - self._mean) / self._std

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float input, or uint8 from `prepare` -> float32 features on the device.
        The one forward path: eager, and what a CUDA graph captures (autocast without its weight
        cache, which must not outlive a capture)."""
        x = self.normalize(pixels) if pixels.dtype == torch.uint8 else pixels.to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.compute_dtype, cache=False):
            return self.model(x).float()

    @torch.inference_mode()
    def encode_tensors(self, pixels: torch.Tensor) -> np.ndarray:
        """(N, 3, H, W) preprocessed (floats, or uint8 from `prepare`) -> (N, D); batching is
        the caller's job. uint8 batches replay a CUDA graph when graphs are on."""
        if pixels.dtype == torch.uint8 and self.graphed is not None:
            return self.graphed(pixels).cpu().numpy()
        return self._forward(pixels).cpu().numpy()

    def _encode_in_batches(self, pixels: torch.Tensor, batch_size: int | None) -> np.ndarray:
        size = batch_size or self.config.batch_size
        chunks = [self.encode_tensors(pixels[s : s + size]) for s in range(0, len(pixels), size)]
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def encode(self, images: Sequence[Image.Image], batch_size: int | None = None) -> np.ndarray:
        """One vector per image."""
        return self._encode_in_batches(self.prepare(images), batch_size)

    def encode_movies(
        self, movies: Sequence[Sequence[Image.Image]], batch_size: int | None = None
    ) -> np.ndarray:
        """One vector per movie: its images' features, averaged (the thesis' image network)."""
        return self.encode_prepared([self.prepare(images) for images in movies], batch_size)

    def encode_prepared(
        self, movies: Sequence[torch.Tensor], batch_size: int | None = None
    ) -> np.ndarray:
        """`encode_movies` for images already through `prepare`: one (N_i, 3, H, W) per movie,
        all movies' images in shared batches."""
        if any(len(pixels) == 0 for pixels in movies):
            raise ValueError("every movie needs at least one image")
        feats = self._encode_in_batches(torch.cat(list(movies)), batch_size)
        ends = np.cumsum([len(pixels) for pixels in movies])
        return np.stack(
            [feats[end - len(p) : end].mean(axis=0) for p, end in zip(movies, ends, strict=True)]
        )
