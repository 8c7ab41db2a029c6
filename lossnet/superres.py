"""Perceptual-loss super-resolution (Johnson, Alahi & Fei-Fei, https://arxiv.org/abs/1603.08155, sec. 4.2).

    train_sr(SRConfig(data=["photos/"], scale=4, loss="feature"), "x4.safetensors", "x4_run")
    net = load_srnet("x4-feature")                 # a bundled name or a path
    hr = upscale(net, load_image("small.png"))     # large inputs go through in overlapping tiles
    registry.apply_to_path(net, "clip.mp4", "clip_x4.mp4")   # a file, a folder of images, a video

An `SRTask` on the generator loop (`lossnet.train`): HR crops of any folder of photos, degraded as in the
paper (Gaussian blur sigma 1.0, bicubic downsampling by the scale), and one of two losses on the network's
output: `feature` (feature reconstruction at relu2_2, relative MSE, plus TV) or `pixel` (per-pixel MSE,
the paper's baseline, plus TV). The network is `nets.srnet.SRNet` (resize-convs, not transposed convs:
see its docstring). `evaluate` scores bicubic and models on Set5 / Set14 the way SR papers do (Y channel,
`scale` border pixels cropped, see `lossnet.metrics`). The kind is `KIND` (sr) in `lossnet.registry`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from . import objectives as O
from . import registry
from .data import StepBatches, degrade, modcrop, photo_crops
from .errors import ConfigError, LossnetError, suggest
from .export import Graph
from .features import LossNetwork, build_matching
from .io import IMAGE_SUFFIXES, load_image, picture
from .nets.srnet import SRNet
from .precision import announce, resolve as resolve_precision
from .registry import Kind, init_from_option, loss_network_option, loss_weights_option, option
from .tiling import auto_tile, tiled
from .train import Task, TrainConfig, seeded

LOSSES = ("feature", "pixel", "feature+pixel")
SCALES = (2, 4, 8, 16)
MAX_OUTPUT_PIXELS = 160_000_000  # ~1.9 GB as float RGB: the largest result a 24 GB, 2-core machine should make


@dataclass
class SRConfig:
    data: Sequence[str] = option((), "folder of HR photos (repeatable, recursive)", metavar="DIR", repeat=True,
                                 required=True, path=True)
    scale: int = option(4, "upscaling factor", choices=SCALES)
    loss: str = option("feature", "feature (reconstruction at the content layer, Johnson et al.), pixel (MSE), or "
                       "feature+pixel (both, weighted by content-weight and pixel-weight)", choices=LOSSES)
    crop: int = option(288, "HR patch side (the paper's 288); a multiple of the scale", minimum=1)
    batch_size: int = option(4, "the global batch: under torchrun each process takes batch-size / processes of it",
                             minimum=1)
    sigma: float = option(1.0, "Gaussian blur before the bicubic downsampling", minimum=0)
    content_layer: str = option("relu2_2", "the feature loss's layer")
    content_weight: float = option(1.0, "weight of the feature loss", minimum=0)
    pixel_weight: float = option(1.0, "weight of the pixel loss", minimum=0)
    tv_weight: float = option(0.0, "TV on the output (the paper cross-validates 1e-6..1e-4 on unnormalised losses)",
                              minimum=0)
    channels: int = option(64, "channels of the residual blocks", minimum=1)
    blocks: int = option(4, "residual blocks", minimum=1)
    norm: str = option("instance", "normalisation in the residual blocks", choices=("instance", "batch", "none"))
    residual: bool = True  # predict a correction to bicubic (False: the image itself)
    network: str = loss_network_option()
    weights: str | None = loss_weights_option()
    init_from: str | None = init_from_option()  # of the same scale
    train: TrainConfig = field(default_factory=lambda: TrainConfig(desc="train-sr"))


# ----------------------------------------------------------------------------- data
def downsample(hr: torch.Tensor, scale: int, sigma: float = 1.0) -> torch.Tensor:
    """The LR image: the paper's Gaussian blur + bicubic (`data.degrade`), or with sigma 0 plain antialiased
    bicubic (MATLAB imresize-like, the usual SR benchmark degradation)."""
    if sigma > 0:
        return degrade(hr, scale, sigma)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise LossnetError(f"HR image {w}x{h} is not a multiple of the scale {scale}: crop it first (modcrop)")
    batch = hr if hr.dim() == 4 else hr[None]
    lr = F.interpolate(batch, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=True)
    return (lr if hr.dim() == 4 else lr[0]).clamp(0, 1)


# ----------------------------------------------------------------------------- training
class SRTask(Task):
    """Super-resolution as a `train.Task`: LR crops in, the HR crops are the target; no discriminator."""

    def __init__(self, cfg: SRConfig, generator: SRNet | None = None, quiet: bool = False):
        if cfg.loss not in LOSSES:
            raise ConfigError("loss", f"unknown {cfg.loss!r}{suggest(cfg.loss, LOSSES)}: choose {', '.join(LOSSES)}")
        self.cfg = cfg
        if generator is None and cfg.init_from:
            generator = load_srnet(cfg.init_from, cfg.scale).train()
        elif generator is None:
            with seeded(cfg.train.seed):
                generator = SRNet(cfg.scale, cfg.channels, cfg.blocks, cfg.norm, cfg.residual)
        self.generator = generator
        if cfg.crop // cfg.scale < 5:
            raise ConfigError("crop", f"{cfg.crop} gives {cfg.crop // cfg.scale}-pixel LR patches at x{cfg.scale}: "
                                      f"the network needs at least 5 (crop >= {5 * cfg.scale})")
        self.batches = StepBatches(photo_crops(cfg.data, cfg.crop, multiple_of=cfg.scale), cfg.batch_size,
                                   cfg.train.seed)
        self.net = None
        if "feature" in cfg.loss.split("+"):
            self.net = LossNetwork([cfg.content_layer], cfg.network, cfg.weights, quiet=quiet).to(cfg.train.device)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        hr = self.batches(step)
        return {"input": downsample(hr, self.cfg.scale, self.cfg.sigma), "target": hr}

    def generator_loss(self, batch: dict, output: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, hr = self.cfg, batch["target"]
        losses = {}
        if self.net is not None:
            with torch.no_grad():
                target = self.net(hr)[cfg.content_layer]
            losses = (cfg.content_weight * O.content(cfg.content_layer, target)).parts(self.net(output), output)
        if "pixel" in cfg.loss.split("+"):
            # the pixel term beside the feature term anchors what relu2_2 cannot see: at x8 the feature loss
            # alone rewards a faint grid, which MSE against HR forbids without blurring the edges as TV does
            losses["pixel"] = cfg.pixel_weight * F.mse_loss(output.float(), hr)
        if cfg.tv_weight:
            losses.update((cfg.tv_weight * O.tv()).parts({}, output))
        return losses

    def samples(self, batch: dict, output: torch.Tensor) -> torch.Tensor:
        """bicubic | output | HR for the first two crops."""
        size = output.shape[-2:]
        bicubic = F.interpolate(batch["input"], size=size, mode="bicubic", align_corners=False)
        rows = [torch.cat([bicubic[i], output[i], batch["target"][i]], -1) for i in range(min(2, output.shape[0]))]
        return torch.cat(rows, -2)[None].clamp(0, 1)


    def model_config(self) -> dict:
        return self.generator.config()


def train_sr(cfg: SRConfig, output: str | os.PathLike, run_dir: str | os.PathLike | None = None,
             resume: bool = False, quiet: bool = False) -> Path:
    """Train (`registry.train_model`): the model is written at every checkpoint and at the end (nothing is
    written if the data or config is bad); the file's `training.steps` says the step it reached."""
    registry.destination(output, run_dir)  # a bad output fails before the data and loss network are read
    return registry.train_model(SRTask(cfg, quiet=quiet), cfg, output, run_dir, resume)


def save_srnet(net: SRNet, path: str | os.PathLike, config: dict | None = None) -> Path:
    return registry.save(net, path, {**(config or {}), **net.config()})


# ----------------------------------------------------------------------------- models
def bundled_models() -> dict[str, registry.Bundled]:
    """The bundled SR models by name (x4-feature, x4-pixel, x8-pixel)."""
    return registry.bundled(KIND)


def load_srnet(spec: str | os.PathLike | SRNet, scale: int | None = None, device: str = "cpu") -> SRNet:
    """An SRNet (eval mode) from a bundled name or a model file; `scale` refuses a model of another scale."""
    net = registry.load(spec, KIND, device).eval()
    if scale is not None and net.upscale != scale:
        raise LossnetError(f"the model is for x{net.upscale} super-resolution, not x{scale}: "
                           f"use --scale {net.upscale} or a x{scale} model")
    return net


def _build(sd: dict, config: dict, path: Path) -> SRNet:
    config = {k: v for k, v in config.items() if k in ("arch", "scale", "channels", "blocks", "norm", "residual")}
    net = build_matching(lambda: SRNet.from_config(config), sd,
                         f"the x{config.get('scale', '?')} SR network described in {path}")
    net.check_state_dict(sd)
    return net.eval()


# ----------------------------------------------------------------------------- applying
def bicubic(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Plain bicubic upsampling by `scale` (the baseline), clamped to [0, 1]."""
    h, w = image.shape[-2:]
    return F.interpolate(image, size=(h * scale, w * scale), mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def upscale(net: SRNet | None, image: torch.Tensor, scale: int | None = None, tile: int | None = None,
            overlap: int = 16, precision="auto", max_memory: float | None = None) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> exactly (N, 3, scale*H, scale*W); `net=None` is bicubic. The input runs whole
    when it fits in memory, else in tiles (`tile`, `max_memory`: as in `lossnet.fast.apply`). `precision` as in
    `lossnet.precision` (auto: bf16 where the hardware is fast at it)."""
    h, w = image.shape[-2:]
    factor = net.upscale if net is not None else scale or 4
    out_pixels = h * w * factor ** 2 * image.shape[0]
    if out_pixels > MAX_OUTPUT_PIXELS:
        raise LossnetError(f"x{factor} of a {w}x{h} input makes {out_pixels / 1e6:.0f} MP, over the "
                           f"{MAX_OUTPUT_PIXELS / 1e6:.0f} MP output limit: upscale a crop, or a smaller input")
    if net is None:
        return picture(bicubic(image, factor))
    if min(h, w) < 5:
        raise LossnetError(f"input is {w}x{h}: the SR network needs at least 5 pixels per side")
    device = next(net.parameters()).device
    run = announce(resolve_precision(precision, device))

    def forward(x):
        with run.autocast():
            return net(x.to(device)).float().cpu()
    side = auto_tile(net, forward, image, tile, max_memory, key=run.name)
    return picture(tiled(forward, image, side, overlap, net.upscale).clamp(0, 1))


# ----------------------------------------------------------------------------- evaluation
def find_sets(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """{set name: HR files}: `folder` itself if it holds images, else each subfolder that does."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LossnetError(f"no such folder: {folder}")

    def images(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())

    if images(folder):
        return {folder.name: images(folder)}
    sets = {d.name: images(d) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    sets = {k: v for k, v in sets.items() if v}
    if not sets:
        raise LossnetError(f"no images in {folder} or its subfolders")
    return sets


def evaluate(models: dict[str, SRNet | None], hr_files: Sequence[Path], scale: int, sigma: float = 1.0,
             save_dir: Path | None = None, precision="auto") -> dict[str, dict[str, float]]:
    """Mean {"psnr", "ssim", "gradient_energy"} per method over the HR files: modcrop, `downsample`, upscale,
    score on Y with `scale` border pixels cropped. `models` maps a name to a net (None: bicubic)."""
    from .metrics import sr_scores

    sums = {name: {} for name in models}
    for path in hr_files:
        hr = modcrop(load_image(path), scale)
        lr = downsample(hr, scale, sigma)
        for name, net in models.items():
            sr = upscale(net, lr, scale, precision=precision)
            for k, v in sr_scores(sr, hr, scale).items():
                sums[name][k] = sums[name].get(k, 0.0) + v / len(hr_files)
            if save_dir is not None:
                from .io import save_image
                save_image(sr, Path(save_dir) / f"{path.stem}_{name}.png")
    return sums


KIND = Kind("sr", stored="srnet", title="super-resolution", networks=(SRNet,), config=SRConfig, task=SRTask,
            description="super-resolution x2-x16, perceptual or per-pixel loss (Johnson et al.): lossnet superres "
                        "INPUT --model NAME -o OUT",
            build=_build, apply=upscale, graph=lambda net: Graph(net.cpu().eval(), scale=net.upscale))
