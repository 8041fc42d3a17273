"""Batch norms fold into the convolutions before them only where that leaves the function as it
was: timm's EfficientNets (every norm folded, same features), and nothing in models where a
norm does not take a convolution's output alone."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

from model.config import ImageEncoderConfig
from model.fold_bn import fold_batch_norms
from model.image import ImageEncoder


def norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def randomised(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine terms, as trained norms have."""
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            shape = m.running_mean.shape
            m.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(shape, generator=generator) * 0.1)
    return model.eval()


def same_function(a: nn.Module, b: nn.Module, size: int) -> None:
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want, got = a(x), b(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("name", ["test_efficientnet", "tf_efficientnet_lite0", "resnet18"])
def test_every_norm_after_a_convolution_folds_and_the_features_stay(name):
    model = randomised(timm.create_model(name, pretrained=False, num_classes=0))
    original = copy.deepcopy(model)
    folded = fold_batch_norms(model, torch.randn(1, 3, 64, 64))
    assert folded == norms(original) > 0 and norms(model) == 0
    same_function(original, model, 96)  # another size and batch than the probe's


class ResidualAroundTheNorm(nn.Module):
    """bn(conv(x)) + conv(x): folding would change the second term too."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class InPlaceActivationBetween(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.act, self.bn = nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.act(self.conv(x)))


@pytest.mark.parametrize(
    ("make", "caught_by_the_check"),
    [(ResidualAroundTheNorm, True), (InPlaceActivationBetween, False)],  # else: not paired
)
def test_a_fold_that_would_change_the_function_is_not_made(make, caught_by_the_check, caplog):
    model = randomised(make())
    original = copy.deepcopy(model)
    assert fold_batch_norms(model, torch.randn(1, 3, 16, 16)) == 0
    assert norms(model) == 1
    same_function(original, model, 16)
    assert ("the folded model differed" in caplog.text) is caught_by_the_check


def test_a_model_the_probe_does_not_fit_is_left_alone():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    assert fold_batch_norms(model, torch.randn(1, 3, 64, 64)) == 0  # a ViT takes 224 px only


def test_a_training_model_is_refused():
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batch_norms(
            nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.randn(1, 3, 8, 8)
        )


def test_the_image_encoder_serves_the_folded_trunk():
    encoder = ImageEncoder(
        ImageEncoderConfig(name="test_efficientnet", pretrained=False, image_size=64), "cpu"
    )
    assert norms(encoder.model) == 0
