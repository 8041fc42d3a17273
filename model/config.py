"""Configuration dataclasses: encoder names and the text-image (fusion) network spec.

Every trained artifact stores these as JSON, so a checkpoint rebuilds its model without
code changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Pooling = Literal["cls", "mean"]
# What the frozen encoders compute in; auto: bf16 on CUDA and on CPUs with bf16 in hardware (AMX,
# AVX512-BF16), else fp32 (model.device.encoder_dtype)
Precision = Literal["auto", "fp32", "bf16"]

# Production defaults (thesis winners). Tests and laptops swap in local dirs / small models.
DEFAULT_TEXT_MODEL = "skt/kobert-base-v1"
DEFAULT_IMAGE_MODEL = "tf_efficientnet_b7"


@dataclass
class TextEncoderConfig:
    name: str = DEFAULT_TEXT_MODEL  # HF hub id or local directory
    pooling: Pooling | None = None  # None: [CLS] for KoBERT (as in the thesis), mean otherwise
    max_length: int = 512  # tokens; longer synopses are truncated
    batch_size: int = 32
    tokenizer: Literal["auto", "kobert"] | None = None  # None: detect KoBERT by name
    precision: Precision = "auto"

    def resolved_pooling(self) -> Pooling:
        if self.pooling is not None:
            return self.pooling
        return "cls" if is_kobert(self.name) else "mean"

    def resolved_tokenizer(self) -> str:
        if self.tokenizer is not None:
            return self.tokenizer
        return "kobert" if is_kobert(self.name) else "auto"


def is_kobert(name: str) -> bool:
    return "kobert" in name.lower()


@dataclass
class ImageEncoderConfig:
    name: str = DEFAULT_IMAGE_MODEL  # timm architecture name, or "local-dir:<dir>"
    # optional local weights file (.safetensors/.pth); None: timm's pretrained weights
    weights: str | None = None
    pretrained: bool = True  # False: random init (tests only)
    # override the model's input size (CPU fallback); None: from the model
    image_size: int | None = None
    batch_size: int = 16
    # CUDA only: replay the forward from CUDA graphs, one per batch-size bucket up to batch_size
    # (model/cuda_graphs.py). Off until measured on a GPU (bench/gpu.sh, docs/PERFORMANCE.md)
    cuda_graphs: bool = False
    precision: Precision = "auto"


@dataclass
class FusionConfig:
    """The text-image network of Table 6: five Conv1D->ReLU->MaxPool(2,2)->Dropout modules,
    FC, L2."""

    text_dim: int = 768  # KoBERT
    image_dim: int = 2560  # EfficientNet-b7
    kernel_sizes: tuple[int, ...] = (32, 64, 128, 64, 16)
    filters: tuple[int, ...] = (128, 256, 512, 1024, 2048)
    pool_size: int = 2
    pool_stride: int = 2
    dropout: float = 0.3
    out_dim: int = 256
    padding: Literal["valid", "same"] = "valid"  # not in the thesis; Keras' default

    @property
    def in_dim(self) -> int:
        return self.text_dim + self.image_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        data = dict(data)
        for key in ("kernel_sizes", "filters"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def fusion_preset(name: str, *, text_dim: int, image_dim: int) -> FusionConfig:
    """Named fusion specs: `paper` is Table 6 verbatim; `small` is width/16 and kernel/4 for CPUs
    (about 18 M multiply-adds per movie instead of 27.5 G, so it trains on a laptop)."""
    if name == "paper":
        return FusionConfig(text_dim=text_dim, image_dim=image_dim)
    if name == "small":
        return FusionConfig(
            text_dim=text_dim,
            image_dim=image_dim,
            kernel_sizes=(8, 16, 32, 16, 4),
            filters=(8, 16, 32, 64, 128),
        )
    raise ValueError(f"unknown fusion preset {name!r} (choose 'paper' or 'small')")


FUSION_PRESETS = ("paper", "small")


Sampling = Literal["pair", "anchor"]  # triplets per epoch: one per similar pair, or per movie
SAMPLINGS: tuple[str, ...] = get_args(Sampling)


@dataclass
class TrainConfig:
    """Table 8 defaults."""

    loss: str = "improved"  # improved | triplet-hard | triplet-semihard | contrastive | vsepp
    distance: Literal["euclidean", "cosine"] = "euclidean"
    margin: float = 0.2  # margin losses only; the improved loss has none
    lr: float = 3e-4
    batch_size: int = 512
    epochs: int = 200
    patience: int = 10  # early stopping on validation loss
    max_minutes: float | None = None  # wall-clock budget; the best epoch so far is kept
    seed: int = 0
    weight_decay: float = 0.0
    # pair: one triplet per similar pair per epoch (the thesis' target/similar pairs); anchor:
    # one per movie that has a similar movie. See docs/REPRODUCTION.md for what each gives.
    sampling: Sampling = "pair"
    # True: raw related pairs; False: related AND same genre group (the thesis)
    related_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def scaled_lr(batch_size: int, base_lr: float = 3e-4, base_batch: int = 512) -> float:
    """Square-root scaling of Adam's learning rate with batch size, anchored at Table 8 (3e-4 at
    512). Small catalogues need small batches to get more than one step per epoch; at batch 64 the
    unscaled 3e-4 collapses the Table 6 network (docs/REPRODUCTION.md)."""
    return base_lr * (batch_size / base_batch) ** 0.5
