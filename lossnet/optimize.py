"""THE pixel loop: optimise an image against an objective computed by a frozen network.

It knows nothing about which method is running. Style transfer, texture synthesis, feature inversion,
DeepDream and class visualisation differ only in their objective, their start image, their transforms
(random jitter before the network sees the image) and their projection (what happens to the pixels after
each step: clamping, blurring). `coarse_to_fine` runs it at growing sizes so large outputs are cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from .errors import LossnetError, check_finite
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
    faster: str = ""  # what makes the run faster, said with the time estimate (the CLI: "--size 256", ...)


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


def _snapshot(cfg: LoopConfig, image: torch.Tensor, it: int) -> None:
    path = Path(cfg.snapshot_path)
    save_image(image, path.with_name(f"{path.stem}_iter{it:04d}{path.suffix}"))


def optimize_pixels(objective: Objective, net: Callable[[torch.Tensor], dict], init: torch.Tensor,
                    cfg: LoopConfig | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Minimise objective(net(transforms(x)), x) over the pixels x, starting at `init`.

    `net` is a function of the image returning {tap: activation}, or an object with `taps(image, names)` (a
    `LossNetwork`, a `Classifier`), asked for the objective's layers. Returns (x, history): one row
    {"iter", "loss", term...} per iteration."""
    cfg = cfg or LoopConfig()
    history: list[dict] = []
    net = _as_function(net, objective)
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
        check_finite(parts, f"at iteration {len(history)}")
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
        history.append({"iter": it, **row})
        bar.update(1, row, image=lambda: x.detach().clamp(0, 1))  # the iterate, for an observer's live preview
        if cfg.snapshot_every and cfg.snapshot_path and it % cfg.snapshot_every == 0 and it < cfg.iters:
            _snapshot(cfg, x.detach().clamp(0, 1), it)
        if cfg.stop is not None and cfg.stop(history[-1]):
            break
    bar.close()
    result = x.detach()
    return (result.clamp(0, 1) if cfg.clamp else result), history


def _as_function(net, objective: Objective):
    """A Taps object (`taps(image, names) -> {name: activation}`) as the loop's function of the image."""
    if hasattr(net, "taps"):
        layers = tuple(objective.layers)
        return lambda x: net.taps(x, layers)
    return net


MIN_COARSE_SIDE = 128  # a coarse stage smaller than this sets too little of the final image's structure


def plan_stages(size: int | None, scales: Sequence[int] | None, iters: Sequence[int] | None,
                default_scales: Sequence[int], default_iters: Sequence[int]) -> tuple[list[int], list[int]]:
    """(longest side of each stage, iterations of each) from what the user gave and the method's defaults.

    The stages are `scales` (default `default_scales`); `size` rescales them so the last is `size`, and stages
    that then fall below MIN_COARSE_SIDE are dropped, their iterations going to the first stage kept (`--size 128`
    runs one stage with all of them). `iters`: one value for every stage, or one per stage."""
    sizes = list(scales or default_scales)
    plan = list(default_iters) if not scales and len(default_iters) == len(sizes) else [default_iters[-1]] * len(sizes)
    if size:
        sizes = [max(1, round(s * size / sizes[-1])) for s in sizes]
        keep = [i for i, s in enumerate(sizes) if s >= MIN_COARSE_SIDE] or [len(sizes) - 1]
        dropped = sum(plan[:keep[0]])
        sizes, plan = [sizes[i] for i in keep], [plan[i] for i in keep]
        plan[0] += dropped
    if iters:
        plan = list(iters) * len(sizes) if len(iters) == 1 else list(iters)
    if len(plan) != len(sizes):
        raise LossnetError(f"--iters has {len(plan)} values for {len(sizes)} scales")
    return sizes, plan


def say_estimate(objective: Objective, net, init: torch.Tensor, run, sizes, iters, faster: str = "") -> None:
    """One forward and backward pass at the first stage, timed and measured, scaled to the whole run (lossnet.estimate).
    Without the loop's transforms: their random draws must stay the run's own."""
    from .estimate import calibrate, pixel_loop
    from .weights import notice

    def one_pass():
        x = init.detach().clone().requires_grad_(True)
        with run.autocast():
            parts = objective.parts(_as_function(net, objective)(x), x)
        sum(parts.values()).backward()
    announce(run)
    notice(pixel_loop(calibrate(one_pass), tuple(init.shape[-2:]), sizes, iters).describe(faster))


def coarse_to_fine(sizes: Sequence[tuple[int, int]], build: Callable[[tuple[int, int]], tuple[Objective, torch.Tensor]],
                   net, cfg: LoopConfig, iters: Sequence[int] | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Run the loop at each (H, W) in turn; each stage starts from the last result, upsampled.

    `build(hw)` returns the objective at that size and the start image for the first stage. Most of the
    work happens at the small sizes, where it is cheap; the large ones only add detail. Returns (image,
    history): every stage's rows, in order.
    """
    image, history = None, []
    params = next(iter(net.parameters()), None) if isinstance(net, torch.nn.Module) else None
    run = resolve_precision(cfg.precision, params.device if params is not None else "cpu")
    for stage, hw in enumerate(sizes):
        with run.autocast():  # targets in the loop's own format: the start image's content loss is then exactly 0
            objective, init = build(hw)
        if image is not None:
            init = resize(image, hw)
        if stage == 0 and cfg.progress:  # said before the work: time and memory, measured here and now
            say_estimate(objective, net, init, run, sizes, list(iters) if iters else [cfg.iters] * len(sizes), cfg.faster)
        stage_cfg = LoopConfig(**{**cfg.__dict__, "iters": iters[stage] if iters else cfg.iters,
                                  "desc": f"{cfg.desc} {hw[1]}x{hw[0]}"})
        image, rows = optimize_pixels(objective, net, init, stage_cfg)
        history += rows
    return image, history
