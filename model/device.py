"""Device, precision and autocast resolution, done once per process (cuda > mps > cpu)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from model.config import Precision

# The layers whose weights autocast casts to bf16 on every call: on a CPU they are stored in bf16
# instead (see store_matmul_weights).
_MATMUL_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def resolve_device(requested: str | None = "auto") -> torch.device:
    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(requested)


def _torch_cpu_probe(name: str) -> bool:
    """One of torch.cpu's private feature probes; False where this torch lacks it."""
    probe = getattr(torch.cpu, name, None)
    return bool(probe is not None and probe())


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon since Sapphire Rapids) and the kernel lets the
    process use them (Linux 5.16+ grants it on request)."""
    return _torch_cpu_probe("_is_amx_tile_supported") and _torch_cpu_probe("_init_amx")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware: AMX (above) or AVX512-BF16 (AMD EPYC and
    Ryzen since Zen 4, Intel Xeon Cooper Lake). oneDNN then runs bf16 matmuls and convolutions
    faster than fp32; elsewhere bf16 on a CPU is emulated and slower than fp32."""
    return cpu_has_amx() or _torch_cpu_probe("_is_avx512_bf16_supported")


def encoder_dtype(device: torch.device, precision: Precision = "auto") -> torch.dtype:
    """The dtype the frozen encoders compute in. auto: bf16 on CUDA and on CPUs with bf16 in
    hardware (per movie on 2 cores 1.4-1.7x faster with AMX and 1.6x with AVX512-BF16 alone, the
    dev encoders and KoBERT/b7 shapes alike, features a few % apart; docs/PERFORMANCE.md
    section 3), fp32 elsewhere (MPS, other CPUs)."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return torch.float32


def precision_name(dtype: torch.dtype) -> str:
    """The dtype as settings, logs and /ready spell it: fp32, bf16 or fp16."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def store_matmul_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """Keep the weights of the layers autocast runs in `dtype` in that dtype, so autocast
    finds them cast already. Its cache only lives as long as one autocast context, so it would
    otherwise cast every weight again on every call: on a CPU that took about 30 of BERT-base's
    110 ms for a 256-token plot. The numbers are the same (autocast's cast is this cast); used on
    CPUs, where the saving is largest."""
    for layer in model.modules():
        if isinstance(layer, _MATMUL_LAYERS):
            layer.to(dtype)


def set_precision(model: nn.Module, device: torch.device, precision: Precision) -> torch.dtype:
    """Resolve a frozen encoder's dtype (`encoder_dtype`) and, on a CPU, store its matmul
    weights in it. Its forward then runs under `autocast_context(device, dtype)`."""
    dtype = encoder_dtype(device, precision)
    if dtype != torch.float32 and device.type == "cpu":
        store_matmul_weights(model, dtype)
    return dtype


def autocast_context(device: torch.device, dtype: torch.dtype, *, cache: bool = True):
    """Autocast to `dtype` (bf16 or fp16) on `device`; a no-op for fp32. cache=False inside a
    CUDA graph capture: autocast's weight cache must not outlive it."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)
