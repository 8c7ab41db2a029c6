"""Universal style transfer: any painting in one pass, on decoders trained only to invert the encoder.

    decoders = load_decoders(["decoders/"])                   # {level: Decoder}; None: the bundled ones
    stylist = UniversalStyle([load_image("painting.jpg", 512)], UniversalConfig(method="wct"), decoders)
    image = stylist(load_image("photo.jpg"))                  # the painting's statistics were computed once
    registry.apply_to_path(stylist, "clip.mp4", "clip_wct.mp4")   # a folder or a video, with the same statistics

WCT (Li et al. 2017, https://arxiv.org/abs/1705.08086): coarse to fine (relu4_1, relu3_1, relu2_1, relu1_1),
the image is encoded by the frozen VGG16, its features whitened (their covariance made the identity), coloured
with the painting's covariance and mean, and decoded; the result is the next level's input. AdaIN (Huang &
Belongie 2017, https://arxiv.org/abs/1703.06868) matches each channel's mean and standard deviation only, at
one level (the deepest): the fast path. Neither needs a painting in training: each level's decoder
(`nets.decoder.Decoder`, the registry's kind `decoder`, `lossnet train-decoder`) learns to give back photos,
paintings and procedural textures from their features, with a pixel and a feature loss.

Both transforms are affine maps of the features, f -> A f + b (A full for WCT, diagonal for AdaIN), computed
in fp32 from the photo's and the painting's statistics (WCT: eigendecompositions of C x C covariances). The
user's controls are sums of such maps: the strength alpha (alpha A + (1 - alpha) I; 0 gives the photo through
the decoders), several paintings blended by weights (the weighted sum of their maps), and a spatial mask (two
paintings, each map made from its own region's statistics, the two weighted by the mask at the features'
resolution). A large image runs in tiles (`lossnet.tiling`): each level's map is made once from the whole
image (downscaled when large), so every tile is encoder -> the same map -> decoder.

The encoder is the offline VGG16 of HED (`weights.hed_weights`) unless a decoder says otherwise: a decoder file
records the weights it inverts (`encoder`, `encoder_check`), and a decoder is refused with other weights.
relu5_1 is left out: on the 8 content photos and 4 paintings at 512 px only 12 % of its activations are
positive and 42 % of its channels never fire (relu4_1: 44 % and 1 %).

Training, one level at a time (resumable with --resume, the same command; deterministic in --seed), on photos,
paintings that are not evaluated on, and procedural textures:

    lossnet train-decoder --level relu4_1 --data BSDS500/train --data BSDS500/test --paintings PAINTINGS/ \
        --crop 128 --batch-size 8 --iters 4000 --decay-from 2000 -o decoder-relu4_1.safetensors
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from . import registry
from .color import keep_colors
from .data import StepBatches, photo_crops
from .errors import ConfigError, LossnetError
from .features import LossNetwork, build_matching
from .io import MIN_SIDE, picture, resize
from .nets.decoder import Decoder, pools_before
from .objectives import relative_mse
from .precision import announce, resolve as resolve_precision
from .registry import Kind, init_from_option, option
from .tiling import auto_tile, pad_to_multiple, shrunk, tiled
from .train import Task, TrainConfig, seeded

LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # relu5_1 is mostly silent in HED's weights
METHODS = ("wct", "adain")
STYLE_SIDE = 512  # a painting's longest side for its statistics, unless the caller resizes it
# The painting's longest side against the output's, by method. AdaIN keeps only each channel's mean and standard
# deviation at relu4_1: read at 3/4 of the size they leave the painting distance where it was (0.497 against
# 0.501, bench_universal.py quality) for a little over half the painting's encoder pass.
STYLE_SCALE = {"wct": 1.0, "adain": 0.75}
MAX_STYLE_SIDE = 4096
# Eigenvalues (WCT) or variances (AdaIN) below this share of the largest are left out: the directions a dead
# channel, a flat region or fewer pixels than channels leave without variance would otherwise be divided by ~0.
FLOOR = 1e-5


# ----------------------------------------------------------------------------- the encoder
@functools.lru_cache(maxsize=4)
def encoder(weights: str | None = None, device: str = "cpu") -> LossNetwork:
    """The frozen VGG16 the decoders invert, with a tap at every level: HED's offline weights (None), or a
    torchvision-layout file, on `device`. One per weights, device and process: the decoder kind's apply calls
    this per batch, and a stylist on one device must not move another's encoder (`Module.to` moves in place)."""
    from .weights import OFFLINE, hed_weights, missing_offline, vgg_weights
    if weights is None:
        found = hed_weights()
        if found is None:
            raise LossnetError(missing_offline(OFFLINE["hed"]))
    else:
        found = vgg_weights("vgg16", weights, quiet=True)
    return LossNetwork(LEVELS, "vgg16", found, quiet=True).to(device)


def encoder_name(weights: str | os.PathLike | None) -> str:
    return "hed" if weights is None else Path(weights).name


def fingerprint(net: LossNetwork) -> str:
    """A number that tells one set of encoder weights from another (the first conv's weights, summed)."""
    return f"{float(net.features[0].weight.double().abs().sum()):.8e}"


# ----------------------------------------------------------------------------- the transforms
@dataclass
class Moments:
    """Features' statistics at one level: `mean` (C,), and for WCT the covariance's square root and inverse
    square root (C, C), for AdaIN the standard deviation and its inverse (C,). Directions under `FLOOR` have
    an inverse of 0: the map sends them to the style's mean."""
    mean: torch.Tensor
    root: torch.Tensor
    inverse: torch.Tensor


def pixels(features: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (H * W, C), one row per pixel: a view of channels-last features (the encoder's layout), so
    the statistics and the maps read and write them without a transposed copy."""
    return features.permute(1, 2, 0).reshape(-1, features.shape[0])


def moments(features: torch.Tensor, method: str, weight: torch.Tensor | None = None) -> Moments:
    """The statistics of one image's features (C, H, W), in fp32; `weight` (H, W) >= 0 makes them a region's."""
    f = pixels(features.float())
    w = None if weight is None else weight.flatten().float().to(f.device)
    total = f.shape[0] if w is None else w.sum().clamp_min(1e-8)
    mean = (f.sum(0) if w is None else w @ f) / total
    x = f - mean
    if w is not None:
        x = x * w.sqrt()[:, None]
    if method == "adain":
        std = (x.pow(2).sum(0) / total).sqrt()
        kept = std > math.sqrt(FLOOR) * std.max()
        return Moments(mean, std, torch.where(kept, 1 / std.clamp_min(1e-30), torch.zeros_like(std)))
    # fp64 on the CPU (MPS has no fp64): fp32's eigenvectors of relu4_1's 512 x 512 covariance leave its whitened
    # features' variances up to 4 % off 1; fp64 costs 20 ms more per image
    values, vectors = torch.linalg.eigh((x.T @ x / total).cpu().double())
    kept = values > FLOOR * values.max()
    v, d = vectors[:, kept], values[kept]
    return Moments(mean, ((v * d.sqrt()) @ v.T).to(f), ((v / d.sqrt()) @ v.T).to(f))


@dataclass
class FeatureMap:
    """f -> a f + b on features (C, ...): `a` (C, C) for WCT, (C,) per channel for AdaIN."""
    a: torch.Tensor
    b: torch.Tensor

    @staticmethod
    def between(content: Moments, style: Moments) -> "FeatureMap":
        """Whiten with the content's statistics, colour with the style's (AdaIN: per channel)."""
        a = style.root @ content.inverse if content.inverse.dim() == 2 else style.root * content.inverse
        return FeatureMap(a, style.mean - (a @ content.mean if a.dim() == 2 else a * content.mean))

    @staticmethod
    def blend(maps: Sequence["FeatureMap"], weights: Sequence[float]) -> "FeatureMap":
        total = sum(weights)
        return FeatureMap(sum(w / total * m.a for m, w in zip(maps, weights)),
                          sum(w / total * m.b for m, w in zip(maps, weights)))

    def toward(self, alpha: float) -> "FeatureMap":
        """alpha of this map and 1 - alpha of the identity."""
        eye = torch.eye(len(self.b)) if self.a.dim() == 2 else torch.ones(len(self.b))
        return FeatureMap(alpha * self.a + (1 - alpha) * eye.to(self.a), alpha * self.b)

    def __call__(self, f: torch.Tensor) -> torch.Tensor:
        """(C, H, W) -> (C, H, W)."""
        if self.a.dim() == 2:  # per pixel: a f + b, in the features' own layout
            c, h, w = f.shape
            return torch.addmm(self.b, pixels(f), self.a.T).view(h, w, c).permute(2, 0, 1)
        return f * self.a[:, None, None] + self.b[:, None, None]


def apply_maps(features: torch.Tensor, maps: list[list[FeatureMap]], regions: torch.Tensor | None) -> torch.Tensor:
    """Each image's maps on its features (N, C, H, W): one map (the identity at alpha 0, mask or not), or one
    per region weighted by `regions` (N, R, H, W) that sum to 1."""
    out = torch.empty_like(features)
    for n, image_maps in enumerate(maps):
        if regions is None or len(image_maps) == 1:
            out[n] = image_maps[0](features[n])
        else:
            out[n] = sum(regions[n, r] * m(features[n]) for r, m in enumerate(image_maps))
    return out


# ----------------------------------------------------------------------------- applying
@dataclass
class UniversalConfig:
    method: str = "wct"  # wct (every level, coarse to fine) or adain (one level: the fast path)
    alpha: float = 1.0  # strength: 0 is the photo through the decoders, 1 the full transform
    style_weights: Sequence[float] | None = None  # a blend of several paintings (default: equal)
    levels: Sequence[str] | None = None  # default: wct every decoder's level, adain the deepest
    original_colors: bool = False  # the result's luminance on the photo's colours
    tile: int | None = None  # as `lossnet.fast.apply`: None tiles only when memory needs it, 0 never
    overlap: int = 64
    max_memory: float | None = None
    stats_pixels: int = 1_000_000  # a larger image's statistics come from it downscaled to this many pixels
    weights: str | None = None  # the encoder's weights (None: HED's offline VGG16, what the decoders invert)
    precision: str = "auto"
    device: str = "cpu"


class UniversalStyle:
    """Paintings' statistics and the decoders, ready to stylise any number of images: `stylist(images)` maps
    (N, 3, H, W) in [0, 1] to the stylised images. With `mask` (1, 1, H, W) in [0, 1], resized to each
    image, the first of two paintings goes where it is 1 and the second where it is 0. With no painting, the
    result is the photo through the decoders (what the decoder kind applies)."""

    def __init__(self, styles: Sequence[torch.Tensor], cfg: UniversalConfig = UniversalConfig(),
                 decoders: dict[str, Decoder] | None = None, mask: torch.Tensor | None = None):
        if cfg.method not in METHODS:
            raise ConfigError("method", f"unknown {cfg.method!r}: choose {', '.join(METHODS)}")
        if not 0 <= cfg.alpha <= 1:
            raise ConfigError("alpha", f"must be in [0, 1], got {cfg.alpha}")
        styles = list(styles)
        if mask is not None:
            if len(styles) != 2:
                raise ConfigError("mask", f"a mask places two paintings (the first where it is white), got "
                                          f"{len(styles)}")
            if cfg.style_weights is not None:
                raise ConfigError("style_weights", "a mask places each painting in its region: give no blend weights")
            if mask.dim() != 4 or mask.shape[:2] != (1, 1) or not 0 <= float(mask.min()) <= float(mask.max()) <= 1:
                raise ConfigError("mask", f"one channel (1, 1, H, W) in [0, 1], got {tuple(mask.shape)} in "
                                          f"[{float(mask.min()):g}, {float(mask.max()):g}]")
        self.weights = [1.0] * len(styles) if cfg.style_weights is None else [float(w) for w in cfg.style_weights]
        if len(self.weights) != len(styles) or not all(0 <= w < math.inf for w in self.weights) \
                or (styles and sum(self.weights) <= 0):
            raise ConfigError("style_weights", f"one weight per painting, non-negative and not all zero: got "
                                               f"{self.weights} for {len(styles)} painting(s)")
        decoders = load_decoders() if decoders is None else dict(decoders)
        self.levels = choose_levels(decoders, cfg.method, cfg.levels)
        self.cfg, self.mask = cfg, mask
        self.run = resolve_precision(cfg.precision, cfg.device)
        self.encoder = encoder(cfg.weights, cfg.device)
        self.decoders = {level: decoders[level].to(cfg.device).eval() for level in self.levels}
        for decoder in self.decoders.values():
            check_encoder(decoder, self.encoder, cfg.weights)
        announce(self.run)
        # each painting's statistics at each level, once (one encoder pass): every image, frame and tile uses them
        self.style_moments = {level: [] for level in self.levels}
        for painting in styles:
            features = self._encode(painting, self.levels)
            for level in self.levels:
                self.style_moments[level].append(moments(features[level][0], cfg.method))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if min(images.shape[-2:]) < MIN_SIDE:
            h, w = images.shape[-2:]
            raise LossnetError(f"a {w}x{h} image is too small: at least {MIN_SIDE} pixels per side")
        with torch.no_grad():
            out = images.float()
            for level in self.levels:  # coarse to fine: each level's result is the next one's input
                out = self._level(out, level).clamp(0, 1)
        return picture(keep_colors(out, images) if self.cfg.original_colors else out)

    # -- one level
    def _padded(self, image: torch.Tensor, level: str) -> torch.Tensor:
        return pad_to_multiple(image, 2 ** pools_before(level))[0]

    def _encode(self, image: torch.Tensor, levels: Sequence[str]) -> dict[str, torch.Tensor]:
        """The features of `levels` in one encoder pass, in fp32."""
        with self.run.autocast():
            features = self.encoder(image[:, :3].to(self.cfg.device), list(levels))
        return {level: features[level].float() for level in levels}

    def _regions(self, piece: torch.Tensor, features: torch.Tensor) -> torch.Tensor | None:
        """The mask channel of an image (or tile) at the features' resolution, as two regions' weights."""
        if self.mask is None:
            return None
        m = F.adaptive_avg_pool2d(piece[:, 3:].to(features), features.shape[-2:])
        return torch.cat([m, 1 - m], 1)

    def _maps(self, features: torch.Tensor, regions: torch.Tensor | None, level: str) -> list[list[FeatureMap]]:
        """Each image's map(s) at `level` from its features' statistics (in fp32)."""
        styles, method, alpha = self.style_moments[level], self.cfg.method, self.cfg.alpha
        if not styles or alpha == 0:  # the identity: nothing to estimate
            c = features.shape[1]
            return [[FeatureMap(torch.ones(c).to(features), torch.zeros(c).to(features))]] * len(features)
        maps = []
        for n in range(len(features)):
            if regions is None:
                content = moments(features[n], method)
                per_style = [FeatureMap.between(content, s) for s in styles]
                maps.append([FeatureMap.blend(per_style, self.weights).toward(alpha)])
            else:
                maps.append([FeatureMap.between(moments(features[n], method, regions[n, r]), s).toward(alpha)
                             for r, s in enumerate(styles)])
        return maps

    def _through(self, piece: torch.Tensor, level: str, maps: list[list[FeatureMap]] | None) -> torch.Tensor:
        """Encoder -> maps (this piece's own when None) -> decoder on an image or a tile (3 or 4 channels)."""
        padded, crop = pad_to_multiple(piece, 2 ** pools_before(level))
        features = self._encode(padded, [level])[level]
        regions = self._regions(padded, features)
        maps = self._maps(features, regions, level) if maps is None else maps
        features = apply_maps(features, maps, regions)
        with self.run.autocast():
            out = self.decoders[level](features).float().cpu()
        return crop(out)

    def _level(self, images: torch.Tensor, level: str) -> torch.Tensor:
        if self.mask is not None:
            images = torch.cat([images, resize(self.mask.float(), tuple(images.shape[-2:])).expand(len(images), 1, -1, -1)], 1)
        decoder = self.decoders[level]
        side = auto_tile(decoder, lambda x: self._through(x, level, None), images, self.cfg.tile,
                         self.cfg.max_memory, key=f"{self.run.name} {images.shape[1]}")
        if side == 0:
            return self._through(images, level, None)
        # the maps of the whole image (downscaled), then the same maps in every tile
        whole = self._padded(shrunk(images, self.cfg.stats_pixels), level)
        features = self._encode(whole, [level])[level]
        maps = self._maps(features, self._regions(whole, features), level)
        return tiled(lambda x: self._through(x, level, maps), images, side, self.cfg.overlap,
                     align=2 ** pools_before(level))


def painting_side(method: str, size: int | None, style_scale: float | None = None) -> int:
    """The longest side to read the paintings at for an output of `size` (STYLE_SIDE when None): `style_scale`
    times it, the method's STYLE_SCALE when None."""
    scale = STYLE_SCALE[method] if style_scale is None else style_scale
    side = round((size or STYLE_SIDE) * scale)
    if not MIN_SIDE <= side <= MAX_STYLE_SIDE:
        raise LossnetError(f"the paintings would be {side} px ({scale:g} x {size or STYLE_SIDE}): keep --style-scale "
                           f"x --size within {MIN_SIDE}-{MAX_STYLE_SIDE} px")
    return side


def stylize(content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: UniversalConfig = UniversalConfig(),
            decoders: dict[str, Decoder] | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One call: (N, 3, H, W) photos and the paintings (1, 3, h, w) -> the stylised photos (see UniversalStyle)."""
    return UniversalStyle(styles, cfg, decoders, mask)(content)


def choose_levels(decoders: dict[str, Decoder], method: str, levels: Sequence[str] | None) -> list[str]:
    """The levels a method runs, coarse to fine: the given ones, else WCT every decoder's, AdaIN the deepest."""
    if not decoders:
        raise LossnetError("no decoders: train them with `lossnet train-decoder --level LEVEL ...` (see "
                           "lossnet/universal.py) and give their files or folder")
    if levels:
        unknown = [lv for lv in levels if lv not in LEVELS]
        if unknown:
            raise ConfigError("levels", f"unknown level {unknown[0]!r}: the levels are {', '.join(LEVELS)}")
        missing = [lv for lv in levels if lv not in decoders]
        if missing:
            raise ConfigError("levels", f"no decoder for {missing[0]} (decoders for: {', '.join(sorted(decoders))})")
        chosen = list(dict.fromkeys(levels))
    else:
        chosen = sorted(decoders, key=LEVELS.index)
        if method == "adain":
            chosen = chosen[-1:]
    return sorted(chosen, key=LEVELS.index, reverse=True)


def check_encoder(decoder: Decoder, net: LossNetwork, weights: str | None) -> None:
    """A decoder inverts the features of the weights it was trained on: refuse it with any others."""
    recorded = getattr(decoder, "encoder_check", None)
    if recorded is None or math.isclose(float(recorded), float(fingerprint(net)), rel_tol=1e-6):
        return
    said = getattr(decoder, "encoder", "other")
    raise LossnetError(f"the {decoder.level} decoder inverts the encoder weights {said!r}, not "
                       f"{encoder_name(weights)!r}: give those weights, or decoders trained on these")


# ----------------------------------------------------------------------------- decoders as models
def load_decoder(spec: str | os.PathLike | Decoder, device: str = "cpu") -> Decoder:
    """One decoder: a bundled name, a model file or a run folder (fp32, eval mode)."""
    return registry.load(spec, KIND, device).eval()


def load_decoders(specs: Sequence[str | os.PathLike] | None = None) -> dict[str, Decoder]:
    """{level: decoder} from model files, run folders, folders of decoder files, or bundled names; None:
    the bundled decoders. Two decoders of one level are refused (which one was meant?)."""
    found: dict[str, tuple[Decoder, str]] = {}

    def add(path) -> None:
        decoder = load_decoder(path)
        if decoder.level in found:
            raise LossnetError(f"two decoders for {decoder.level}: {found[decoder.level][1]} and {path}")
        found[decoder.level] = (decoder, str(path))

    if specs is None:
        for model in registry.bundled(KIND).values():
            add(model.path)
        if not found:
            raise LossnetError("no decoders are bundled yet: train them with `lossnet train-decoder --level "
                               "LEVEL ...` and give them with --decoders")
    for spec in specs or ():
        path = Path(spec)
        if path.is_dir() and not (path / registry.MODEL_FILE).is_file():
            kinds = {p: registry.stored_metadata(p).get("lossnet_kind") for p in sorted(path.glob("*.safetensors"))}
            files = [p for p, stored in kinds.items() if stored == KIND.stored]
            if not files:
                raise LossnetError(f"no decoder model files in {path}")
            for p in files:
                add(p)
        else:
            add(spec)
    return {level: decoder for level, (decoder, _) in found.items()}


def _build(sd: dict, config: dict, path: Path) -> Decoder:
    args = {k: config[k] for k in ("level", "width", "arch") if k in config}
    net = build_matching(lambda: Decoder(**args), sd, f"the decoder described in {path}")
    net.encoder, net.encoder_check = config.get("encoder"), config.get("encoder_check")
    return net.eval()


@torch.no_grad()
def reconstruct(decoder: Decoder, images: torch.Tensor, precision="auto", tile: int | None = None,
                overlap: int = 64, max_memory: float | None = None, weights: str | None = None) -> torch.Tensor:
    """The images through the encoder and `decoder`: what the decoder gives back of them (alpha 0)."""
    cfg = UniversalConfig(levels=[decoder.level], tile=tile, overlap=overlap, max_memory=max_memory,
                          weights=weights, precision=precision, device=str(next(decoder.parameters()).device))
    return UniversalStyle([], cfg, {decoder.level: decoder})(images)


# ----------------------------------------------------------------------------- training
class Textures:
    """Procedural textures (`lossnet.procedural`) as a data set of `count` crops: each item a new seed."""

    def __init__(self, crop: int, count: int = 64):
        self.crop, self.count = crop, count

    def __len__(self) -> int:
        return self.count

    def sample(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor:
        from .procedural import STYLES, make_style
        names = sorted(STYLES)
        seed = index if generator is None else int(torch.randint(2 ** 31, (), generator=generator))
        return make_style(names[index % len(names)], self.crop, seed)[0]


class Mixture:
    """Several data sets drawn in fixed shares: an epoch is the first (the photos) once, the others repeated
    or cut to their share of it."""

    def __init__(self, parts: Sequence[tuple[object, float]]):
        first, share = parts[0]
        total = len(first) / share
        self.parts = [(d, max(1, round(total * s))) for d, s in parts]

    def __len__(self) -> int:
        return sum(count for _, count in self.parts)

    def sample(self, index: int, generator: torch.Generator | None = None):
        for dataset, count in self.parts:
            if index < count:
                return dataset.sample(index % len(dataset), generator)
            index -= count
        raise IndexError(index)


@dataclass
class DecoderConfig:
    data: Sequence[str] = option((), "folder of training photos (repeatable, recursive)", metavar="DIR",
                                 repeat=True, required=True, path=True)
    paintings: Sequence[str] = option((), "folder of paintings (repeatable, recursive): crops at several scales, so "
                                          "the decoder gives back brushwork too; keep out the paintings you "
                                          "evaluate on", metavar="DIR", repeat=True, path=True)
    painting_share: float = option(0.25, "share of the crops taken from --paintings (when given)", minimum=0)
    texture_share: float = option(0.1, "share of the crops that are procedural textures (lossnet.procedural)",
                                  minimum=0)
    level: str = option("relu4_1", "the encoder layer the decoder inverts", choices=LEVELS)
    width: float = option(1.0, "inner channels relative to VGG's (1: Li et al.'s mirror of the encoder)", minimum=0)
    crop: int = option(128, "training crop side", minimum=1)
    batch_size: int = option(8, "the global batch: under torchrun each process takes batch-size / processes of it",
                             minimum=1)
    pixel_weight: float = option(1.0, "weight of the pixel loss (MSE)", minimum=0)
    feature_weight: float = option(1.0, "weight of the feature loss at the level (relative MSE)", minimum=0)
    weights: str | None = option(None, "encoder weights in torchvision layout (default: HED's offline VGG16, "
                                       "which the bundled decoders invert)", path=True)
    init_from: str | None = init_from_option()  # a decoder of the same level
    train: TrainConfig = field(default_factory=lambda: TrainConfig(iters=4000, lr=1e-3, decay_from=2000,
                                                                   desc="train-decoder"))


def training_crops(cfg: DecoderConfig):
    """Photos, paintings and textures in the config's shares (zoomed, flipped crops)."""
    photo_share = 1 - cfg.texture_share - (cfg.painting_share if cfg.paintings else 0)
    if photo_share <= 0:
        raise ConfigError("texture_share", f"the painting and texture shares leave no photos (photos' share "
                                           f"{photo_share:g}): keep their sum under 1")
    parts = [(photo_crops(cfg.data, cfg.crop, zoom=True, flip=True), photo_share)]
    if cfg.paintings and cfg.painting_share > 0:
        parts.append((photo_crops(cfg.paintings, cfg.crop, zoom=True, flip=True), cfg.painting_share))
    if cfg.texture_share > 0:
        parts.append((Textures(cfg.crop), cfg.texture_share))
    return Mixture(parts)


class DecoderTask(Task):
    """A decoder as a `train.Task`: crops in, their features at the level through the decoder, the crops
    back (pixel MSE, and the features of the result against the crop's, relative MSE: Li et al.'s loss)."""

    def __init__(self, cfg: DecoderConfig, generator: Decoder | None = None, quiet: bool = False):
        if cfg.level not in LEVELS:
            raise ConfigError("level", f"unknown {cfg.level!r}: choose {', '.join(LEVELS)}")
        if cfg.pixel_weight == 0 and cfg.feature_weight == 0:
            raise ConfigError("pixel_weight", "the pixel and feature weights are both 0: nothing to train")
        factor = 2 ** pools_before(cfg.level)
        if cfg.crop < max(MIN_SIDE, 2 * factor) or cfg.crop % factor:
            raise ConfigError("crop", f"{cfg.crop} px: a {cfg.level} decoder trains on multiples of {factor} of at "
                                      f"least {max(MIN_SIDE, 2 * factor)} px")
        self.cfg = cfg
        self.batches = StepBatches(training_crops(cfg), cfg.batch_size, cfg.train.seed)
        self.encoder = encoder(cfg.weights, cfg.train.device)
        if generator is None and cfg.init_from:
            generator = load_decoder(cfg.init_from).train()
            if generator.level != cfg.level:
                raise ConfigError("init_from", f"{cfg.init_from} is a {generator.level} decoder, not {cfg.level}")
            check_encoder(generator, self.encoder, cfg.weights)
        elif generator is None:
            with seeded(cfg.train.seed):
                generator = Decoder(cfg.level, cfg.width)
            first = self.batches(0).to(cfg.train.device)
            with torch.no_grad():
                generator.calibrate(self.encoder(first, [cfg.level])[cfg.level], first)
        self.generator = generator

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return {"input": self.batches(step)}

    def forward(self, batch: dict) -> torch.Tensor:
        with torch.no_grad():
            batch["features"] = self.encoder(batch["input"], [self.cfg.level])[self.cfg.level]  # the loss's target
        return self.generator(batch["features"])

    def generator_loss(self, batch: dict, output: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, losses = self.cfg, {}
        if cfg.pixel_weight:
            losses["pixel"] = cfg.pixel_weight * F.mse_loss(output.float(), batch["input"].float())
        if cfg.feature_weight:
            losses["feature"] = cfg.feature_weight * relative_mse(self.encoder(output, [cfg.level])[cfg.level],
                                                                  batch["features"])
        return losses

    def samples(self, batch: dict, output: torch.Tensor) -> torch.Tensor:
        """crop | reconstruction for the first two crops."""
        rows = [torch.cat([batch["input"][i], output[i]], -1) for i in range(min(2, output.shape[0]))]
        return torch.cat(rows, -2)[None].clamp(0, 1)

    def model_config(self) -> dict:
        return {**self.generator.config(), "encoder": encoder_name(self.cfg.weights),
                "encoder_check": fingerprint(self.encoder)}


def train_decoder(cfg: DecoderConfig, output: str | os.PathLike, run_dir: str | os.PathLike | None = None,
                  resume: bool = False) -> Path:
    """Train (`registry.train_model`): the model is written at every checkpoint and at the end."""
    registry.destination(output, run_dir)  # a bad output fails before the data and encoder are read
    return registry.train_model(DecoderTask(cfg), cfg, output, run_dir, resume)


KIND = Kind("decoder", stored="universal_decoder", title="universal style decoder", networks=(Decoder,),
            config=DecoderConfig, task=DecoderTask, build=_build, apply=reconstruct, half=True,
            description="a decoder of the frozen VGG16 at one level, for universal style transfer (Li et al.'s "
                        "WCT, AdaIN): lossnet stylize PHOTO --style PAINTING --method wct|adain (--decoders DIR for decoders of your own)")
