"""Fusion-net cost per movie: parameters, multiply-adds (counted from the spec) and CPU time,
for the paper preset (Table 6, KoBERT 768 + EfficientNet-b7 2560) and the small preset.

    .venv/bin/python -m bench.fusion
"""

from __future__ import annotations

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


def measure(name: str, cfg: FusionConfig, batch: int, repeat: int) -> dict:
    torch.manual_seed(0)
    net = TextImageNet(cfg).eval()
    text, image = torch.randn(batch, cfg.text_dim), torch.randn(batch, cfg.image_dim)
    with torch.inference_mode():
        net(text, image)  # warm-up
        seconds = timed(lambda: net(text, image), repeat)
    return {
        "preset": name,
        "in_dim": cfg.in_dim,
        "parameters": sum(p.numel() for p in net.parameters()),
        "gmacs_per_movie": macs(cfg) / 1e9,
        "batch": batch,
        "ms_per_movie_p50": 1e3 * pct(seconds, 50) / batch,
        "movies_per_s": batch / pct(seconds, 50),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    rows = [
        measure("paper", fusion_preset("paper", text_dim=768, image_dim=2560), batch=4, repeat=3),
        measure("small", fusion_preset("small", text_dim=768, image_dim=2560), batch=64, repeat=10),
        measure(
            "small (dev encoders)", fusion_preset("small", text_dim=384, image_dim=1280), 64, 10
        ),
    ]
    for r in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
    print("wrote", save("fusion", {"rows": rows}))


if __name__ == "__main__":
    main()
