"""Fusion-net cost per movie: parameters, multiply-adds (counted from the spec) and CPU time,
for the paper preset (Table 6, KoBERT 768 + EfficientNet-b7 2560) and the small preset.

    .venv/bin/python -m bench.fusion
"""

from __future__ import annotations

import argparse

import torch

from bench.common import pct, save, timed
from model.config import FusionConfig, fusion_preset
from model.fusion import TextImageNet


def macs(cfg: FusionConfig) -> int:
    """Multiply-adds of one forward pass, counted from the layer shapes."""
    length, channels, total = cfg.in_dim, 1, 0
    for kernel, filters in zip(cfg.kernel_sizes, cfg.filters, strict=True):
        length = length - kernel + 1 if cfg.padding == "valid" else length
        total += length * filters * channels * kernel
        length = (length - cfg.pool_size) // cfg.pool_stride + 1
        channels = filters
    return total + length * channels * cfg.out_dim


def measure(
    name: str, cfg: FusionConfig, batch: int, repeat: int, device: str = "cpu", dtype: str = "fp32"
) -> dict:
    torch.manual_seed(0)
    net = TextImageNet(cfg).eval().to(device)
    text = torch.randn(batch, cfg.text_dim, device=device)
    image = torch.randn(batch, cfg.image_dim, device=device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda" and dtype == "bf16")

    def forward():
        with amp:
            net(text, image)
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        forward()  # warm-up
        seconds = timed(forward, repeat)
    return {
        "preset": name,
        "in_dim": cfg.in_dim,
        "parameters": sum(p.numel() for p in net.parameters()),
        "gmacs_per_movie": macs(cfg) / 1e9,
        "batch": batch,
        "ms_per_movie_p50": 1e3 * pct(seconds, 50) / batch,
        "movies_per_s": batch / pct(seconds, 50),
        "threads": torch.get_num_threads(),
        "device": device,
        "dtype": dtype,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    kw = {"device": args.device, "dtype": args.dtype}
    wide = 512 if gpu else 64
    rows = [
        measure(
            "paper", fusion_preset("paper", text_dim=768, image_dim=2560),
            batch=256 if gpu else 4, repeat=20 if gpu else 3, **kw,
        ),
        measure("small", fusion_preset("small", text_dim=768, image_dim=2560), wide, 10, **kw),
        measure(
            "small (dev encoders)", fusion_preset("small", text_dim=384, image_dim=1280), wide,
            10, **kw,
        ),
    ]  # fmt: skip
    for r in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
    name = f"fusion-{args.device.replace(':', '')}-{args.dtype}"
    print("wrote", save(name, {"rows": rows}))


if __name__ == "__main__":
    main()
