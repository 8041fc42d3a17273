"""Fold a frozen image trunk's batch norms into the convolutions that feed them.

In eval mode a batch norm is a per-channel scale and shift, which the convolution before it can
absorb into its weights and bias: the same function, one memory-bound pass less per layer. On 2
CPU cores that made EfficientNet-Lite0 and -B3 1.3x faster (docs/PERFORMANCE.md section 3); on a
GPU it removes one kernel launch per folded layer from a launch-bound forward.

Which batch norm follows which convolution is read from one probe forward (a norm whose input
*is* the convolution's output tensor, no other module run between), not from the order modules
were registered in, and the folded model must give the unfolded one's output on the probe, or it
is put back as it was: any timm model is safe to pass (a weight-standardised convolution, say,
cannot be folded, and is not).
"""

from __future__ import annotations

import logging
from collections import Counter

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger("movierec.fold_bn")

# relative to the output's largest magnitude; fp32 reordering leaves about 1e-6
TOLERANCE = 1e-3


def fold_batch_norms(model: nn.Module, probe: torch.Tensor) -> int:
    """Fold every batch norm (plain, or timm's BatchNormAct2d, keeping its activation) that
    directly follows a convolution used once. `model` must be in eval mode, `probe` a valid
    input on its device. Returns how many were folded; 0 leaves the model untouched."""
    if model.training:
        raise ValueError("fold batch norms into an eval-mode model only")
    try:
        pairs, expected = _conv_bn_pairs(model, probe)
    except Exception as exc:  # the probe does not fit this model: leave it alone
        log.info("batch norms not folded: the probe forward failed (%s)", exc)
        return 0
    if not pairs:
        return 0
    owners = {
        child: (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
    }
    undo = [_fold(owners, conv, bn) for conv, bn in pairs]
    with torch.inference_mode():
        got = model(probe)
    scale = float(expected.abs().max()) or 1.0
    error = float((got - expected).abs().max()) / scale
    if not error <= TOLERANCE:
        for put_back in reversed(undo):
            put_back()
        log.warning("batch norms not folded: the folded model differed by %.2g", error)
        return 0
    return len(pairs)


def _conv_bn_pairs(
    model: nn.Module, probe: torch.Tensor
) -> tuple[list[tuple[nn.Conv2d, nn.Module]], torch.Tensor]:
    """(convolution, batch norm) pairs where the norm's input is the convolution's output, each
    module called once in the probe forward; and that forward's output, the unfolded reference."""
    calls: Counter[nn.Module] = Counter()
    last: list[tuple[nn.Module, torch.Tensor]] = []  # the latest convolution and its output
    found: list[tuple[nn.Conv2d, nn.Module]] = []

    def after_conv(conv: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        calls[conv] += 1
        last[:] = [(conv, output)]

    def before_bn(bn: nn.Module, inputs: tuple) -> None:
        calls[bn] += 1
        if last and inputs and inputs[0] is last[0][1]:
            found.append((last[0][0], bn))  # type: ignore[arg-type]  # a Conv2d, hooked below
        last.clear()

    def before_other(_module: nn.Module, _inputs: tuple) -> None:
        last.clear()  # an in-place activation, say, would keep the tensor but change it

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):  # and subclasses (timm's Conv2dSame): checked below
            handles.append(module.register_forward_hook(after_conv))
        elif _foldable_norm(module):
            handles.append(module.register_forward_pre_hook(before_bn))
        elif not any(module.children()):
            handles.append(module.register_forward_pre_hook(before_other))
    try:
        with torch.inference_mode():
            output = model(probe)
    finally:
        for handle in handles:
            handle.remove()
    return [(conv, bn) for conv, bn in found if calls[conv] == 1 and calls[bn] == 1], output


def _foldable_norm(module: nn.Module) -> bool:
    """A plain batch norm or timm's BatchNormAct2d (not other subclasses) with running stats."""
    from timm.layers import BatchNormAct2d

    return type(module) in (nn.BatchNorm2d, BatchNormAct2d) and bool(module.track_running_stats)


Owners = dict[nn.Module, tuple[nn.Module, str]]  # module -> (parent, attribute name)


def _fold(owners: Owners, conv: nn.Conv2d, bn: nn.Module):
    """Swap in the folded convolution and what is left of the norm; returns the undo."""
    (conv_parent, conv_name), (bn_parent, bn_name) = owners[conv], owners[bn]
    fused = fuse_conv_bn_eval(conv, bn)  # type: ignore[arg-type]  # a BatchNorm2d or subclass
    rest: nn.Module = nn.Identity()
    if hasattr(bn, "act"):  # timm's BatchNormAct2d: dropout and activation after the norm
        rest = nn.Sequential(bn.drop, bn.act)  # type: ignore[arg-type]
    setattr(conv_parent, conv_name, fused)
    setattr(bn_parent, bn_name, rest)

    def undo() -> None:
        setattr(conv_parent, conv_name, conv)
        setattr(bn_parent, bn_name, bn)

    return undo
