"""The meta-device dry run that sizes an image trunk's largest activation."""

from __future__ import annotations

import torch

from model.activations import largest_activation_bytes, largest_output_recorder
from model.config import ImageEncoderConfig
from model.image import ImageEncoder


def test_lite0s_largest_activation_is_its_first_expanded_block():
    # EfficientNet-Lite0 at 224 px: the second stage expands 16 channels to 96 at 112 x 112
    config = ImageEncoderConfig(name="tf_efficientnet_lite0", pretrained=False)
    assert largest_activation_bytes(config, 4, torch.float32) == 4 * 96 * 112 * 112 * 4
    assert largest_activation_bytes(config, 2, torch.bfloat16) == 2 * 96 * 112 * 112 * 2


def test_the_dry_run_follows_the_input_size_override():
    config = ImageEncoderConfig(name="tf_efficientnet_lite0", pretrained=False, image_size=448)
    assert largest_activation_bytes(config, 1, torch.float32) == 96 * 224 * 224 * 4


def test_the_dry_run_matches_a_real_forward():
    config = ImageEncoderConfig(name="tf_efficientnet_lite0", pretrained=False, precision="fp32")
    real = ImageEncoder(config, "cpu").model  # batch norms folded: the same output sizes
    largest = largest_output_recorder(real)
    with torch.no_grad():
        real(torch.zeros(2, 3, 224, 224))  # real memory and arithmetic, as the service runs it
    assert largest() == 2 * 96 * 112 * 112 * 4
    assert largest_activation_bytes(config, 2, torch.float32) == largest()
