"""Perceptual-loss super-resolution (Johnson, Alahi & Fei-Fei, https://arxiv.org/abs/1603.08155, sec. 4.2).

    train_sr(SRConfig(data=["photos/"], scale=4, loss="feature"), "x4.safetensors", "x4_run")
    net = load_srnet("x4-feature")                 # a bundled name or a path
    hr = upscale(net, load_image("small.png"))     # large inputs go through in overlapping tiles

An `SRTask` on the generator loop (`lossnet.train`): HR crops of any folder of photos, degraded as in the
paper (Gaussian blur sigma 1.0, bicubic downsampling by the scale), and one of two losses on the network's
output: `feature` (feature reconstruction at relu2_2, relative MSE, plus TV) or `pixel` (per-pixel MSE,
the paper's baseline, plus TV). The network is `nets.srnet.SRNet` (resize-convs, not transposed convs:
see its docstring). `evaluate` scores bicubic and models on Set5 / Set14 the way SR papers do (Y channel,
`scale` border pixels cropped, see `lossnet.metrics`).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from . import objectives as O
from .data import StepBatches, degrade, modcrop, photo_crops
from .errors import LossnetError, suggest
from .features import LossNetwork, build_matching
from .io import IMAGE_SUFFIXES, load_image, picture
from .nets.srnet import SRNet
from .tiling import tiled
from .precision import announce, resolve as resolve_precision
from .train import TrainConfig, seeded, train_to_file

MODELS_DIR = Path(__file__).parent / "models"
KIND = "srnet"
LOSSES = ("feature", "pixel")
MAX_OUTPUT_PIXELS = 160_000_000  # ~1.9 GB as float RGB: the largest result a 24 GB, 2-core machine should make


@dataclass
class SRConfig:
    data: Sequence[str] = ()
    scale: int = 4
    loss: str = "feature"  # feature (relu2_2) or pixel (MSE)
    crop: int = 288  # HR patch side (the paper's 288); must be a multiple of the scale
    batch_size: int = 4
    sigma: float = 1.0  # Gaussian blur before the bicubic downsampling
    content_layer: str = "relu2_2"
    content_weight: float = 1.0
    pixel_weight: float = 1.0
    tv_weight: float = 0.0  # TV on the output; the paper cross-validates 1e-6..1e-4 (unnormalised losses)
    channels: int = 64
    blocks: int = 4
    norm: str = "instance"
    residual: bool = True
    network: str = "vgg16"
    weights: str | None = None
    init_from: str | None = None  # a trained model to start from (a warm start; the optimiser starts afresh)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, desc="train-sr"))


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
class SRTask:
    """Super-resolution as a `train.Task`: LR crops in, the HR crops are the target; no discriminator."""

    discriminator = None

    def __init__(self, cfg: SRConfig, generator: SRNet | None = None, quiet: bool = False):
        if cfg.loss not in LOSSES:
            raise LossnetError(f"unknown --loss {cfg.loss!r}{suggest(cfg.loss, LOSSES)}: choose feature or pixel")
        self.cfg = cfg
        if generator is None and cfg.init_from:
            generator = load_srnet(cfg.init_from, cfg.scale).train()
        elif generator is None:
            with seeded(cfg.train.seed):
                generator = SRNet(cfg.scale, cfg.channels, cfg.blocks, cfg.norm, cfg.residual)
        self.generator = generator
        if cfg.crop // cfg.scale < 5:
            raise LossnetError(f"--crop {cfg.crop} gives {cfg.crop // cfg.scale}-pixel LR patches at x{cfg.scale}: "
                               f"the network needs at least 5 (crop >= {5 * cfg.scale})")
        self.batches = StepBatches(photo_crops(cfg.data, cfg.crop, multiple_of=cfg.scale), cfg.batch_size,
                                   cfg.train.seed)
        self.net = None
        if cfg.loss == "feature":
            self.net = LossNetwork([cfg.content_layer], cfg.network, cfg.weights, quiet=quiet).to(cfg.train.device)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        hr = self.batches(step)
        return {"input": downsample(hr, self.cfg.scale, self.cfg.sigma), "target": hr}

    def generator_loss(self, batch: dict, output: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, hr = self.cfg, batch["target"]
        if self.net is not None:
            with torch.no_grad():
                target = self.net(hr)[cfg.content_layer]
            losses = (cfg.content_weight * O.content(cfg.content_layer, target)).parts(self.net(output), output)
        else:
            losses = {"pixel": cfg.pixel_weight * F.mse_loss(output.float(), hr)}
        if cfg.tv_weight:
            losses.update((cfg.tv_weight * O.tv()).parts({}, output))
        return losses

    def discriminator_loss(self, batch, output):  # a fixed loss network: nothing to train
        return {}

    def samples(self, batch: dict, output: torch.Tensor) -> torch.Tensor:
        """bicubic | output | HR for the first two crops."""
        size = output.shape[-2:]
        bicubic = F.interpolate(batch["input"], size=size, mode="bicubic", align_corners=False)
        rows = [torch.cat([bicubic[i], output[i], batch["target"][i]], -1) for i in range(min(2, output.shape[0]))]
        return torch.cat(rows, -2)[None].clamp(0, 1)


def model_config(cfg: SRConfig, net: SRNet) -> dict:
    training = {k: v for k, v in asdict(cfg).items() if k not in ("train", "data", "weights")}
    training |= {"iters": cfg.train.iters, "lr": cfg.train.lr, "seed": cfg.train.seed,
                 "data": [Path(d).name for d in cfg.data]}
    return {**net.config(), "training": training}


def check_output(output: Path) -> Path:
    output = Path(output)
    if output.suffix != ".safetensors":
        raise LossnetError(f"{output}: models are written as .safetensors")
    if not (output.parent if str(output.parent) else Path(".")).is_dir():
        raise LossnetError(f"output folder does not exist: {output.parent}")
    return output


def train_sr(cfg: SRConfig, output: str | os.PathLike, run_dir: str | os.PathLike, resume: bool = False,
             quiet: bool = False) -> Path:
    """Train on the generator loop, writing the model at every checkpoint and at the end (nothing is written if
    the data or config is bad); the file's `training.steps` says the step it reached."""
    output = check_output(Path(output))
    task = SRTask(cfg, quiet=quiet)
    cfg.train.meta = model_config(cfg, task.generator)
    net = task.generator  # the network itself (during training task.generator may be its DDP wrapper)

    def write(step: int) -> Path:
        return save_srnet(net, output, {**cfg.train.meta, "training": {**cfg.train.meta["training"], "steps": step}})
    return train_to_file(task, run_dir, cfg.train, resume, write) or output


def save_srnet(net: SRNet, path: str | os.PathLike, config: dict | None = None) -> Path:
    from .weights import save_model
    return save_model(net, path, KIND, {**(config or {}), **net.config()})


# ----------------------------------------------------------------------------- models
def bundled_models() -> dict[str, Path]:
    """name -> file for lossnet/models/sr_<name>.safetensors (e.g. x4-feature, x4-pixel)."""
    return {p.stem[3:].replace("_", "-"): p for p in sorted(MODELS_DIR.glob("sr_*.safetensors"))}


def model_path(spec: str | os.PathLike) -> Path:
    from .weights import find_model
    return find_model(spec, bundled_models(), "SR")


def load_srnet(spec: str | os.PathLike | SRNet, scale: int | None = None, device: str = "cpu") -> SRNet:
    """An SRNet (eval mode) from a bundled name or a model file; `scale` refuses a model of another scale."""
    if isinstance(spec, SRNet):
        net = spec
    else:
        from .weights import read_model
        path = model_path(spec)
        sd, config = read_model(path, KIND)
        config = {k: v for k, v in config.items() if k in ("arch", "scale", "channels", "blocks", "norm", "residual")}
        probe_scale = config.get("scale", "?")
        net = build_matching(lambda: SRNet.from_config(config), sd, f"the x{probe_scale} SR network described in {path}")
        net.check_state_dict(sd)
    if scale is not None and net.upscale != scale:
        raise LossnetError(f"the model is for x{net.upscale} super-resolution, not x{scale}: "
                           f"use --scale {net.upscale} or a x{scale} model")
    return net.to(device).eval()


# ----------------------------------------------------------------------------- applying
def bicubic(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Plain bicubic upsampling by `scale` (the baseline), clamped to [0, 1]."""
    h, w = image.shape[-2:]
    return F.interpolate(image, size=(h * scale, w * scale), mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def upscale(net: SRNet | None, image: torch.Tensor, scale: int | None = None, tile: int = 256,
            overlap: int = 16, precision="auto") -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> exactly (N, 3, scale*H, scale*W); `net=None` is bicubic. `precision` as in
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
    return picture(tiled(forward, image, tile, overlap, net.upscale).clamp(0, 1))


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
    """Mean {"psnr", "ssim"} per method over the HR files: modcrop, `downsample`, upscale,
    score on Y with `scale` border pixels cropped. `models` maps a name to a net (None: bicubic)."""
    from .metrics import sr_scores

    sums = {name: {"psnr": 0.0, "ssim": 0.0} for name in models}
    for path in hr_files:
        hr = modcrop(load_image(path), scale)
        lr = downsample(hr, scale, sigma)
        for name, net in models.items():
            sr = upscale(net, lr, scale, precision=precision)
            for k, v in sr_scores(sr, hr, scale).items():
                sums[name][k] += v / len(hr_files)
            if save_dir is not None:
                from .io import save_image
                save_image(sr, Path(save_dir) / f"{path.stem}_{name}.png")
    return sums
