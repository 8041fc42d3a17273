"""A fusion checkpoint is a directory: config.json (everything to rebuild) + model.safetensors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from model.data import Dataset
from model.embedder import EmbedderSpec, MovieEmbedder
from model.features import FeatureCache

FORMAT = "movierec-fusion/1"


def save_checkpoint(
    directory: str | Path, model: MovieEmbedder, extra: dict[str, Any] | None = None
) -> Path:
    """Write to a temp dir, then rename: a crash never leaves a half-written checkpoint."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    config = {"format": FORMAT, "spec": model.spec.to_dict(), **(extra or {})}
    (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        directory.replace(old)
        tmp.replace(directory)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        tmp.replace(directory)
    return directory


def provenance(cache: FeatureCache, dataset: Dataset) -> dict[str, Any]:
    """What any checkpoint records about its inputs: the encoders whose features it expects
    (the service checks them) and the data it was fitted on."""
    return {
        "text_model": cache.meta.get("text_model"),
        "image_model": cache.meta.get("image_model"),
        "image_size": cache.meta.get("image_size"),
        "data": {"fingerprint": dataset.fingerprint(), "movies": len(dataset.movies)},
    }


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the model from config.json and load its weights -> (model in eval mode, config)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, weights = directory / "config.json", directory / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise FileNotFoundError(
            f"{directory} is not a movierec checkpoint (config.json + model.safetensors)"
        )
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    if config.get("format") != FORMAT:
        raise ValueError(f"{directory}: unsupported checkpoint format {config.get('format')!r}")
    model = MovieEmbedder(EmbedderSpec.from_dict(config["spec"]))
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval(), config


def checkpoint_version(directory: str | Path) -> str:
    """Stable short id of the weights: the model version shown to API users."""
    digest = hashlib.sha256((Path(directory) / "model.safetensors").read_bytes()).hexdigest()
    return f"fusion-{digest[:12]}"
