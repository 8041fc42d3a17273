"""The resize + centre crop before the image encoder: timm's whole-image transform against the
crop-only resample (model/crop_resize.py), per image, one thread, and what it does to features.

    .venv/bin/python -m bench.resize [--repeat 5]

Images: the dev posters as they are (TMDB's w500 and smaller), the same posters enlarged 3x (the
size an OTT backend's own artwork comes in) and 16:9 stills at 1280x720 and 1920x1080, at
Lite0's 224 px and b7's 600 px. The two transforms alternate `--repeat` times on each set; the
ratio is of their medians. With the dev encoders present, Lite0's features of both transforms'
pixels are compared, next to what re-saving the poster as a quality-90 JPEG does to them.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from statistics import median

import numpy as np
import timm.data
from PIL import Image

from bench.common import relative_change, save
from model.crop_resize import CropResize, resize_and_crop

# Lite0's and b7's own eval settings (timm's pretrained configs)
MODELS = {
    "lite0_224": {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.875},
    "b7_600": {"input_size": (3, 600, 600), "interpolation": "bicubic", "crop_pct": 0.949},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: ../shared's dev set")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from model.data import load_dataset
    from tests.helpers import DATASET

    dataset = args.dataset or DATASET
    if not dataset.is_dir():
        sys.exit(f"needs the dev dataset at {dataset} (posters)")
    movies = [m for m in load_dataset(dataset).movies if m.image_paths][: args.images]
    posters = [Image.open(m.image_paths[0]).convert("RGB") for m in movies]
    sets = {
        "dev posters": posters,
        "posters x3": [p.resize((3 * p.width, 3 * p.height), Image.LANCZOS) for p in posters],
        "stills 1280x720": [p.resize((1280, 720), Image.LANCZOS) for p in posters],
        "stills 1920x1080": [p.resize((1920, 1080), Image.LANCZOS) for p in posters],
    }
    results: dict = {"images_per_set": len(posters), "speed": {}}
    for model, config in MODELS.items():
        whole, crop = transforms(config)
        for name, images in sets.items():
            row = compare_speed(whole, crop, images, args.repeat)
            results["speed"][f"{model} {name}"] = row
            print(
                f"{model:9} {name:17} timm {row['whole_ms_per_image']:6.2f} ms  crop-only "
                f"{row['crop_ms_per_image']:6.2f} ms  {row['speedup']:.2f}x"
            )
    results["features"] = feature_change(sets)
    print("features", results["features"])
    print("wrote", save("resize", results))


def transforms(config: dict) -> tuple:
    """(timm's resize + crop, the crop-only resample of the same), as ImageEncoder splits them."""
    crop = resize_and_crop(timm.data.create_transform(**config, is_training=False))
    assert isinstance(crop, CropResize), config
    return crop.whole, crop


def compare_speed(whole, crop, images: list, repeat: int) -> dict:
    seconds: dict[str, list[float]] = {"whole": [], "crop": []}
    for _ in range(repeat):
        for name, transform in (("whole", whole), ("crop", crop)):
            started = time.perf_counter()
            for image in images:
                transform(image)
            seconds[name].append((time.perf_counter() - started) / len(images))
    w, c = median(seconds["whole"]), median(seconds["crop"])
    return {"whole_ms_per_image": 1e3 * w, "crop_ms_per_image": 1e3 * c, "speedup": w / c}


def feature_change(sets: dict[str, list]) -> dict:
    """Relative L2 change of Lite0's features, crop-only against timm's pixels, per set; and for
    scale, timm's pixels of the poster against those of its quality-90 JPEG re-save."""
    from tests.helpers import LITE0

    if not LITE0.is_dir():
        return {"skipped": f"needs the offline Lite0 weights at {LITE0}"}
    import torch

    from model.config import ImageEncoderConfig
    from model.image import ImageEncoder

    config = ImageEncoderConfig(
        name="tf_efficientnet_lite0", weights=str(LITE0 / "model.safetensors")
    )
    enc = ImageEncoder(config, "cpu")
    crop = enc._resize_crop
    assert isinstance(crop, CropResize)

    def features(pixels: list) -> np.ndarray:
        batch = torch.from_numpy(np.stack([np.asarray(p) for p in pixels])).permute(0, 3, 1, 2)
        return enc.encode_tensors(batch.contiguous())

    out = {}
    for name, images in sets.items():
        timm_pixels = [crop.whole(i) for i in images]
        out[name] = relative_change(features(timm_pixels), features([crop(i) for i in images]))
        changed = [
            np.abs(np.asarray(a, dtype=int) - np.asarray(crop(i))).mean()
            for a, i in zip(timm_pixels, images, strict=True)
        ]
        out[name]["mean_pixel_change_levels"] = float(np.mean(changed))
    resaved = [crop.whole(jpeg_resave(i)) for i in sets["dev posters"]]
    timm_pixels = [crop.whole(i) for i in sets["dev posters"]]
    jpeg = relative_change(features(timm_pixels), features(resaved))
    out["jpeg q90 re-save (dev posters)"] = jpeg
    return out


def jpeg_resave(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return Image.open(buffer).convert("RGB")


if __name__ == "__main__":
    main()
