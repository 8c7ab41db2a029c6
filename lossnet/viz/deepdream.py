"""DeepDream (Mordvintsev, Olah & Tyka 2015): amplify whatever a layer already sees in an image.
Gradient ascent on the layer's energy with L1-normalised steps and random jitter, over octaves: the
image is dreamed small first, and each larger octave starts from the original at that size plus the
detail dreamed so far. Pixels stay in [0, 1]. One objective on the pixel loop, run once per octave.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .. import objectives as O
from ..errors import LossnetError
from ..io import resize
from ..optimize import LoopConfig, jitter, optimize_pixels


@dataclass
class DreamConfig:
    layer: str = "blocks.8"
    octaves: int = 3
    octave_scale: float = 1.4
    jitter: int = 16
    seed: int = 0  # the jitter's
    # Run once per octave (iters is per octave): L1-normalised steps that move pixels by about lr each. Its
    # transforms are this method's own: the jitter above.
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(iters=10, optimizer="normalized", lr=0.01,
                                                                progress=False, desc="deepdream"))


def deepdream(model, image: torch.Tensor, cfg: DreamConfig | None = None) -> torch.Tensor:
    """(1, 3, H, W) image with the patterns `cfg.layer` responds to amplified."""
    cfg = cfg or DreamConfig()
    model.layer(cfg.layer)  # an unknown layer fails here, before any work
    if cfg.octaves > 1 and cfg.octave_scale <= 1:
        raise LossnetError(f"octave scale must be > 1 (each octave larger than the last), got {cfg.octave_scale}")
    objective = -O.energy(cfg.layer)
    h, w = image.shape[-2:]
    sizes = [(max(16, round(h / cfg.octave_scale ** k)), max(16, round(w / cfg.octave_scale ** k)))
             for k in reversed(range(cfg.octaves))]
    detail = torch.zeros_like(image)
    for octave, hw in enumerate(sizes):
        base = resize(image, hw)
        loop = replace(cfg.loop, transforms=[jitter(cfg.jitter, cfg.seed + octave)],
                       desc=f"{cfg.loop.desc} {hw[1]}x{hw[0]}")
        dreamed, _ = optimize_pixels(objective, model, (base + _resize_signed(detail, hw)).clamp(0, 1), loop)
        detail = dreamed - base
    return dreamed


def _resize_signed(t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize without io.resize's clamp to [0, 1]: detail is a signed difference."""
    return torch.nn.functional.interpolate(t, size=hw, mode="bilinear", align_corners=False)
