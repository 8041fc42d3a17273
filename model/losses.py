"""Metric-learning losses: the thesis' improved triplet loss and the baselines it was compared with.

All embeddings are (B, D); distances are Euclidean or cosine (1 - cos).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Distance = Literal["euclidean", "cosine"]


def pair_distance(x: torch.Tensor, y: torch.Tensor, kind: Distance) -> torch.Tensor:
    """Row-wise distance between (B, D) and (B, D) -> (B,)."""
    if kind == "euclidean":
        return (x - y).pow(2).sum(dim=1).clamp_min(1e-12).sqrt()
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(x, y, dim=1)
    raise ValueError(f"unknown distance {kind!r}")


def distance_matrix(x: torch.Tensor, y: torch.Tensor, kind: Distance) -> torch.Tensor:
    """All-pairs distance between (P, D) and (B, D) -> (P, B)."""
    if kind == "euclidean":
        return torch.cdist(x, y).clamp_min(0.0)
    if kind == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).T
    raise ValueError(f"unknown distance {kind!r}")


class ImprovedTripletLoss(nn.Module):
    """loss = Z * sigmoid(Z), Z = d(a, p) - d(a, n): no margin, and a small gradient even for
    Z < 0."""

    def __init__(self, distance: Distance = "euclidean") -> None:
        super().__init__()
        self.distance = distance

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor):
        z = pair_distance(anchor, positive, self.distance) - pair_distance(
            anchor, negative, self.distance
        )  # (B,)
        return (z * torch.sigmoid(z)).mean()


class MarginTripletLoss(nn.Module):
    """Classic max(0, m + d(a,p) - d(a,n)) with in-batch negative mining (FaceNet).

    mining="hard": the closest valid negative. mining="semihard": the closest negative that is still
    farther than the positive (d(a,p) < d(a,n)); the farthest valid negative when none is.
    """

    def __init__(
        self,
        margin: float = 0.2,
        mining: Literal["hard", "semihard"] = "hard",
        distance: Distance = "euclidean",
    ) -> None:
        super().__init__()
        self.margin, self.mining, self.distance = margin, mining, distance

    def forward(
        self,
        anchor: torch.Tensor,  # (P, D)
        positive: torch.Tensor,  # (P, D)
        candidates: torch.Tensor,  # (B, D) the batch to mine negatives from
        negative_mask: torch.Tensor,  # (P, B) bool: candidate j is a valid negative for anchor i
    ) -> torch.Tensor:
        d_ap = pair_distance(anchor, positive, self.distance)  # (P,)
        d_an = distance_matrix(anchor, candidates, self.distance)  # (P, B)
        inf = torch.finfo(d_an.dtype).max
        valid = negative_mask.clone()
        has_negative = valid.any(dim=1)
        if self.mining == "hard":
            d_neg = d_an.masked_fill(~valid, inf).min(dim=1).values
        else:
            semi = valid & (d_an > d_ap.unsqueeze(1))
            closest_semi = d_an.masked_fill(~semi, inf).min(dim=1).values
            farthest = d_an.masked_fill(~valid, -inf).max(dim=1).values
            d_neg = torch.where(semi.any(dim=1), closest_semi, farthest)
        losses = F.relu(self.margin + d_ap - d_neg)
        if not bool(has_negative.any()):
            return anchor.sum() * 0.0
        return losses[has_negative].mean()


class ContrastiveLoss(nn.Module):
    """Hadsell et al. 2006: y * d^2 / 2 + (1 - y) * max(0, m - d)^2 / 2."""

    def __init__(self, margin: float = 1.0, distance: Distance = "euclidean") -> None:
        super().__init__()
        self.margin, self.distance = margin, distance

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, similar: torch.Tensor) -> torch.Tensor:
        d = pair_distance(x1, x2, self.distance)  # (B,)
        y = similar.to(d.dtype)
        return (0.5 * y * d.pow(2) + 0.5 * (1 - y) * F.relu(self.margin - d).pow(2)).mean()


class MaxHingeLoss(nn.Module):
    """VSE++ (Faghri et al. 2018): sum over pairs of the hardest in-batch violation, both
    directions.

    For pairs (a_i, p_i) with scores s = a @ p.T: [m - s_ii + max_{j valid} s_ij]_+ +
    [m - s_ii + max_{j valid} s_ji]_+ . `valid` removes known positives other than the pair itself.
    """

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        self.margin = margin

    def forward(
        self,
        anchor: torch.Tensor,  # (P, D), L2-normalised
        positive: torch.Tensor,  # (P, D), L2-normalised
        negative_mask: torch.Tensor | None = None,  # (P, P) bool, True where (i, j) is a negative
    ) -> torch.Tensor:
        scores = anchor @ positive.T  # (P, P)
        diag = scores.diag()
        mask = ~torch.eye(len(scores), dtype=torch.bool, device=scores.device)
        if negative_mask is not None:
            mask &= negative_mask
        neg_inf = torch.finfo(scores.dtype).min
        hardest_p = scores.masked_fill(~mask, neg_inf).max(dim=1).values  # a_i vs other positives
        hardest_a = scores.masked_fill(~mask, neg_inf).max(dim=0).values  # p_i vs other anchors
        has = mask.any(dim=1)
        cost = F.relu(self.margin - diag + hardest_p) + F.relu(self.margin - diag + hardest_a)
        return cost[has].mean() if bool(has.any()) else scores.sum() * 0.0


LOSSES = ("improved", "triplet-hard", "triplet-semihard", "contrastive", "vsepp")
