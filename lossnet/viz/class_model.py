"""Class model visualisation (Simonyan et al. 2013, https://arxiv.org/abs/1312.6034, with the
regularisers of Yosinski et al. 2015, https://arxiv.org/abs/1506.06579): gradient ascent on a class's
logit from grey noise, kept natural by an L2 penalty, random jitter, a Gaussian blur every few steps and
clipping of pixels whose deviation from grey is small. One objective on the pixel loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .. import objectives as O
from ..data import gaussian_blur
from ..optimize import LoopConfig, jitter, optimize_pixels


@dataclass
class ClassModelConfig:
    size: int = 224
    l2_weight: float = 1.0  # against logits of ~10-50
    jitter: int = 16  # pixels
    blur_every: int = 10  # steps; 0 turns blur and clipping off
    blur_sigma: float = 0.5
    clip_percentile: float = 10.0  # pixels whose colour is closest to grey are reset to grey
    seed: int = 0  # the start noise and the jitter
    # Steps, optimiser (Adam; lr in [0, 1] pixel units), progress, precision. Its transforms and projection are
    # this method's own: the jitter and the blur-and-clip above.
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(iters=200, optimizer="adam", lr=0.02, progress=False,
                                                                desc="class model"))


def grey_noise(size: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, size, size) mid-grey with faint noise: the neutral start of class visualisation."""
    g = torch.Generator().manual_seed(seed)
    return (0.5 + 0.02 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)


def clip_small(x: torch.Tensor, percentile: float) -> torch.Tensor:
    """Reset to grey the pixels whose colour deviates least from grey (the lowest `percentile` %)."""
    deviation = (x - 0.5).norm(dim=1, keepdim=True)
    cutoff = torch.quantile(deviation.flatten(1), percentile / 100, dim=1).view(-1, 1, 1, 1)
    return torch.where(deviation < cutoff, torch.full_like(x, 0.5), x)


def _regularize(cfg: ClassModelConfig):
    def project(x: torch.Tensor, it: int) -> None:
        if cfg.blur_every and it % cfg.blur_every == 0:
            x.copy_(clip_small(gaussian_blur(x, cfg.blur_sigma), cfg.clip_percentile))
    return project


def class_model(model, target, cfg: ClassModelConfig | None = None) -> torch.Tensor:
    """(1, 3, S, S) image that the model scores highly as class `target` (an index or a name)."""
    cfg = cfg or ClassModelConfig()
    objective = -O.logit(model.class_index(target)) + cfg.l2_weight * O.l2()
    loop = replace(cfg.loop, transforms=[jitter(cfg.jitter, cfg.seed)], project=_regularize(cfg))
    return optimize_pixels(objective, model, grey_noise(cfg.size, cfg.seed), loop)[0]
