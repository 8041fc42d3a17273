"""Development-split experiment behind docs/REPRODUCTION.md item 8: can the Table 6 network keep
the geometry of the pretrained features on movies it never saw?

The test split is never touched: train + validation (740 movies) are re-split (seed 42) into 540
for training and 200 held out, and the held-out Recall@20 is printed after every epoch.

    .venv/bin/python scripts/dev_split_experiment.py FEATURES --head conv --regulariser mse \
        --weight 10 --epochs 6 [--warmup-epochs 0] [--lr 1.06e-4] [--data-init]

--regulariser mse | kl | none: a label-free term that pulls the batch's output cosine matrix
towards that of the L2-normalised input features (mse: squared difference; kl: row-wise softmax
at temperature 0.05), added with --weight to the improved triplet loss (pair sampling, batch 64).
--warmup-epochs N trains on that term alone for N epochs first. --data-init scales each conv
layer to zero-mean, unit-variance pre-activations on the training movies and centres the output
(LSUV-style initialisation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.config import fusion_preset, scaled_lr
from model.data import TripletSampler, load_dataset, relevance, restrict, split_ids, undirected
from model.embedder import EmbedderSpec, MovieEmbedder
from model.evaluate import concat_cosine_vectors
from model.features import FeatureCache
from model.losses import ImprovedTripletLoss
from model.metrics import retrieval_metrics
from model.train import FeatureTable, batch_loss, embed_table

DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "tmdb-similar"


def cosine_geometry(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The training-free baseline's vectors (what `movierec evaluate` ranks it by)."""
    return torch.from_numpy(concat_cosine_vectors(text.numpy(), image.numpy()))


def geometry_loss(kind: str, emb: torch.Tensor, target: torch.Tensor, temp: float = 0.05):
    s_out, s_in = emb @ emb.T, target @ target.T
    n = len(emb)
    if kind == "mse":
        off = ~torch.eye(n, dtype=torch.bool)
        return ((s_out - s_in)[off] ** 2).mean()
    self_mask = torch.eye(n) * 1e4
    p = F.softmax((s_in - self_mask) / temp, 1)
    return F.kl_div(F.log_softmax((s_out - self_mask) / temp, 1), p, reduction="batchmean")


@torch.no_grad()
def data_init(model: MovieEmbedder, text: torch.Tensor, image: torch.Tensor) -> None:
    net = model.head
    x = model.head_input(text, image).unsqueeze(1)
    for layer in net.features:
        if isinstance(layer, torch.nn.Conv1d):
            y = layer(x)
            mu, sd = y.mean((0, 2)), y.std((0, 2)).clamp_min(1e-6)
            layer.weight /= sd[:, None, None]
            layer.bias.copy_((layer.bias - mu) / sd)
        if not isinstance(layer, torch.nn.Dropout):
            x = layer(x)
    net.head.bias -= net.head(x.flatten(1)).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", type=Path)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--head", choices=("conv", "linear"), default="conv")
    parser.add_argument("--regulariser", choices=("none", "mse", "kl"), default="none")
    parser.add_argument("--weight", type=float, default=0.0)
    parser.add_argument("--warmup-epochs", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=scaled_lr(64))
    parser.add_argument("--data-init", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    ds = load_dataset(args.dataset)
    cache = FeatureCache.load(args.features)
    split = split_ids(ds.ids, seed=0)
    pool = sorted(split.train + split.validation)  # the test split stays unseen
    order = [pool[i] for i in np.random.default_rng(42).permutation(len(pool))]
    train_ids, held_ids = sorted(order[:540]), sorted(order[540:])
    groups = {m.id: m.groups for m in ds.movies}
    rel = undirected(relevance(ds))
    sampler = TripletSampler(train_ids, groups, restrict(rel, train_ids), seed=args.seed)
    held_rel = restrict(relevance(ds), held_ids)
    cpu = torch.device("cpu")
    train, held = FeatureTable(cache, train_ids, cpu), FeatureTable(cache, held_ids, cpu)
    dims = {"text_dim": cache.text.shape[1], "image_dim": cache.image.shape[1]}
    spec = EmbedderSpec(fusion=fusion_preset("small", **dims), head=args.head, input_norm="l2")
    model = MovieEmbedder(spec)
    if args.data_init and args.head == "conv":
        data_init(model, train.text, train.image)
    target = cosine_geometry(train.text, train.image)
    triplet = ImprovedTripletLoss("euclidean")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def held_recall() -> float:
        return retrieval_metrics(embed_table(model, held), held_ids, held_rel)["thesis_recall@20"]

    cosine = retrieval_metrics(cosine_geometry(held.text, held.image).numpy(), held_ids, held_rel)[
        "thesis_recall@20"
    ]
    print(f"held-out Recall@20: training-free cosine {cosine:.3f}, untrained {held_recall():.3f}")
    for epoch in range(1, args.warmup_epochs + args.epochs + 1):
        model.train()
        warm = epoch <= args.warmup_epochs
        if warm:
            perm = torch.randperm(len(train_ids))
            batches = [perm[s : s + 64] for s in range(0, len(perm), 64)]
        else:
            batches = sampler.epoch(64, per="pair")
        losses = []
        for batch in batches:
            if warm:
                rows = batch
                loss = torch.zeros(())
            else:
                uniq, local = np.unique(batch, return_inverse=True)
                rows = torch.from_numpy(uniq)
                neg = torch.from_numpy(sampler.negative_mask[np.ix_(batch[:, 0], uniq)])
            emb = model(train.text[rows], train.image[rows])
            if not warm:
                local_t = torch.from_numpy(local.reshape(batch.shape))
                loss = batch_loss(triplet, "improved", emb, local_t, neg)
            if args.regulariser != "none" and (warm or args.weight > 0):
                weight = 1.0 if warm else args.weight
                loss = loss + weight * geometry_loss(args.regulariser, emb, target[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        stage = "warm-up" if warm else "triplet"
        print(f"epoch {epoch} ({stage}): loss {np.mean(losses):.4f}, held-out {held_recall():.3f}")


if __name__ == "__main__":
    main()
