"""pix2pix (Isola et al., https://arxiv.org/abs/1611.07004): image-to-image translation with a conditional GAN.

    run = train_pix2pix(Pix2PixConfig(data="facades/train", direction="BtoA"), "runs/facades")
    net = load_generator("runs/facades")            # a run folder, a model file or a bundled name
    photo = apply(net, load_image("labels.png"))     # any size: reflect-padded to the U-Net's multiple

The discriminator is a learned loss network, so pix2pix is a `Pix2PixTask` on the generator loop
(`lossnet.train`) with `discriminator` set: the loop steps D on the detached output, then G. The loss is
the paper's: a conditional GAN (D sees input and output concatenated, a PatchGAN) plus lambda * L1 with
lambda 100; `gan_mode` "vanilla" (BCE with logits) or "lsgan" (MSE), or "none" for the L1-only baseline
(no discriminator). The discriminator's loss is halved (real + fake) / 2, Adam 2e-4 with beta1 0.5, and
the learning rate is constant, then decays linearly to 0 (`decay_from`). Images are [-1, 1] inside. The
kind is `KIND` (pix2pix) in `lossnet.registry`.
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import registry
from .data import PairedImages, StepBatches, holdout
from .errors import ConfigError, LossnetError, suggest
from .export import Graph, UnitRange, per_image_norms
from .features import build_matching
from .io import MAX_PIXELS, picture
from .nets.patchgan import define_discriminator
from .nets.unet import GENERATORS, ResnetGenerator, UnetGenerator, define_generator
from .precision import announce, resolve as resolve_precision
from .registry import Kind, option
from .tiling import pad_to_multiple
from .train import Task, TrainConfig

GAN_MODES = ("vanilla", "lsgan", "none")


@dataclass
class Pix2PixConfig:
    data: str = option("", "folder of A|B side-by-side images, or with folders A/ and B/", metavar="DIR",
                       required=True, path=True)
    direction: str = option("AtoB", "which half is the input (facades labels->photo is BtoA)",
                            choices=("AtoB", "BtoA"))
    netG: str = option("unet_256", "generator", choices=tuple(GENERATORS))
    ngf: int = option(64, "generator's base width", minimum=1)
    netD: str = option("basic", "discriminator (basic: the 70x70 PatchGAN)", choices=("basic", "n_layers", "pixel"))
    ndf: int = option(64, "discriminator's base width", minimum=1)
    n_layers_D: int = option(3, "discriminator layers (netD n_layers)", minimum=1)
    norm: str = option("batch", "normalisation", choices=("batch", "instance", "none"))
    dropout: bool = option(True, "dropout in the generator (pix2pix's noise, at training and test time)")
    gan_mode: str = option("vanilla", "the cGAN loss; none: L1 only, no discriminator (the baseline)",
                           choices=GAN_MODES)
    lambda_l1: float = option(100.0, "weight of the L1 term", minimum=0)
    load_size: int | None = option(286, "resize to this square first (0: no resize)", minimum=0)
    crop_size: int | None = option(256, "random crop side (0: no crop)", minimum=0)
    flip: bool = option(True, "random horizontal flips")
    batch_size: int = option(1, "the global batch: under torchrun each process takes batch-size / processes of it",
                             minimum=1)
    holdout: int = option(0, "hold out this many training pairs (facades has no validation split)", minimum=0)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-4, betas=(0.5, 0.999), desc="pix2pix"))


def generator_config(cfg: Pix2PixConfig) -> dict:
    return {"netG": cfg.netG, "ngf": cfg.ngf, "norm": cfg.norm, "dropout": cfg.dropout,
            "direction": cfg.direction}


def build_generator(config: dict, seed: int = 0) -> torch.nn.Module:
    try:
        return define_generator(config["netG"], ngf=int(config["ngf"]), norm=config["norm"],
                                dropout=bool(config["dropout"]), generator=torch.Generator().manual_seed(seed))
    except KeyError as e:
        raise LossnetError(f"pix2pix model config lacks {e}") from None


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """Vanilla GAN: BCE on logits; LSGAN: MSE to 1 (real) or 0 (fake)."""
    logits = logits.float()  # the loss in fp32 under bf16 autocast
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def paired_data(cfg: Pix2PixConfig, evaluation: bool = False):
    if evaluation:
        return PairedImages(cfg.data, cfg.direction, load_size=None, crop_size=None, flip=False)
    return PairedImages(cfg.data, cfg.direction, cfg.load_size or None, cfg.crop_size or None, cfg.flip)


class Pix2PixTask(Task):
    """pix2pix as a `train.Task`: batch {"input", "target"} in [-1, 1]; D (None for L1 only) is the learned loss.
    Without a `decay_from`, the rate decays over the second half of the run (the paper's schedule)."""

    def __init__(self, cfg: Pix2PixConfig):
        if cfg.gan_mode not in GAN_MODES:
            raise ConfigError("gan_mode", f"unknown {cfg.gan_mode!r}{suggest(cfg.gan_mode, GAN_MODES)}: "
                                          f"choose one of {', '.join(GAN_MODES)}")
        if cfg.train.decay_from is None:
            cfg.train.decay_from = cfg.train.iters // 2
        self.cfg = cfg
        data = paired_data(cfg)
        self.held_out = None
        if cfg.holdout:
            data, self.held_out = holdout(data, cfg.holdout, cfg.train.seed)
        self.batches = StepBatches(data, cfg.batch_size, cfg.train.seed)
        seed = cfg.train.seed
        self.generator = build_generator(generator_config(cfg), seed)
        self.discriminator = None
        if cfg.gan_mode != "none":
            self.discriminator = define_discriminator(cfg.netD, input_nc=6, ndf=cfg.ndf, n_layers=cfg.n_layers_D,
                                                      norm=cfg.norm, generator=torch.Generator().manual_seed(seed + 1))
        side = cfg.crop_size or cfg.load_size
        if side:
            self._check_side(side)

    def _check_side(self, side: int) -> None:
        """Refuse, before the run starts, a training size the networks cannot take (one forward pass of each)."""
        flag = "crop_size" if self.cfg.crop_size else "load_size"
        if side * side > MAX_PIXELS:
            raise ConfigError(flag, f"{side} px training images are over the {MAX_PIXELS / 1e6:.0f} MP limit")
        networks = [m for m in (self.generator, self.discriminator) if m is not None]
        try:
            with torch.no_grad():
                for m in networks:
                    m.eval()
                x = torch.zeros(1, 3, side, side)
                y = self.generator(x)
                if self.discriminator is not None:
                    self.discriminator(torch.cat([x, y], 1))
        except LossnetError as e:
            raise ConfigError(flag, f"{side} px: {e}") from None
        except RuntimeError:
            raise ConfigError(flag, f"{side} px training images are too small for {self.cfg.netG} and the "
                                    f"{self.cfg.netD} discriminator") from None
        finally:
            for m in networks:
                m.train()

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        a, b = self.batches(step)
        return {"input": a * 2 - 1, "target": b * 2 - 1}

    def generator_loss(self, batch: dict, output: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = {}
        if self.discriminator is not None:
            logits = self.discriminator(torch.cat([batch["input"], output], 1))
            losses["gan"] = gan_loss(logits, True, self.cfg.gan_mode)
        losses["l1"] = self.cfg.lambda_l1 * F.l1_loss(output, batch["target"])
        return losses

    def discriminator_loss(self, batch: dict, output: torch.Tensor) -> dict[str, torch.Tensor]:
        fake = self.discriminator(torch.cat([batch["input"], output], 1))
        real = self.discriminator(torch.cat([batch["input"], batch["target"]], 1))
        return {"fake": 0.5 * gan_loss(fake, False, self.cfg.gan_mode),
                "real": 0.5 * gan_loss(real, True, self.cfg.gan_mode)}

    def samples(self, batch: dict, output: torch.Tensor) -> torch.Tensor:
        """input | output | target rows (up to 4), in [0, 1]."""
        rows = [torch.cat([batch["input"][i], output[i], batch["target"][i]], -1) for i in range(min(4, output.shape[0]))]
        return ((torch.cat(rows, -2)[None] + 1) / 2).clamp(0, 1)

    def model_config(self) -> dict:
        held_out = ({"held_out": [self.held_out.dataset.pairs[i][0].name for i in self.held_out.indices]}
                    if self.held_out is not None else {})
        return {**generator_config(self.cfg), **held_out}


def train_pix2pix(cfg: Pix2PixConfig, run_dir: str | os.PathLike, resume: bool = False, half: bool = False) -> Path:
    """Train on the generator loop in run_dir (log, samples, checkpoint), writing run_dir/model.safetensors at
    every checkpoint and at the end (`registry.train_model`)."""
    registry.destination(run_dir)  # a bad run folder fails before the data is read
    return registry.train_model(Pix2PixTask(cfg), cfg, run_dir, None, resume, half)


def save_generator(net: torch.nn.Module, path: str | os.PathLike, config: dict, half: bool = False) -> Path:
    """The generator alone (fp16 tensors with `half`: cast back to fp32 on load)."""
    return registry.save(net, path, config, half)


# ----------------------------------------------------------------------------- models
def load_generator(spec: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """A trained generator (run folder, model file or bundled name), in train mode as the reference tests:
    batch norm uses each image's own statistics and dropout (pix2pix's noise) stays on. `net.config` is set."""
    return registry.load(spec, KIND, device)


def _build(sd: dict, config: dict, path: Path) -> torch.nn.Module:
    net = build_matching(lambda: build_generator(config), sd,
                         f"the {config.get('netG')} generator (ngf {config.get('ngf')}) described in {path}")
    net.config = config
    return net.train()


def _multiple(net: torch.nn.Module) -> int:
    return 2 ** getattr(net, "num_downs", 2)


@torch.no_grad()
def apply(net: torch.nn.Module, image: torch.Tensor, seed: int | None = 0, precision="auto") -> torch.Tensor:
    """(N, 3, H, W) in [0, 1], any size -> same size in [0, 1]: padded (reflect, or replicate where the image
    is smaller than the pad) up to the U-Net's multiple, translated, cropped back. `seed` fixes the dropout;
    `precision` as in `lossnet.precision`."""
    if seed is not None:
        torch.manual_seed(seed)
    x, crop = pad_to_multiple(image, _multiple(net), centered=True)
    device = next(net.parameters()).device
    with announce(resolve_precision(precision, device)).autocast():
        y = net((x * 2 - 1).to(device)).float().cpu()
    return picture(((crop(y) + 1) / 2).clamp(0, 1))


# ----------------------------------------------------------------------------- test page
def l1_psnr(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean absolute error and PSNR (dB), both on RGB in [0, 1]."""
    from .metrics import psnr
    return float((output - target).abs().mean()), psnr(output, target)


def test(net: torch.nn.Module, data: str | os.PathLike, out_dir: str | os.PathLike, direction: str | None = None,
         limit: int | None = None, names: list[str] | None = None, precision="auto") -> dict:
    """Translate every pair in `data`, write out_dir/images/*, out_dir/metrics.csv and out_dir/index.html
    (rows input | output | target with per-image L1 / PSNR; means for the model and for returning the input)."""
    from .io import save_image

    direction = direction or net.config.get("direction", "AtoB")
    dataset = PairedImages(data, direction, load_size=None, crop_size=None, flip=False)
    indices = range(len(dataset))
    if names is not None:
        keep = set(names)
        indices = [i for i in indices if dataset.pairs[i][0].name in keep]
    if limit:
        indices = list(indices)[:limit]
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in indices:
        item = dataset.sample(i)
        if item is None:
            continue
        a, b = item[0][None], item[1][None]
        y = apply(net, a, precision=precision)
        name = Path(dataset.pairs[i][0]).stem
        for tag, im in (("input", a), ("output", y), ("target", b)):
            save_image(im, out_dir / "images" / f"{name}_{tag}.png")
        l1, p = l1_psnr(y, b)
        l1_in, p_in = l1_psnr(a, b)
        rows.append({"name": name, "l1": l1, "psnr": p, "input_l1": l1_in, "input_psnr": p_in})
    if not rows:
        raise LossnetError(f"no readable pairs in {data}")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("l1", "psnr", "input_l1", "input_psnr")}
    with open(out_dir / "metrics.csv", "w") as f:
        f.write("name,l1,psnr,input_l1,input_psnr\n")
        for r in rows:
            f.write(f"{r['name']},{r['l1']:.5f},{r['psnr']:.3f},{r['input_l1']:.5f},{r['input_psnr']:.3f}\n")
        f.write(f"mean,{mean['l1']:.5f},{mean['psnr']:.3f},{mean['input_l1']:.5f},{mean['input_psnr']:.3f}\n")
    cfg = html.escape(json.dumps({k: v for k, v in net.config.items() if k != "training"}))
    lines = ["<!doctype html><meta charset=utf-8><title>pix2pix test</title>",
             "<style>body{font-family:sans-serif}td{text-align:center;padding:2px}img{width:256px}</style>",
             f"<h1>pix2pix test: {html.escape(str(data))} ({direction})</h1>",
             f"<p>model {cfg}</p>",
             f"<p>{len(rows)} images. Mean L1 {mean['l1']:.4f}, PSNR {mean['psnr']:.2f} dB "
             f"(returning the input: L1 {mean['input_l1']:.4f}, PSNR {mean['input_psnr']:.2f} dB). "
             "L1 and PSNR on RGB in [0, 1].</p>",
             "<table><tr><th>name</th><th>input</th><th>output</th><th>target</th><th>L1</th><th>PSNR</th></tr>"]
    for r in rows:
        n = html.escape(r["name"])
        cells = "".join(f"<td><img src='images/{n}_{t}.png'></td>" for t in ("input", "output", "target"))
        lines.append(f"<tr><td>{n}</td>{cells}<td>{r['l1']:.4f}</td><td>{r['psnr']:.2f}</td></tr>")
    lines.append("</table>")
    from .io import atomic_write
    atomic_write(out_dir / "index.html", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    return {"count": len(rows), **mean, "rows": rows}


def _graph(net: torch.nn.Module) -> Graph:
    """The generator as `pix2pix test` runs it, without its dropout noise (lossnet.export)."""
    return Graph(UnitRange(per_image_norms(net.cpu())), multiple=_multiple(net), centered=True)


# One image at a time (batch=False): its batch norm normalises by what it is given, as the reference tests.
KIND = Kind("pix2pix", stored="pix2pix_generator", title="pix2pix", networks=(UnetGenerator, ResnetGenerator),
            description="image-to-image translation with a conditional GAN (Isola et al.): lossnet pix2pix apply "
                        "INPUT --model NAME -o OUT",
            config=Pix2PixConfig, task=Pix2PixTask, build=_build, apply=apply, graph=_graph, batch=False)
