"""Real-time style transfer (Johnson, Alahi & Fei-Fei, https://arxiv.org/abs/1603.08155): train a
`TransformerNet` once per style (or, with conditional instance norm, once for many styles: Dumoulin et al.,
https://arxiv.org/abs/1610.07629) on the generator loop, then stylise any image in one forward pass.

    train_style(FastStyleConfig(styles=["wave.jpg"], data=["photos/"]), "wave.safetensors")
    net = load_transformer("wave")                  # a bundled name or a path
    image = apply(net, load_image("photo.jpg"))     # large images go through in overlapping tiles

The training loss is Gatys et al.'s objective, `lossnet.style.objective`, with the paper's layers: content at
relu2_2, Gram style at relu1_2, relu2_2, relu3_3, relu4_3, and TV; `objective_value` computes it for any image,
so a network's output can be compared with Gatys runs on the very same objective. The kind is `KIND` (style)
in `lossnet.registry`, which loads, saves, trains and applies it like every other kind.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from . import objectives as O, registry
from .color import keep_colors
from .data import StepBatches, photo_crops
from .errors import ConfigError, LossnetError
from .export import Graph, StyleBody
from .features import LossNetwork, build_matching
from .io import MIN_SIDE, load_image, picture, resize_longest
from .nets.transformer import ARCHS, DOWNSAMPLES, UPSAMPLES, BatchNorm, CondInstanceNorm, TransformerNet
from .precision import announce, resolve as resolve_precision
from .registry import Kind, init_from_option, loss_network_option, loss_weights_option, option
from .style import blended_grams, check_weights, objective
from .train import Task, TrainConfig, seeded

MAX_STYLE_SIZE = 1024  # --style-size 0: the painting as it is, up to this longest side
JOHNSON_CONTENT_LAYERS = ("relu2_2",)  # the paper's (VGG16)
JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@dataclass
class FastStyleConfig:
    styles: Sequence[str] = option(help="style image (repeat for a multi-style network)", flag="--style",
                                   metavar="IMAGE", repeat=True, required=True, path=True)
    data: Sequence[str] = option(help="folder of training photos (repeatable, recursive)", metavar="DIR",
                                 repeat=True, required=True, path=True)
    arch: str = option("full", "full (the paper's network) or lite (real time on a CPU)", choices=tuple(ARCHS))
    norm: str = option("instance", "instance norm (the paper's) or batch norm", choices=("instance", "batch"))
    global_skip: bool = option(True, "the network outputs the photo plus a learned change (--no-global-skip: it "
                                     "renders the whole image, as the paper's and pytorch/examples' networks do; "
                                     "a network trained from scratch)")
    upsample: str = option("nearest", "how the network doubles its resolution before each of its two upsampling "
                                      "convolutions (nearest: the paper's; with --init-from, the model's weights "
                                      "under this resampling)", choices=UPSAMPLES)
    downsample: str = option("strided", "how the network halves its resolution in its two stride-2 convolutions "
                                        "(strided: the paper's; blur: anti-aliased, each convolves at full "
                                        "resolution and blurs before subsampling; from scratch only)",
                             choices=DOWNSAMPLES)
    residual_blocks: int | None = option(None, "residual blocks (default: the arch's, full 5, lite 3); with "
                                               "--init-from, up to twice the model's: its last blocks are each split "
                                               "into two half steps, so training starts near what it paints", minimum=1)
    content_layers: Sequence[str] = option(JOHNSON_CONTENT_LAYERS, "content layers, comma-separated")
    style_layers: Sequence[str] = option(JOHNSON_STYLE_LAYERS, "style (Gram) layers, comma-separated")
    style_layer_weights: Sequence[float] | None = option(None, "one weight per style layer (default equal)")
    content_weight: float = option(1.0, "weight of the content term", minimum=0)
    style_weight: float = option(10.0, "weight of the style term", minimum=0)
    tv_weight: float = option(1.0, "weight of the total-variation term", minimum=0)
    color_weight: float = option(0.0, "weight of the colour term: the sliced Wasserstein distance between the "
                                       "output's pixel colours and the painting's", minimum=0)
    lattice_weight: float = option(0.0, "weight of the lattice term: the output's power at the 4-pixel period of the "
                                        "network's two x2 stages", minimum=0)
    style_size: int = option(256, "style image's longest side for its Grams; strokes grow with it (0: the "
                                  f"painting's own size, at most {MAX_STYLE_SIZE})", minimum=0)
    crop: int = option(256, "training crop side", minimum=1)
    loss_shift: int = option(0, "the loss network sees each step's output and photo cropped PX pixels smaller at a "
                                "random offset of 0..PX-1 each way, so a pattern on the network's 4-pixel grid does "
                                "not fall on VGG16's pooling grid the same way every step (0: always aligned, as "
                                "the paper)", minimum=0, metavar="PX")
    batch_size: int = option(4, "the global batch: under torchrun each process takes batch-size / processes of it",
                             minimum=1)
    teacher: str | None = option(None, "distil: also match this trained model's output (e.g. a full network "
                                       "for --arch lite)", metavar="MODEL")
    distill_weight: float = option(0.0, "weight of the distillation term (needs --teacher)", minimum=0)
    network: str = loss_network_option()
    weights: str | None = loss_weights_option()
    init_from: str | None = init_from_option()
    train_only: str = option("all", "all the network's parameters, or norms: only its (per-style) norm parameters, "
                                    "the convolutions kept as --init-from gave them (Dumoulin et al. learn a new "
                                    "style this way)", choices=("all", "norms"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(desc="train-style"))


# ----------------------------------------------------------------------------- the objective
def style_targets(net: LossNetwork, styles: Sequence[torch.Tensor], layers: Sequence[str]) -> list[dict]:
    """One {layer: Gram} per style image (the Grams each style's outputs should have)."""
    return [blended_grams(net, [s], [1.0], layers) for s in styles]


def objective_value(cfg: FastStyleConfig, net: LossNetwork, content: torch.Tensor, image: torch.Tensor,
                    grams: dict) -> dict[str, float]:
    """Every term, and the total, of the training objective for `image` stylising `content`."""
    with torch.no_grad():
        parts = objective(cfg, net(content), grams).parts(net(image), image)
    out = {k: float(v) for k, v in parts.items()}
    out["total"] = sum(out.values())
    return out


def loss_network(cfg: FastStyleConfig, quiet: bool = False) -> LossNetwork:
    return LossNetwork(list(dict.fromkeys([*cfg.content_layers, *cfg.style_layers])), cfg.network, cfg.weights,
                       quiet=quiet)


def load_styles(cfg: FastStyleConfig) -> list[torch.Tensor]:
    if not cfg.styles:
        raise ConfigError("styles", "at least one style image is needed")
    if cfg.style_size:
        return [load_image(s, cfg.style_size) for s in cfg.styles]
    styles = [load_image(s) for s in cfg.styles]
    return [resize_longest(s, MAX_STYLE_SIZE) if max(s.shape[-2:]) > MAX_STYLE_SIZE else s for s in styles]


# ----------------------------------------------------------------------------- training
class FastStyleTask(Task):
    """The feed-forward style method as a `train.Task`: random photo crops in, the Gatys objective out.

    With several styles, each step trains one of them (chosen by the step, so resume is exact) and tells the
    network which one through `batch["condition"]` (one-hot over the styles)."""

    def __init__(self, cfg: FastStyleConfig, generator: TransformerNet | None = None, quiet: bool = False):
        if cfg.arch not in ARCHS:
            raise ConfigError("arch", f"unknown {cfg.arch!r}: choose {', '.join(ARCHS)}")
        if cfg.distill_weight > 0 and not cfg.teacher:
            raise ConfigError("distill_weight", "needs a teacher model to distil from")
        if cfg.crop < MIN_SIDE:  # two stride-2 stages under 3x3 reflection padding, and VGG's pooling to relu4
            raise ConfigError("crop", f"{cfg.crop} px crops are too small for the style network: at least {MIN_SIDE}")
        if cfg.crop - cfg.loss_shift < MIN_SIDE:
            raise ConfigError("loss_shift", f"{cfg.crop} px crops less {cfg.loss_shift} px leave the loss network "
                                            f"under {MIN_SIDE} px: a smaller shift or larger crops")
        self.cfg = cfg
        # the whole photo can be seen, at several scales, mirrored or not
        crops = photo_crops(cfg.data, cfg.crop, zoom=True, flip=True)
        self.batches = StepBatches(crops, cfg.batch_size, cfg.train.seed)
        if generator is None and cfg.init_from:
            generator = load_transformer(cfg.init_from).train()
            if generator.n_styles == 1 and len(cfg.styles) > 1:  # every style starts as the trained one
                generator = generator.with_styles(len(cfg.styles))
            if generator.global_skip != cfg.global_skip:
                raise ConfigError("global_skip", f"{cfg.init_from} was trained {'with' if generator.global_skip else 'without'}"
                                                 " the global skip: give the same setting, or train from scratch")
            trained = generator.config.get("downsample", "strided")
            if trained != cfg.downsample:
                raise ConfigError("downsample", f"{cfg.init_from} downsamples {trained}: give the same setting, or "
                                                "train from scratch")
            if generator.config.get("upsample", "nearest") != cfg.upsample:
                generator = generator.with_upsample(cfg.upsample)
            if generator.n_styles != len(cfg.styles):
                raise ConfigError("init_from", f"{cfg.init_from} has {generator.n_styles} styles, not {len(cfg.styles)}"
                                               " (a one-style model can start a network of any number of styles)")
            if cfg.residual_blocks is not None:
                try:
                    generator = generator.with_residual_blocks(cfg.residual_blocks)
                except ValueError as error:  # the network's own bounds, said once there
                    raise ConfigError("residual_blocks", f"{cfg.init_from}: {error}") from None
        elif generator is None:
            if cfg.train_only == "norms":
                raise ConfigError("train_only", "norms needs trained convolutions: give --init-from MODEL")
            with seeded(cfg.train.seed):
                generator = TransformerNet(len(cfg.styles), cfg.norm, cfg.arch, n_residual=cfg.residual_blocks,
                                           global_skip=cfg.global_skip, upsample=cfg.upsample,
                                           downsample=cfg.downsample)
        if cfg.train_only == "norms":  # Adam skips the frozen parameters (they get no gradient)
            generator.requires_grad_(False)
            for module in generator.modules():
                if isinstance(module, (CondInstanceNorm, BatchNorm)):
                    module.requires_grad_(True)
        self.generator = generator
        # Pure distillation (all objective weights 0, a teacher) needs no loss network: ~10x cheaper steps.
        self.perceptual = max(cfg.content_weight, cfg.style_weight, cfg.tv_weight, cfg.color_weight,
                              cfg.lattice_weight) > 0
        if self.perceptual:
            self.net = loss_network(cfg, quiet).to(cfg.train.device)
            styles = [s.to(cfg.train.device) for s in load_styles(cfg)]
            self.grams = style_targets(self.net, styles, cfg.style_layers)
            # the terms on the output's pixels alone, per style (zero-weight terms are skipped)
            self.pixel_terms = [cfg.color_weight * O.colors(s) + cfg.lattice_weight * O.lattice() for s in styles]
        elif not (cfg.teacher and cfg.distill_weight > 0):
            raise LossnetError("all loss weights are 0: nothing to train (give weights, or a teacher and a "
                               "distillation weight)")
        self.teacher = None
        if cfg.teacher and cfg.distill_weight > 0:
            self.teacher = load_transformer(cfg.teacher).to(cfg.train.device)
            if self.teacher.n_styles != len(cfg.styles):
                raise ConfigError("teacher", f"{cfg.teacher} has {self.teacher.n_styles} styles, not {len(cfg.styles)}")

    def style_of(self, step: int) -> int:
        return step % len(self.cfg.styles)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        batch = {"input": self.batches(step)}
        if len(self.cfg.styles) > 1:
            batch["condition"] = F.one_hot(torch.tensor(self.style_of(step)), len(self.cfg.styles)).float()
        if self.cfg.loss_shift:  # from (seed, step) alone: resume replays the same offsets
            draw = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + step)
            batch["loss_offset"] = torch.randint(0, self.cfg.loss_shift, (2,), generator=draw)
        return batch

    def forward(self, batch: dict) -> torch.Tensor:
        return self.generator(batch["input"], batch.get("condition"))

    def generator_loss(self, batch: dict, output: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = {}
        if self.perceptual:
            photo, seen = batch["input"], output
            if "loss_offset" in batch:
                (dy, dx), px = batch["loss_offset"].tolist(), self.cfg.loss_shift
                h, w = output.shape[-2] - px, output.shape[-1] - px
                photo, seen = photo[..., dy:dy + h, dx:dx + w], output[..., dy:dy + h, dx:dx + w]
            with torch.no_grad():
                target = self.net(photo, self.cfg.content_layers)  # only as deep as the content taps
            k = int(batch["condition"].argmax()) if "condition" in batch else 0
            losses = (objective(self.cfg, target, self.grams[k]) + self.pixel_terms[k]).parts(self.net(seen), seen)
        if self.teacher is not None:
            with torch.no_grad():
                want = self.teacher(batch["input"], batch.get("condition"))
            losses["distill"] = self.cfg.distill_weight * (output.float() - want.float()).pow(2).mean()
        return losses

    def samples(self, batch: dict, output: torch.Tensor) -> torch.Tensor:
        n = min(2, output.shape[0])
        return torch.cat([torch.cat([batch["input"][i], output[i]], -1) for i in range(n)], -2)[None]

    def model_config(self) -> dict:
        return {**self.generator.config, "styles": [Path(s).name for s in self.cfg.styles]}


def train_style(cfg: FastStyleConfig, output: str | os.PathLike, run_dir: str | os.PathLike | None = None,
                resume: bool = False, half: bool = True) -> Path:
    """Train (`registry.train_model`): the model is written at every checkpoint and at the end (fp16 tensors by
    default: half the size, cast back to fp32 on load)."""
    registry.destination(output, run_dir)  # a bad output fails before the loss network is loaded
    return registry.train_model(FastStyleTask(cfg), cfg, output, run_dir, resume, half)


def save_transformer(net: TransformerNet, path: str | os.PathLike, config: dict, half: bool = True) -> Path:
    return registry.save(net, path, {**net.config, **config}, half)


def save_styles(model: str | os.PathLike, indices: Sequence[int], path: str | os.PathLike) -> Path:
    """Some of a multi-style model's styles as a model of their own (`TransformerNet.select_styles`): it paints
    them exactly as the model does. Its metadata keeps the model's training record and says where it came from."""
    from .weights import read_model
    source = model_path(model)
    state_dict, config = read_model(source, KIND)  # one read: the network and its training record
    part = _build(state_dict, config, source).select_styles(indices)
    training = {**config.get("training", {}), "styles_of": f"{Path(str(model)).stem} {[int(k) for k in indices]}"}
    return save_transformer(part, path, {"styles": part.styles, "training": training})


# ----------------------------------------------------------------------------- models
def bundled_models() -> dict[str, registry.Bundled]:
    """The bundled style models by name (`lossnet models`)."""
    return registry.bundled(KIND)


def model_path(spec: str | os.PathLike) -> Path:
    """A bundled style model's name, or a path."""
    return registry.model_path(spec, KIND)


def load_transformer(spec: str | os.PathLike | TransformerNet, device: str = "cpu") -> TransformerNet:
    """A TransformerNet from a bundled name, a .safetensors model file, or a pytorch/examples fast-neural-style
    state dict (.pth/.pt/.model: read with weights_only=True, never unpickled) (fp32, eval mode)."""
    return registry.load(spec, KIND, device).eval()


def _build(sd: dict, config: dict, path: Path) -> TransformerNet:
    keys = ("n_styles", "norm", "arch", "channels", "n_residual", "global_skip", "upsample", "downsample")
    net = build_matching(lambda: TransformerNet(**{k: (tuple(config[k]) if k == "channels" else config[k])
                                                   for k in keys if k in config}),
                         sd, f"the transformer described in {path}")
    net.styles = list(config.get("styles", []))
    return net.eval()


# pytorch/examples' fast_neural_style saves `torch.save(model.state_dict(), "*.model")`; its four pretrained
# styles ship as .pth. Same network as ours (Johnson et al. with instance norm, reflection padding and
# resize-convolutions), other names, and no global skip: 0-255 in, 0-255 out.
EXAMPLES_SUFFIXES = {".pth", ".pt", ".model"}
_EXAMPLES_LAYERS = {"conv1": "down.0", "conv2": "down.1", "conv3": "down.2", "deconv1": "up.0", "deconv2": "up.1",
                    "deconv3": "up.2", **{f"res{i + 1}": f"residual.{i}" for i in range(5)}}
_EXAMPLES_NORMS = {"in1": "down.0", "in2": "down.1", "in3": "down.2", "in4": "up.0", "in5": "up.1"}


def examples_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pytorch/examples TransformerNet keys -> ours (`conv1.conv2d.weight` -> `down.0.conv.weight`, `in1.weight`
    -> `down.0.norm.weight` as one style, `res1.in2.bias` -> `residual.0.conv2.norm.bias`); the running statistics
    old torch versions saved with InstanceNorm2d are unused by instance norm and dropped."""
    import re
    out = {}
    for key, value in sd.items():
        if re.fullmatch(r"(.*\.)?in\d\.(running_mean|running_var|num_batches_tracked)", key):
            continue
        parts = key.split(".")
        if parts[0] in _EXAMPLES_NORMS and len(parts) == 2:
            out[f"{_EXAMPLES_NORMS[parts[0]]}.norm.{parts[1]}"] = value[None]
        elif parts[0].startswith("res") and parts[0] in _EXAMPLES_LAYERS and len(parts) == 3 and parts[1] in ("in1", "in2"):
            out[f"{_EXAMPLES_LAYERS[parts[0]]}.conv{parts[1][2]}.norm.{parts[2]}"] = value[None]
        elif parts[0].startswith("res") and parts[0] in _EXAMPLES_LAYERS and len(parts) == 4 and parts[2] == "conv2d":
            out[f"{_EXAMPLES_LAYERS[parts[0]]}.{parts[1]}.conv.{parts[3]}"] = value
        elif parts[0] in _EXAMPLES_LAYERS and len(parts) == 3 and parts[1] == "conv2d":
            out[f"{_EXAMPLES_LAYERS[parts[0]]}.conv.{parts[2]}"] = value
        else:
            raise LossnetError(f"{key!r} is not a key of pytorch/examples' fast-neural-style TransformerNet")
    return out


def load_examples_model(path: Path) -> TransformerNet:
    """A pytorch/examples fast-neural-style model file as a lossnet TransformerNet (outputs equal to theirs)."""
    from .weights import load_state_dict
    sd = examples_keys(load_state_dict(path))
    net = build_matching(lambda: TransformerNet(global_skip=False), sd,
                         f"pytorch/examples' fast-neural-style network (from {path})")
    net.styles = [path.stem]
    return net


def style_weights(net: TransformerNet, index: int | None = None, blend: Sequence[float] | None = None):
    """--style-index / --blend -> the network's style vector (None: its first style)."""
    if index is not None and blend is not None:
        raise LossnetError("give --style-index or --blend, not both")
    if blend is not None:
        w = check_weights("--blend", blend, net.n_styles)
        return torch.tensor(w) / sum(w)
    if index is not None:
        if not 0 <= index < net.n_styles:
            raise LossnetError(f"--style-index {index} out of range: the model has {net.n_styles} style(s), 0..{net.n_styles - 1}")
        return F.one_hot(torch.tensor(index), net.n_styles).float()
    return None


# ----------------------------------------------------------------------------- applying
def _norms(net: TransformerNet) -> list[CondInstanceNorm]:
    return [m for m in net.modules() if isinstance(m, CondInstanceNorm)]


@torch.no_grad()
def _global_stats(net: TransformerNet, image: torch.Tensor, style, stats_pixels: int) -> None:
    """Fix every instance norm's statistics to those of the whole image (downscaled to `stats_pixels`)."""
    from .tiling import shrunk
    small = shrunk(image, stats_pixels)
    norms = _norms(net)
    for m in norms:
        m.record, m.stats = [], None
    try:
        net(small, style)
    finally:
        for m in norms:
            m.stats, m.record = (m.record[0] if m.record else None), None


@torch.no_grad()
def apply(net: TransformerNet, image: torch.Tensor, style=None, tile: int | None = None, overlap: int = 64,
          stats_pixels: int = 2_000_000, original_colors: bool = False, precision="auto",
          max_memory: float | None = None) -> torch.Tensor:
    """Stylise (N, 3, H, W) in [0, 1]. An image runs whole when it fits in memory (`lossnet.tiling.auto_tile`:
    `max_memory` GiB, or half of what is available); a larger one goes through in tiles as large as fit, each
    with `overlap` pixels of context, with instance-norm statistics of the whole image in every tile (no seams,
    bounded memory). `tile`: None decides from memory, 0 never tiles, N tiles of at most N pixels a side.
    `original_colors` keeps the input's colours (its chrominance, with the result's luminance); `precision`:
    a `lossnet.precision` name or Precision (auto: bf16 where the hardware is fast at it)."""
    from .tiling import auto_tile, tiled

    device = next(net.parameters()).device
    h, w = image.shape[-2:]
    if min(h, w) < MIN_SIDE:  # two stride-2 stages and 9x9 reflection padding need some pixels to work on
        raise LossnetError(f"a {w}x{h} image is too small for the style network: it needs at least {MIN_SIDE} "
                           "pixels per side (see --size)")
    run = announce(resolve_precision(precision, device))
    if style is not None:
        style = torch.as_tensor(style).to(device, torch.float32)

    def forward(x, s):
        with run.autocast():
            return net(x.to(device), s).float().cpu()
    def tile_side(x, s) -> int:  # 0: x runs whole
        return auto_tile(net, lambda y: forward(y, s), x, tile, max_memory, key=run.name)
    if tile_side(image, style if style is None or style.dim() == 1 else style[:1]) == 0:
        out = forward(image, style)
    else:  # one image at a time, whole or in tiles (lossnet.tiling) normalised with the whole image's statistics
        pieces, norms = [], _norms(net)
        for i in range(image.shape[0]):
            s_i = style[i:i + 1] if style is not None and style.dim() == 2 else style
            side = tile_side(image[i:i + 1], s_i)
            if side == 0:
                pieces.append(forward(image[i:i + 1], s_i))
                continue
            with run.autocast():
                _global_stats(net, image[i:i + 1].to(device), s_i, stats_pixels)
            try:
                pieces.append(tiled(lambda x: forward(x, s_i), image[i:i + 1], side, overlap, align=4))
            finally:
                for m in norms:
                    m.stats = None
        out = torch.cat(pieces)
    out = out.clamp(0, 1)
    return picture(keep_colors(out, image) if original_colors else out)


def _apply(net: TransformerNet, images: torch.Tensor, **options) -> torch.Tensor:
    return apply(net, images, **options)  # `apply` looked up when called: tests patch it to interrupt a video


KIND = Kind("style", stored="transformer", title="style", networks=(TransformerNet,), config=FastStyleConfig,
            description="feed-forward style transfer (Johnson et al.; several styles: Dumoulin et al.): lossnet "
                        "stylize INPUT --model NAME -o OUT",
            task=FastStyleTask, build=_build, apply=_apply, half=True,
            graph=lambda net: Graph(StyleBody(net.cpu().eval()), multiple=4, n_styles=net.n_styles),
            foreign={suffix: load_examples_model for suffix in EXAMPLES_SUFFIXES})
