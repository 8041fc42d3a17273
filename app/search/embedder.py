"""The service's adapter to model/: frozen encoders + fusion (checkpoint or labelled fallback)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from app.config import Settings
from model.checkpoint import checkpoint_version, load_checkpoint
from model.config import ImageEncoderConfig, TextEncoderConfig
from model.device import precision_name, resolve_device
from model.fusion import FALLBACK_SEED, RandomProjection
from model.image import ImageEncoder, Source
from model.text import TextEncoder

log = logging.getLogger("movierec.embedder")


@dataclass
class Embedding:
    text: np.ndarray  # (Dt,) raw text-encoder features
    image: np.ndarray  # (Di,) mean image-encoder features
    vector: np.ndarray  # (256,) unit vector served by the index


def image_encoder_config(settings: Settings, device_type: str) -> ImageEncoderConfig:
    return ImageEncoderConfig(
        name=settings.image_model,
        weights=settings.image_weights,
        pretrained=settings.image_pretrained,
        image_size=settings.image_size,
        batch_size=settings.batch_images(device_type),  # a movie with more goes in chunks
        cuda_graphs=settings.cuda_graphs,
        precision=settings.encoder_precision,
    )


class Embedder:
    """Loaded once at start-up. `embed` is CPU/GPU work: call it off the event loop."""

    def __init__(self, text: TextEncoder, image: ImageEncoder, settings: Settings) -> None:
        self.text_encoder, self.image_encoder = text, image
        self.text_model, self.image_model = settings.text_model, settings.image_model
        self.device = text.device
        self.checkpoint = settings.fusion_checkpoint
        if self.checkpoint:
            self.fusion, config = load_checkpoint(self.checkpoint, self.device)
            spec = config["spec"]
            if spec.get("text_tower"):
                raise ValueError(
                    "the service needs a checkpoint trained on frozen text features, "
                    f"not a {spec['text_tower']} tower"
                )
            want = (spec["fusion"]["text_dim"], spec["fusion"]["image_dim"])
            if want != self.feature_dims:
                raise ValueError(
                    f"checkpoint {self.checkpoint} expects text/image dims {want}, the configured "
                    f"encoders give {self.feature_dims} (trained with "
                    f"{config.get('text_model')}"
                    f" + {config.get('image_model')})"
                )
            self.model_version = checkpoint_version(self.checkpoint)
            self.fallback = False
        else:
            self.fusion = RandomProjection(text.dim, image.dim, seed=FALLBACK_SEED).to(self.device)
            names = f"{self.text_model}|{self.image_model}|{image.input_size}"
            digest = hashlib.sha256(names.encode()).hexdigest()[:8]
            self.model_version = f"fallback-random-projection-s{FALLBACK_SEED}-{digest}"
            self.fallback = True
            log.warning(
                "no MOVIEREC_FUSION_CHECKPOINT: serving the training-free fallback %s",
                self.model_version,
            )
        self.out_dim = 256

    @property
    def precision(self) -> str:
        """What the encoders compute in (both resolve the same setting): fp32 or bf16."""
        return precision_name(self.image_encoder.compute_dtype)

    @property
    def feature_dims(self) -> tuple[int, int]:
        """(text, image) raw feature sizes the encoders give: what stored features must match."""
        return self.text_encoder.dim, self.image_encoder.dim

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        device = resolve_device(settings.device)
        text = TextEncoder(
            TextEncoderConfig(
                name=settings.text_model,
                pooling=settings.text_pooling,
                max_length=settings.text_max_length,
                precision=settings.encoder_precision,
            ),
            str(device),
        )
        image = ImageEncoder(image_encoder_config(settings, device.type), str(device))
        if image.graphed is not None:
            log.info("capturing CUDA graphs for batches of %s images", image.graphed.buckets)
            image.graphed.capture_all()
        embedder = cls(text, image, settings)
        log.info(
            "encoders on %s compute in %s (MOVIEREC_ENCODER_PRECISION=%s)",
            device,
            embedder.precision,
            settings.encoder_precision,
        )
        return embedder

    @torch.inference_mode()
    def fuse(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        """(N, Dt), (N, Di) raw features -> (N, 256) unit vectors; used by ingest and reindex."""
        t = torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)).to(self.device)
        i = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(self.device)
        return self.fusion(t, i).float().cpu().numpy()

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """A movie's decoded images -> (N, 3, H, W) uint8 encoder input. CPU work that runs in
        the request's own thread, so concurrent requests resize in parallel."""
        return self.image_encoder.prepare(images)

    def prepare_from(
        self, sources: Sequence[Source], decode: Callable[[Source], Image.Image]
    ) -> torch.Tensor:
        """`prepare` for undecoded uploads: each decoded and resized in parallel."""
        return self.image_encoder.prepare_from(sources, decode)

    def embed_many(self, movies: Sequence[tuple[str, torch.Tensor]]) -> list[Embedding]:
        """Several movies (plot, prepared pixels) in one text call, one image call and one fusion
        call."""
        text = self.text_encoder.encode([plot for plot, _ in movies])
        return self.embed_with_text(text, [pixels for _, pixels in movies])

    def embed_with_text(self, text: np.ndarray, pixels: Sequence[torch.Tensor]) -> list[Embedding]:
        """The rest of `embed_many` for plots already encoded ((N, Dt), one row per movie): the
        embedding worker encodes a movie's plot while its images are still being decoded."""
        image = self.image_encoder.encode_prepared(list(pixels))
        vectors = self.fuse(text, image)
        return [Embedding(t, i, v) for t, i, v in zip(text, image, vectors, strict=True)]
