"""The largest tensor an image trunk writes in one forward, from a dry run on PyTorch's meta
device (shapes only: no memory, no arithmetic, no threads, under a second for b7). The service
asks before its first thread starts, to choose how glibc treats large freed blocks
(app/allocator.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from model.config import ImageEncoderConfig
from model.image import create_trunk


def largest_activation_bytes(config: ImageEncoderConfig, batch: int, dtype: torch.dtype) -> int:
    """Bytes of the largest module output of `config`'s trunk for `batch` images at its input
    size, in `dtype`. Module outputs only: a kernel's own scratch memory is not counted."""
    import timm.data

    with torch.device("meta"):
        trunk = create_trunk(replace(config, weights=None, pretrained=False)).eval().to(dtype)
    size = config.image_size or timm.data.resolve_model_data_config(trunk)["input_size"][-1]
    largest = largest_output_recorder(trunk)
    with torch.no_grad():
        trunk(torch.empty(batch, 3, size, size, device="meta", dtype=dtype))
    return largest()


def largest_output_recorder(model: torch.nn.Module) -> Callable[[], int]:
    """Hooks every module of `model`; the returned call gives the largest tensor any of them
    has output since, in bytes."""
    largest = 0

    def record(_module: torch.nn.Module, _inputs: object, output: object) -> None:
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size())

    for module in model.modules():
        module.register_forward_hook(record)
    return lambda: largest
