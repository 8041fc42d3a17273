import math

import pytest
import torch

from model.losses import ContrastiveLoss, ImprovedTripletLoss, MarginTripletLoss, MaxHingeLoss


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_improved_loss_positive_z():
    loss = ImprovedTripletLoss("euclidean")(t([0, 0]), t([3, 4]), t([0, 1]))  # Z = 5 - 1 = 4
    assert loss.item() == pytest.approx(4 / (1 + math.exp(-4)), rel=1e-5)


def test_improved_loss_negative_z_still_has_gradient():
    a, p, n = t([0, 0]), t([1.0, 0.0]).requires_grad_(), t([0, 2])  # Z = 1 - 2 = -1
    loss = ImprovedTripletLoss("euclidean")(a, p, n)
    sig = 1 / (1 + math.exp(1))
    assert loss.item() == pytest.approx(-sig, rel=1e-5)
    loss.backward()
    # dL/dZ = s + Z s (1 - s) at Z = -1; dZ/dp = unit vector from a to p = (1, 0)
    expected = sig - sig * (1 - sig)
    assert p.grad[0, 0].item() == pytest.approx(expected, rel=1e-4)
    assert p.grad[0, 0].item() > 0


def test_improved_loss_cosine_distance():
    loss = ImprovedTripletLoss("cosine")(t([1, 0]), t([0, 1]), t([-1, 0]))  # Z = 1 - 2
    assert loss.item() == pytest.approx(-1 / (1 + math.exp(1)), rel=1e-5)


def test_margin_triplet_hard_and_semihard_mining():
    a, p = t([0, 0]), t([1, 0])  # d(a, p) = 1
    cands = t([0, 0.5], [0, 3], [1, 0])
    mask = torch.tensor([[True, True, False]])
    hard = MarginTripletLoss(0.2, "hard")(a, p, cands, mask)
    assert hard.item() == pytest.approx(0.2 + 1 - 0.5, rel=1e-5)  # closest negative 0.5
    semi = MarginTripletLoss(0.2, "semihard")(a, p, cands, mask)
    assert semi.item() == pytest.approx(0.0, abs=1e-6)  # negative at 3 is farther than the positive
    only_close = torch.tensor([[True, False, False]])
    fallback = MarginTripletLoss(0.2, "semihard")(a, p, cands, only_close)
    assert fallback.item() == pytest.approx(0.7, rel=1e-5)


def test_margin_triplet_without_negatives_is_zero_not_nan():
    loss = MarginTripletLoss()(t([0, 0]), t([1, 0]), t([2, 2]), torch.tensor([[False]]))
    assert loss.item() == 0.0


def test_contrastive_loss_hand_values():
    x1 = t([0, 0], [0, 0], [0, 0])
    x2 = t([0.5, 0], [0.5, 0], [2, 0])
    y = torch.tensor([1, 0, 0])
    loss = ContrastiveLoss(margin=1.0)(x1, x2, y)
    assert loss.item() == pytest.approx((0.125 + 0.125 + 0.0) / 3, rel=1e-5)


def test_max_hinge_loss_hand_values():
    a = t([1, 0], [0, 1])
    p = t([1, 0], [0.8, 0.6])
    # scores [[1, .8], [0, .6]]; pair 0: [.5-1+.8]+ + [.5-1+0]+ = .3; pair 1: 0 + [.5-.6+.8]+ = .7
    assert MaxHingeLoss(0.5)(a, p).item() == pytest.approx(0.5, rel=1e-5)
