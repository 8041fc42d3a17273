"""The crop-only resample gives timm's eval resize + centre crop to within Pillow's rounding, and
stands aside for every transform or image it does not cover."""

from __future__ import annotations

import numpy as np
import pytest
import timm.data
from PIL import Image

from model.config import ImageEncoderConfig
from model.crop_resize import CropResize, resize_and_crop
from model.image import ImageEncoder


def _picture(width: int, height: int, seed: int) -> Image.Image:
    """Smooth shapes plus pixel noise: edges, gradients and the worst case for a filter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [128 + 100 * np.sin(x / (7 + c) + c) * np.cos(y / (11 + 3 * c)) for c in range(3)],
        axis=-1,
    )
    noisy = base + rng.normal(0, 40, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _resize_and_crop(**transform_args):
    return resize_and_crop(timm.data.create_transform(**transform_args, is_training=False))


def _crop_resize(**transform_args) -> CropResize:
    """What ImageEncoder resizes with for these settings: a CropResize (its `whole`: timm's)."""
    crop = _resize_and_crop(**transform_args)
    assert isinstance(crop, CropResize), transform_args
    return crop


# Lite0's and b7's own settings, and a bilinear one
CONFIGS = [
    {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.875},
    {"input_size": (3, 600, 600), "interpolation": "bicubic", "crop_pct": 0.949},
    {"input_size": (3, 160, 160), "interpolation": "bilinear", "crop_pct": 0.9},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['input_size'][-1]}px")
def test_shrinking_gives_timms_pixels_to_within_rounding(config):
    crop = _crop_resize(**config)
    whole = crop.whole
    size = config["input_size"][-1]
    short = int(size / config["crop_pct"])
    rng = np.random.default_rng(size)
    sizes = [(short, int(short * 1.5)), (int(short * 1.78), short), (short + 1, short + 1)]
    sizes += [(int(w), int(h)) for w, h in rng.integers(short, 4 * short, (6, 2))]
    for seed, (w, h) in enumerate(sizes):
        image = _picture(w, h, seed)
        want = np.asarray(whole(image)).astype(int)
        got = np.asarray(crop(image)).astype(int)
        assert got.shape == want.shape == (size, size, 3), (w, h)
        difference = np.abs(got - want)
        # Pillow takes a box in single precision, which moves the samples by ~1e-5 px: a level
        # here and there on this noise, a few on rare pixels (a crop one pixel off is tens of
        # levels off almost everywhere)
        assert difference.mean() < 0.5 and difference.max() <= 12, (w, h, difference.max())


def test_an_image_at_the_resized_size_is_cropped_exactly():
    crop = _crop_resize(**CONFIGS[0])
    whole = crop.whole
    image = _picture(256, 384, 0)  # 256 on the short side: no resampling at all
    assert np.array_equal(np.asarray(crop(image)), np.asarray(whole(image)))


def test_enlarging_is_left_to_timms_transform():
    """Pillow places a box's samples differently when it enlarges (up to 20 levels off): small
    images take the whole-image path, and get timm's pixels exactly."""
    crop = _crop_resize(**CONFIGS[0])
    whole = crop.whole
    for w, h in [(182, 268), (120, 90), (300, 200), (255, 1000)]:
        image = _picture(w, h, w)
        assert np.array_equal(np.asarray(crop(image)), np.asarray(whole(image))), (w, h)


@pytest.mark.parametrize(
    "config",
    [
        {"crop_mode": "squash"},  # Resize((h, w)): the aspect ratio is not kept
        {"crop_mode": "border"},
        {"interpolation": "nearest"},
        {"crop_pct": 1.1},  # the crop is larger than the resized image: CenterCrop pads
    ],
    ids=str,
)
def test_other_transforms_are_not_taken_over(config):
    args = {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.875}
    assert not isinstance(_resize_and_crop(**{**args, **config}), CropResize)


def test_the_image_encoder_resamples_the_crop_only():
    enc = ImageEncoder(ImageEncoderConfig(name="test_efficientnet", pretrained=False), "cpu")
    assert isinstance(enc._resize_crop, CropResize)
    image = _picture(640, 480, 3)
    whole = enc._resize_crop.whole(image)
    difference = np.abs(enc.prepare([image])[0].permute(1, 2, 0).numpy().astype(int) - whole)
    assert difference.mean() < 0.5 and difference.max() <= 12
