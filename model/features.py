"""Feature cache: run the frozen encoders once, store ids + text/image features in safetensors.

Training and evaluation read the cache, so the expensive encoders never rerun. Trainable text
towers (rnn/lstm) store token ids instead of features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from model.config import ImageEncoderConfig, Precision, TextEncoderConfig
from model.data import Dataset

TRAINABLE_TEXT = ("rnn", "lstm")


@dataclass
class FeatureCache:
    ids: np.ndarray  # (N,) int64 movie ids
    text: np.ndarray  # (N, Dt) float32 features, or (N, L) int64 token ids for rnn/lstm
    image: np.ndarray  # (N, Di) float32, mean over each movie's images
    meta: dict  # text_model, image_model, dataset fingerprint, vocab size ...

    @property
    def text_is_tokens(self) -> bool:
        return self.meta.get("text_model") in TRAINABLE_TEXT

    def rows(self, ids: list[int]) -> np.ndarray:
        where = {int(i): r for r, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise KeyError(
                f"{len(missing)} movies are not in the feature cache, e.g. {missing[:5]}"
            )
        return np.array([where[i] for i in ids], dtype=np.int64)

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        save_file(
            {"ids": self.ids, "text": self.text, "image": self.image},
            str(tmp),
            metadata={"movierec": json.dumps(self.meta)},
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureCache:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = json.loads((fh.metadata() or {}).get("movierec", "{}"))
            return cls(fh.get_tensor("ids"), fh.get_tensor("text"), fh.get_tensor("image"), meta)


def load_images(paths: list[Path], max_images: int | None = None) -> list[Image.Image]:
    images = []
    for p in paths[:max_images]:
        with Image.open(p) as im:
            im.draft("RGB", (1024, 1024))  # JPEG: decode at reduced size, far above model input
            images.append(im.convert("RGB"))
    return images


def compute_features(
    dataset: Dataset,
    *,
    text_model: str,
    image_model: str,
    image_weights: str | None = None,
    image_pretrained: bool = True,
    image_size: int | None = None,
    max_images: int | None = None,
    device: str = "auto",
    precision: Precision = "auto",
    batch_size: int = 16,
    progress: bool = True,
) -> FeatureCache:
    """Encode every movie of `dataset`; movies without images get a zero image vector (counted).
    The meta records the precision each encoder ran in (`precision` resolves per device)."""
    from model.device import precision_name
    from model.image import ImageEncoder

    movies = dataset.movies
    plots = [m.plot for m in movies]
    meta: dict = {
        "text_model": text_model,
        "image_model": image_model,
        "dataset": dataset.fingerprint(),
        "image_weights": image_weights,
    }
    if text_model in TRAINABLE_TEXT:
        from model.seqtext import Vocabulary

        vocab = Vocabulary.build(plots)
        text = vocab.encode(plots)
        meta["vocab_size"] = len(vocab)
    elif text_model.startswith("word2vec:"):
        from model.seqtext import Word2VecEncoder

        text = Word2VecEncoder(text_model.split(":", 1)[1]).encode(plots)
    else:
        from model.text import TextEncoder

        encoder = TextEncoder(
            TextEncoderConfig(name=text_model, batch_size=batch_size, precision=precision), device
        )
        meta["text_precision"] = precision_name(encoder.compute_dtype)
        text = (
            np.concatenate(
                [
                    encoder.encode(plots[s : s + 64])
                    for s in tqdm(range(0, len(plots), 64), desc="text", disable=not progress)
                ]
            )
            if plots
            else np.zeros((0, encoder.dim), np.float32)
        )
    image_encoder = ImageEncoder(
        ImageEncoderConfig(
            name=image_model,
            weights=image_weights,
            pretrained=image_pretrained,
            image_size=image_size,
            batch_size=batch_size,
            precision=precision,
        ),
        device,
    )
    meta["image_precision"] = precision_name(image_encoder.compute_dtype)
    image = np.zeros((len(movies), image_encoder.dim), dtype=np.float32)
    without = 0
    for r, movie in enumerate(tqdm(movies, desc="images", disable=not progress)):
        images = load_images(movie.image_paths, max_images)
        if images:
            image[r] = image_encoder.encode_movies([images])[0]
        else:
            without += 1
    meta["movies_without_images"] = without
    meta["image_size"] = image_encoder.input_size
    ids = np.array([m.id for m in movies], dtype=np.int64)
    return FeatureCache(ids=ids, text=text, image=image, meta=meta)
