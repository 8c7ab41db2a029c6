"""Objectives are values: small terms of a network's activations that add and scale.

    objective = content("relu4_2", target) + 1e3 * style({"relu1_1": g1, ...}) + 1e-2 * tv()

An `Objective` is a weighted list of named terms, each `term(feats, image) -> scalar`, and knows which
taps it reads (`layers`), so a loop can build the loss network only as deep as needed and report every
term's value. Content and style losses are relative (divided by the target's mean square): their size does
not depend on which weights the loss network has (Caffe-scaled HED activations are ~60x torchvision's), so
one set of default weights works for every network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

Term = Callable[[dict, torch.Tensor], torch.Tensor]
EPS = 1e-8


@dataclass
class Objective:
    terms: list[tuple[float, str, Term]]
    layers: tuple[str, ...] = field(default_factory=tuple)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self.terms + other.terms, tuple(dict.fromkeys(self.layers + other.layers)))

    def __mul__(self, weight: float) -> "Objective":
        return Objective([(w * weight, name, fn) for w, name, fn in self.terms], self.layers)

    __rmul__ = __mul__

    def __radd__(self, other) -> "Objective":  # lets sum() start from 0
        if isinstance(other, (int, float)) and other == 0:
            return self
        return NotImplemented

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)

    def parts(self, feats: dict, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each weighted term by name (terms with the same name add up)."""
        out: dict[str, torch.Tensor] = {}
        for w, name, fn in self.terms:
            if w != 0:
                value = w * fn(feats, image)
                out[name] = out[name] + value if name in out else value
        return out

    def __call__(self, feats: dict, image: torch.Tensor) -> torch.Tensor:
        return sum(self.parts(feats, image).values())


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class _Gram(torch.autograd.Function):
    """G = X^T X / k for X (N, M, C), in fp32 whatever X's format; backward dX = X (dG + dG^T) / k: one
    product where autograd's own would take two and a sum. X is saved as it is (bf16 stays bf16)."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        xf = _at_least_fp32(x)
        return xf.mT @ xf / k

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (_at_least_fp32(x) @ ((grad + grad.mT) / ctx.k)).to(x.dtype), None


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) channel correlations, divided by C*H*W (Gatys; Johnson eq. 3).

    Always fp32, also under bf16 autocast: a bf16 Gram keeps ~3 digits, too few for a loss that compares
    Grams. A channels-last `f` (the networks' layout) is read as (N, HW, C) without a copy."""
    n, c, h, w = f.shape
    flat = f.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view when f is channels-last
    with torch.autocast(f.device.type, enabled=False):
        return _Gram.apply(flat, c * h * w)


def relative_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((x - target)^2) / mean(target^2) per image, averaged over the batch: 1.0 means 'as far as
    predicting zeros'. Per image, so a batch's loss is the mean of its images' losses (what lets DDP's mean
    of per-process gradients equal the whole batch's). In fp32 whatever the inputs' format (bf16 under autocast)."""
    x, target = _at_least_fp32(x), _at_least_fp32(target)
    if x.dim() <= 1:  # one sample
        return (x - target).pow(2).mean() / (target.pow(2).mean() + EPS)
    err = (x - target).pow(2).flatten(1).mean(1)
    energy = target.pow(2).flatten(1).mean(1)  # a target of batch 1 (a Gram) is shared by every image
    return (err / (energy + EPS)).mean()


def content(layer: str, target: torch.Tensor) -> Objective:
    """Feature reconstruction at `layer` (Johnson eq. 2), relative to the target's energy."""
    target = target.detach()
    return Objective([(1.0, "content", lambda feats, image: relative_mse(feats[layer], target))], (layer,))


def style(grams: dict[str, torch.Tensor], layer_weights: dict[str, float] | None = None) -> Objective:
    """Gram-matrix style loss summed over layers, each relative to its target Gram; weights default to 1/L."""
    grams = {k: g.detach() for k, g in grams.items()}
    weights = layer_weights or {k: 1.0 / len(grams) for k in grams}

    def term(feats, image):
        return sum(weights[k] * relative_mse(gram_matrix(feats[k]), g) for k, g in grams.items())
    return Objective([(1.0, "style", term)], tuple(grams))


def color_directions(count: int = 32) -> torch.Tensor:
    """`count` unit vectors spread evenly over the sphere of RGB directions (a Fibonacci lattice), (count, 3)."""
    i = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / count
    r, phi = (1 - z * z).sqrt(), i * torch.pi * (3 - 5 ** 0.5)
    return torch.stack([r * phi.cos(), r * phi.sin(), z], 1).float()


def colors(target: torch.Tensor, count: int = 32) -> Objective:
    """Sliced Wasserstein distance between the image's pixel colours and `target`'s (1, 3, h, w): the squared
    difference of their sorted projections on `count` RGB directions (Heitz et al. 2021, on pixels). Grams
    match colours only through the features' second moments, which fine texture can meet with the wrong
    colours; this term matches the colours' whole distribution."""
    directions = color_directions(count).to(target.device)
    wanted = (target.detach().float().flatten(2)[0].T @ directions.T).sort(0).values  # (pixels, count)

    def term(feats, image):
        x = image.float().flatten(2).transpose(1, 2) @ directions.T  # (N, pixels, count)
        n = x.shape[1]
        at = ((torch.arange(n, device=x.device) + 0.5) * (len(wanted) / n)).long()  # the target's quantiles
        return (x.sort(1).values - wanted[at]).pow(2).mean()
    return Objective([(1.0, "color", term)])


def lattice(period: int = 4) -> Objective:
    """The power of the image's part that repeats every `period` pixels down and across: the variance of the
    `period` x `period` phases' mean colours, per image and channel (the DFT's power at those frequencies). A
    style network's two x2 stages can print such a lattice (`lossnet.metrics.lattice_contrast`); a photo has
    next to none (~1e-5 at period 4)."""
    def term(feats, image):
        h, w = image.shape[-2:]
        x = image[..., :h - h % period, :w - w % period].float()
        phases = x.unflatten(-1, (-1, period)).unflatten(-3, (-1, period)).mean((-4, -2))  # (N, C, p, p)
        return phases.flatten(-2).var(-1).mean()
    return Objective([(1.0, "lattice", term)])


def tv() -> Objective:
    """Total variation: mean squared difference of neighbouring pixels (smooth, so L-BFGS likes it)."""
    def term(feats, image):
        dy, dx = image[..., 1:, :] - image[..., :-1, :], image[..., :, 1:] - image[..., :, :-1]
        return sum(d.pow(2).mean() for d in (dy, dx) if d.numel())  # a 1-pixel side has no neighbours
    return Objective([(1.0, "tv", term)])


def activation(layer: str, channel: int | None = None, name: str = "activation") -> Objective:
    """Mean activation of a layer (or one channel of it); maximise with a negative weight (DeepDream)."""
    def term(feats, image):
        f = feats[layer] if channel is None else feats[layer][:, channel]
        return f.mean()
    return Objective([(1.0, name, term)], (layer,))


def energy(layer: str, name: str = "energy") -> Objective:
    """Mean squared activation of a layer: DeepDream's objective (its gradient is the activation itself)."""
    return Objective([(1.0, name, lambda feats, image: feats[layer].pow(2).mean())], (layer,))


def logit(index: int, layer: str = "logits", name: str = "logit") -> Objective:
    """One output unit of a layer (a class score), averaged over the batch; maximise with a negative weight."""
    return Objective([(1.0, name, lambda feats, image: feats[layer][:, index].mean())], (layer,))


def l2(name: str = "l2") -> Objective:
    """Mean squared pixel value around mid-grey: the L2 prior of class-model visualisation."""
    return Objective([(1.0, name, lambda feats, image: (image - 0.5).pow(2).mean())])
