"""THE pixel loop: optimise an image against an objective computed by a frozen network.

It knows nothing about which method is running. Style transfer, texture synthesis, feature inversion,
DeepDream and class visualisation differ only in their objective, their start image, their transforms
(random jitter before the network sees the image) and their projection (what happens to the pixels after
each step: clamping, blurring). `coarse_to_fine` runs it at growing sizes so large outputs are cheap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .errors import LossnetError
from .io import resize, save_image
from .objectives import Objective
from .precision import announce, resolve as resolve_precision
from .progress import progress

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LoopConfig:
    iters: int = 300
    optimizer: str = "lbfgs"  # or "adam", or "normalized" (DeepDream's L1-normalised gradient steps)
    lr: float | None = None  # Adam's step; default 0.02 (images live in [0, 1]); "normalized": default 0.01
    transforms: Sequence[Transform] = ()  # applied, differentiably, to the image the network sees
    project: Callable[[torch.Tensor, int], None] | None = None  # in-place pixel update after each step
    clamp: bool = True  # keep pixels in [0, 1] (after each Adam step; at the end for L-BFGS)
    stop: Callable[[dict], bool] | None = None  # end early once true of the latest history row
    snapshot_every: int = 0
    snapshot_path: str | None = None  # e.g. out.png -> out_iter0100.png
    progress: bool = True
    desc: str = "optimise"
    precision: object = "auto"  # lossnet.precision name or Precision: the network's format; pixels stay fp32
    history: list = field(default_factory=list)  # filled with {"iter", "loss", term...} rows


class NormalizedSGD(torch.optim.Optimizer):
    """Gradient steps divided by the gradient's mean absolute value (DeepDream): each step moves pixels by
    about `lr` whatever the objective's scale, so one step size fits every layer."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad / (p.grad.abs().mean() + 1e-12), alpha=-group["lr"])
        return loss


def jitter(pixels: int, seed: int = 0) -> Transform:
    """A transform: roll the image by a random shift of up to `pixels` each call, so the optimised pattern
    cannot rely on an exact pixel grid (class visualisation, DeepDream). Seeded for repeatable runs."""
    generator = torch.Generator().manual_seed(seed)

    def shift(x: torch.Tensor) -> torch.Tensor:
        dy, dx = torch.randint(-pixels, pixels + 1, (2,), generator=generator).tolist()
        return torch.roll(x, (dy, dx), dims=(-2, -1))
    return shift


def _check_finite(parts: dict[str, torch.Tensor], it: int) -> None:
    total = sum(float(v.detach()) for v in parts.values())
    if not math.isfinite(total):
        bad = [name for name, v in parts.items() if not math.isfinite(float(v.detach()))]
        raise LossnetError(f"loss became non-finite at iteration {it} (term {', '.join(bad) or '?'}): "
                           "lower the learning rate or that term's weight")


def _snapshot(cfg: LoopConfig, image: torch.Tensor, it: int) -> None:
    path = Path(cfg.snapshot_path)
    save_image(image, path.with_name(f"{path.stem}_iter{it:04d}{path.suffix}"))


def optimize_pixels(objective: Objective, net: Callable[[torch.Tensor], dict], init: torch.Tensor,
                    cfg: LoopConfig | None = None) -> torch.Tensor:
    """Minimise objective(net(transforms(x)), x) over the pixels x, starting at `init`. Returns x."""
    cfg = cfg or LoopConfig()
    x = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)  # L-BFGS needs .view()
    if cfg.optimizer == "lbfgs":
        # One L-BFGS iteration per step() so the progress bar, snapshots and projections see every iteration.
        opt = torch.optim.LBFGS([x], lr=cfg.lr or 1.0, max_iter=1, history_size=20)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam([x], lr=cfg.lr or 0.02)
    elif cfg.optimizer == "normalized":
        opt = NormalizedSGD([x], lr=cfg.lr or 0.01)
    else:
        raise LossnetError(f"unknown optimizer {cfg.optimizer!r}: choose lbfgs, adam or normalized")

    last: dict[str, torch.Tensor] = {}
    run = resolve_precision(cfg.precision, x.device)

    def closure():
        opt.zero_grad(set_to_none=True)
        seen = x
        for t in cfg.transforms:
            seen = t(seen)
        with run.autocast():  # the objective's terms are fp32 (objectives.py); the backward runs outside
            parts = objective.parts(net(seen), seen)
        _check_finite(parts, len(cfg.history))
        loss = sum(parts.values())
        loss.backward()
        last.clear()
        last.update({k: v.detach() for k, v in parts.items()}, loss=loss.detach())
        return loss

    if cfg.progress:
        announce(run)
    bar = progress(cfg.iters, cfg.desc, cfg.progress)
    for it in range(1, cfg.iters + 1):
        opt.step(closure)
        with torch.no_grad():
            if cfg.project is not None:
                cfg.project(x, it)
            if cfg.clamp and cfg.optimizer != "lbfgs":
                x.clamp_(0, 1)
        row = {k: float(v) for k, v in last.items()}
        cfg.history.append({"iter": it, **row})
        bar.update(1, row, image=lambda: x.detach().clamp(0, 1))  # the iterate, for an observer's live preview
        if cfg.snapshot_every and cfg.snapshot_path and it % cfg.snapshot_every == 0 and it < cfg.iters:
            _snapshot(cfg, x.detach().clamp(0, 1), it)
        if cfg.stop is not None and cfg.stop(cfg.history[-1]):
            break
    bar.close()
    result = x.detach()
    return result.clamp(0, 1) if cfg.clamp else result


def coarse_to_fine(sizes: Sequence[tuple[int, int]], build: Callable[[tuple[int, int]], tuple[Objective, torch.Tensor]],
                   net, cfg: LoopConfig, iters: Sequence[int] | None = None) -> torch.Tensor:
    """Run the loop at each (H, W) in turn; each stage starts from the last result, upsampled.

    `build(hw)` returns the objective at that size and the start image for the first stage. Most of the
    work happens at the small sizes, where it is cheap; the large ones only add detail.
    """
    image = None
    params = next(iter(net.parameters()), None) if isinstance(net, torch.nn.Module) else None
    run = resolve_precision(cfg.precision, params.device if params is not None else "cpu")
    for stage, hw in enumerate(sizes):
        with run.autocast():  # targets in the loop's own format: the start image's content loss is then exactly 0
            objective, init = build(hw)
        if image is not None:
            init = resize(image, hw)
        stage_cfg = LoopConfig(**{**cfg.__dict__, "iters": iters[stage] if iters else cfg.iters, "history": [],
                                  "desc": f"{cfg.desc} {hw[1]}x{hw[0]}"})
        image = optimize_pixels(objective, net, init, stage_cfg)
        cfg.history.extend(stage_cfg.history)
    return image
