"""Encoder cost by batch size: does batching across requests pay on this device?

    .venv/bin/python -m bench.encoders [--device cuda] [--encoders production]

For the text tower: tokenisation and forward per plot at batch 1 and 32. For the image tower: the
resize/crop that runs in request threads (`prepare`, per image) and the forward per image at
batch 1, 3, 4, 16 and 32; on CUDA with MOVIEREC_CUDA_GRAPHS=true both replayed from CUDA graphs
and launched eagerly, the baseline. Same encoders as bench.ingest (--encoders dev | production).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from bench.common import pct, save, sync, timed
from bench.ingest import encoder_settings, settings_from_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoders", choices=("dev", "production"), default="dev")
    parser.add_argument("--dataset", type=Path, default=None, help="default: ../shared's dev set")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from app.search.embedder import Embedder
    from model.data import load_dataset
    from tests.helpers import DATASET

    dataset = args.dataset or DATASET
    if not dataset.is_dir():
        sys.exit(f"needs the dev dataset at {dataset} (posters and plots)")
    movies = [m for m in load_dataset(dataset).movies if m.image_paths][:32]
    from PIL import Image

    plots = [m.plot or m.title for m in movies]
    images = [Image.open(m.image_paths[0]).convert("RGB") for m in movies]
    with tempfile.TemporaryDirectory() as tmp:
        env = encoder_settings(args.encoders, Path(tmp)) | {"MOVIEREC_DEVICE": args.device}
        emb = Embedder.from_settings(settings_from_env(env, Path(tmp) / "data"))
        results = {"device": args.device, "encoders": args.encoders}
        results["text"] = text_costs(emb, plots, args.repeat)
        results["image"] = image_costs(emb, images, args.repeat)
    for key, value in results.items():
        print(key, value)
    print("wrote", save(f"encoders-{args.device.replace(':', '')}-{args.encoders}", results))


def text_costs(emb, plots: list[str], repeat: int) -> dict:
    enc = emb.text_encoder
    param_device = str(next(enc.model.parameters()).device)
    tokens = enc.tokenizer(plots, enc.max_length)
    out: dict = {
        "on": param_device,
        "mean_tokens": float(tokens["attention_mask"].sum(1).float().mean()),
    }
    for batch in (1, 32):
        chunk = plots[:batch]
        tok = timed(lambda chunk=chunk: enc.tokenizer(chunk, enc.max_length), repeat)

        def forward(chunk: list[str] = chunk, batch: int = batch) -> None:
            enc.encode(chunk, batch_size=batch)
            sync(enc.device)

        forward()  # warm-up
        total = timed(forward, repeat)
        out[f"batch{batch}"] = {
            "tokenize_ms_per_plot": 1e3 * pct(tok, 50) / batch,
            "encode_ms_per_plot": 1e3 * pct(total, 50) / batch,
        }
    out["batch32_vs_1_speedup"] = (
        out["batch1"]["encode_ms_per_plot"] / out["batch32"]["encode_ms_per_plot"]
    )
    return out


def image_costs(emb, images: list, repeat: int) -> dict:
    enc = emb.image_encoder
    prep = timed(lambda: enc.prepare(images[:8]), repeat)
    pixels = enc.prepare(images)
    out: dict = {
        "on": str(next(enc.model.parameters()).device),
        "input_size": enc.input_size,
        "prepare_ms_per_image": 1e3 * pct(prep, 50) / 8,
    }
    graphed = enc.graphed
    modes = [("", graphed)] + ([("eager_", None)] if graphed is not None else [])
    for prefix, runner in modes:
        enc.graphed = runner
        for batch in (1, 3, 4, 16, 32):
            chunk = pixels[:batch]

            def forward(chunk: torch.Tensor = chunk) -> None:
                enc.encode_tensors(chunk)
                sync(enc.device)

            forward()
            seconds = timed(forward, repeat)
            out[f"{prefix}batch{batch}_ms_per_image"] = 1e3 * pct(seconds, 50) / batch
    enc.graphed = graphed
    out["cuda_graphs"] = graphed is not None and not graphed.failed
    out["batch32_vs_1_speedup"] = out["batch1_ms_per_image"] / out["batch32_ms_per_image"]
    if graphed is not None:
        for batch in (1, 3, 32):
            out[f"graphs_vs_eager_batch{batch}"] = (
                out[f"eager_batch{batch}_ms_per_image"] / out[f"batch{batch}_ms_per_image"]
            )
    return out


if __name__ == "__main__":
    main()
