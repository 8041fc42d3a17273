"""Device and autocast resolution, done once per process (cuda > mps > cpu)."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(requested: str | None = "auto") -> torch.device:
    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(requested)


def autocast_context(device: torch.device, dtype: str | None = None, *, cache: bool = True):
    """bf16 (or fp16) autocast on CUDA; a no-op elsewhere, where fp32 is both fastest and exact.
    cache=False inside a CUDA graph capture: autocast's weight cache must not outlive it."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    amp_dtype = torch.float16 if dtype == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=amp_dtype, cache_enabled=cache)
