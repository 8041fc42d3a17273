"""Training loop for the fusion net (single process, or DistributedDataParallel under torchrun)."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.checkpoint import provenance, save_checkpoint
from model.config import FusionConfig, TrainConfig, fusion_preset
from model.data import Dataset, Split, TripletSampler, relevance, restrict, split_ids, undirected
from model.device import resolve_device
from model.embedder import DEFAULT_INPUT_NORM, EmbedderSpec, InputNorm, MovieEmbedder
from model.features import FeatureCache
from model.losses import (
    LOSSES,
    ContrastiveLoss,
    ImprovedTripletLoss,
    MarginTripletLoss,
    MaxHingeLoss,
)
from model.metrics import retrieval_metrics


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    first_val_loss: float
    val_metrics: dict[str, float]
    epochs_run: int
    seconds: float
    stopped_by: str = "epochs"  # epochs | patience | time budget | interrupted


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_loss(cfg: TrainConfig) -> nn.Module:
    if cfg.loss == "improved":
        return ImprovedTripletLoss(cfg.distance)
    if cfg.loss in ("triplet-hard", "triplet-semihard"):
        if cfg.loss == "triplet-hard":
            return MarginTripletLoss(cfg.margin, "hard", cfg.distance)
        return MarginTripletLoss(cfg.margin, "semihard", cfg.distance)
    if cfg.loss == "contrastive":
        return ContrastiveLoss(margin=1.0, distance=cfg.distance)
    if cfg.loss == "vsepp":
        return MaxHingeLoss(cfg.margin)
    raise ValueError(f"unknown loss {cfg.loss!r}; choose from {LOSSES}")


def batch_loss(
    loss_fn: nn.Module, name: str, emb: torch.Tensor, local: torch.Tensor, neg_mask: torch.Tensor
) -> torch.Tensor:
    """emb (U, D) for the unique rows of a batch; local (B, 3) triplets into emb;
    neg_mask (B, U): unique row u is a valid negative for anchor b."""
    a, p, n = emb[local[:, 0]], emb[local[:, 1]], emb[local[:, 2]]
    if name == "improved":
        return loss_fn(a, p, n)
    if name.startswith("triplet-"):
        return loss_fn(a, p, emb, neg_mask)
    if name == "contrastive":
        ones = torch.ones(len(a), device=emb.device)
        return loss_fn(
            torch.cat([a, a]), torch.cat([p, n]), torch.cat([ones, torch.zeros_like(ones)])
        )
    return loss_fn(a, p, neg_mask[:, local[:, 1]])  # vsepp: p_j negative for a_i


class FeatureTable:
    """Cached features for a list of movie ids, on the training device."""

    def __init__(self, cache: FeatureCache, ids: list[int], device: torch.device) -> None:
        rows = cache.rows(ids)
        text = torch.from_numpy(cache.text[rows])
        self.text = (text.long() if cache.text_is_tokens else text.float()).to(device)
        self.image = torch.from_numpy(cache.image[rows]).float().to(device)
        self.ids = ids


@torch.no_grad()
def embed_table(model: nn.Module, table: FeatureTable, batch: int = 1024) -> np.ndarray:
    model.eval()
    out = [
        model(table.text[s : s + batch], table.image[s : s + batch]).float().cpu()
        for s in range(0, len(table.ids), batch)
    ]
    return torch.cat(out).numpy()


def _dist() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return (torch.distributed.get_rank() if world > 1 else 0), world


def train(
    cache: FeatureCache,
    dataset: Dataset,
    *,
    out_dir: str | Path,
    cfg: TrainConfig,
    preset: str = "small",
    head: str = "conv",
    split: Split | None = None,
    device: str = "auto",
    progress: bool = True,
    input_norm: InputNorm = DEFAULT_INPUT_NORM,
) -> TrainResult:
    """Train, early-stop on validation loss, save the best epoch as a checkpoint in `out_dir`."""
    rank, world = _dist()
    seed_everything(cfg.seed + rank)
    dev = resolve_device(device)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    split = split or split_ids(dataset.ids, seed=cfg.seed)
    rel = undirected(relevance(dataset, related_only=cfg.related_only))
    groups = {m.id: m.groups for m in dataset.movies}
    # The same seed on every rank: all ranks draw the same batches and each takes its share.
    train_s = TripletSampler(split.train, groups, restrict(rel, split.train), seed=cfg.seed)
    val_s = TripletSampler(split.validation, groups, restrict(rel, split.validation), seed=cfg.seed)
    if len(train_s) == 0 or len(val_s) == 0:
        raise ValueError("no similar pairs inside the train or validation split: nothing to learn")

    text_dim = int(cache.text.shape[1]) if not cache.text_is_tokens else 768
    fusion: FusionConfig = fusion_preset(
        preset, text_dim=text_dim, image_dim=int(cache.image.shape[1])
    )
    spec = EmbedderSpec(
        fusion=fusion,
        head=head,  # type: ignore[arg-type]
        text_tower=cache.meta["text_model"] if cache.text_is_tokens else None,
        vocab_size=cache.meta.get("vocab_size"),
        input_norm=input_norm,
    )
    model = MovieEmbedder(spec).to(dev)
    tr, va = FeatureTable(cache, split.train, dev), FeatureTable(cache, split.validation, dev)
    model.fit_standardizer(None if cache.text_is_tokens else tr.text, tr.image)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    loss_fn = build_loss(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = dev.type == "cuda"
    val_triplets = torch.from_numpy(val_s.fixed())
    val_rel = restrict(relevance(dataset, related_only=cfg.related_only), split.validation)

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = out_dir.with_name(out_dir.name + ".log.jsonl")
    log = log_path.open("w", encoding="utf-8") if rank == 0 else None
    # Epoch 0 = the untrained network: the baseline that "training lowers validation loss" means.
    first_val, metrics0 = _validate(model, loss_fn, cfg.loss, va, val_s, val_triplets, val_rel)
    if log:
        log.write(
            json.dumps(
                {"epoch": 0, "val_loss": first_val, **{f"val_{k}": v for k, v in metrics0.items()}}
            )
            + "\n"
        )
    best: tuple = (
        first_val,
        0,
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        metrics0,
    )
    started = time.perf_counter()
    bad_epochs = 0
    epochs_run = 0
    bar = tqdm(
        range(1, cfg.epochs + 1), desc=f"train {cfg.loss}", disable=not progress or rank != 0
    )
    stopped_by = "epochs"
    try:
        for epoch in bar:
            epochs_run = epoch
            train_loss = _train_epoch(net, loss_fn, cfg, opt, tr, train_s, dev, world, use_amp)
            val_loss, metrics = _validate(
                model, loss_fn, cfg.loss, va, val_s, val_triplets, val_rel
            )
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
            record.update({f"val_{k}": v for k, v in metrics.items()})
            if log:
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.set_postfix(
                train=f"{record['train_loss']:.4f}",
                val=f"{val_loss:.4f}",
                r20=f"{metrics.get('thesis_recall@20', 0):.3f}",
            )
            if val_loss < best[0] - 1e-6:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (val_loss, epoch, state, metrics)
                bad_epochs = 0
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    stopped_by = "patience"
                    break
            out_of_time = (
                cfg.max_minutes is not None and time.perf_counter() - started > 60 * cfg.max_minutes
            )
            if _rank0_decides(out_of_time, world, dev):  # every rank stops at the same epoch
                stopped_by = "time budget"
                break
    except KeyboardInterrupt:  # Ctrl-C ends training early; the best epoch is still saved
        if world > 1:
            raise
        stopped_by = "interrupted"
    if log:
        log.close()
    model.load_state_dict(best[2])
    result = TrainResult(
        best[1],
        best[0],
        float(first_val),
        best[3],
        epochs_run,
        time.perf_counter() - started,
        stopped_by,
    )
    if rank == 0:
        save_checkpoint(
            out_dir, model, extra=_checkpoint_extra(cache, dataset, cfg, preset, result)
        )
    if world > 1:  # every rank leaves together: a rank exiting with the group alive could abort
        torch.distributed.barrier()  # (SIGABRT seen once in the two-process CPU test)
        torch.distributed.destroy_process_group()
    return result


def _rank0_decides(flag: bool, world: int, dev: torch.device) -> bool:
    """Rank 0's clock decides for all ranks: DistributedDataParallel needs equal epoch counts."""
    if world == 1:
        return flag
    value = torch.tensor([int(flag)], device=dev)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


def _train_epoch(
    net: nn.Module,
    loss_fn: nn.Module,
    cfg: TrainConfig,
    opt: torch.optim.Optimizer,
    table: FeatureTable,
    sampler: TripletSampler,
    dev: torch.device,
    world: int,
    use_amp: bool,
) -> float:
    """One epoch of triplets (`cfg.sampling`: per similar pair or per anchor); returns the
    mean triplet loss."""
    net.train()
    rank = torch.distributed.get_rank() if world > 1 else 0
    batches = sampler.epoch(cfg.batch_size, per=cfg.sampling)
    # equal step counts on every rank, or DistributedDataParallel's all-reduce waits forever
    batches = batches[: max(1, len(batches) // world) * world][rank::world]
    total, count = 0.0, 0
    for triplets in batches:
        uniq, local = np.unique(triplets, return_inverse=True)
        local_t = torch.from_numpy(local.reshape(triplets.shape)).to(dev)
        uniq_t = torch.from_numpy(uniq).to(dev)
        neg = torch.from_numpy(sampler.negative_mask[np.ix_(triplets[:, 0], uniq)]).to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            emb = net(table.text[uniq_t], table.image[uniq_t]).float()
        loss = batch_loss(loss_fn, cfg.loss, emb, local_t, neg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(triplets)
        count += len(triplets)
    return total / max(count, 1)


def _validate(
    model, loss_fn, name, table, sampler, triplets, rel
) -> tuple[float, dict[str, float]]:
    emb = torch.from_numpy(embed_table(model, table))
    uniq, local = np.unique(triplets.numpy(), return_inverse=True)
    neg = torch.from_numpy(sampler.negative_mask[np.ix_(triplets[:, 0].numpy(), uniq)])
    with torch.no_grad():
        loss = float(
            batch_loss(loss_fn, name, emb[uniq], torch.from_numpy(local.reshape(-1, 3)), neg)
        )
    try:
        metrics = retrieval_metrics(emb.numpy(), table.ids, rel)
    except ValueError:
        metrics = {}
    return loss, metrics


def _checkpoint_extra(cache, dataset, cfg, preset, result) -> dict[str, Any]:
    return {
        **provenance(cache, dataset),
        "preset": preset,
        "train": asdict(cfg),
        "result": asdict(result),
    }
