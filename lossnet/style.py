"""Neural style transfer (Gatys, Ecker & Bethge, https://arxiv.org/abs/1508.06576), texture synthesis and
feature inversion (Mahendran & Vedaldi, https://arxiv.org/abs/1412.0035): three objectives on the pixel loop.

    stylize(content, [style], StyleConfig(style_weight=20))   # content + style + TV
    texture(style, (256, 256))                                 # style + TV, from noise
    invert(image, "relu3_3")                                   # content + TV, from noise
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from . import objectives as O
from .color import keep_colors, luminance, match_luminance
from .errors import LossnetError
from .features import LossNetwork
from .io import load_image, picture, resize, resize_longest
from .optimize import LoopConfig, coarse_to_fine

GATYS_CONTENT_LAYERS = ("relu4_2",)  # the paper's (VGG19 names; VGG16 has them too)
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass
class StyleConfig:
    content_layers: Sequence[str] = GATYS_CONTENT_LAYERS
    style_layers: Sequence[str] = GATYS_STYLE_LAYERS
    style_layer_weights: Sequence[float] | None = None  # one per style layer; default equal
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    style_scale: float = 1.0  # style image's longest side relative to the output's
    original_colors: bool = False
    init: str = "content"  # "content", "noise", or an image path
    sizes: Sequence[int] = (512,)  # longest side of each coarse-to-fine stage
    iters: Sequence[int] | None = None  # per stage; default loop.iters each
    arch: str = "vgg16"
    weights: str | None = None
    pooling: str = "max"
    seed: int = 0
    device: str = "cpu"
    loop: LoopConfig = field(default_factory=LoopConfig)


def check_weights(name: str, weights: Sequence[float], count: int) -> list[float]:
    """Blend or layer weights: one per item, finite, non-negative, not all zero."""
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise LossnetError(f"{name}: {len(weights)} weights given for {count} items")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise LossnetError(f"{name}: weights must be finite, non-negative and not all zero, got {weights}")
    return weights


def blended_grams(net: LossNetwork, styles: Sequence[torch.Tensor], blend: Sequence[float],
                  layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Target Gram per layer: the blend-weighted mean of each style image's Gram (as neural-style does)."""
    total = sum(blend)
    grams = {layer: 0.0 for layer in layers}
    with torch.no_grad():
        for image, w in zip(styles, blend):
            feats = net(image)
            for layer in layers:
                grams[layer] = grams[layer] + (w / total) * O.gram_matrix(feats[layer])
    return grams


def layer_weights(cfg) -> dict[str, float]:
    """{style layer: weight}: `cfg.style_layer_weights` (checked), or equal weights that sum to 1."""
    layers = list(cfg.style_layers)
    weights = (check_weights("style layer weights", cfg.style_layer_weights, len(layers))
               if cfg.style_layer_weights is not None else [1.0 / len(layers)] * len(layers))
    return dict(zip(layers, weights))


def content_term(features: dict[str, torch.Tensor], layers: Sequence[str]) -> O.Objective:
    """The content loss: the mean over `layers` of the (relative) error to the target's `features`."""
    return sum(O.content(layer, features[layer]) for layer in layers) * (1.0 / len(layers))


def objective(cfg, content_features: dict[str, torch.Tensor], grams: dict[str, torch.Tensor]) -> O.Objective:
    """Gatys et al.'s objective: content_weight x the content term at `cfg.content_layers` (against the content
    image's features) + style_weight x the style term (`grams`: the target Gram per style layer, weighted by
    `layer_weights`) + tv_weight x TV. `cfg` is a StyleConfig (the pixel loop minimises it for one image) or a
    `lossnet.fast.FastStyleConfig` (a feed-forward network learns to minimise it for every photo)."""
    return (cfg.content_weight * content_term(content_features, cfg.content_layers)
            + cfg.style_weight * O.style(grams, layer_weights(cfg)) + cfg.tv_weight * O.tv())


def _hw(image: torch.Tensor, longest: int) -> tuple[int, int]:
    h, w = image.shape[-2:]
    s = longest / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def _network(cfg: StyleConfig, layers: Sequence[str]) -> LossNetwork:
    torch.manual_seed(cfg.seed)
    return LossNetwork(layers, cfg.arch, cfg.weights, cfg.pooling).to(cfg.device)


def _start(init: str, hw: tuple[int, int], content: torch.Tensor | None, seed: int) -> torch.Tensor:
    if init == "content" and content is not None:
        return resize(content, hw)
    if init in ("noise", "content"):
        g = torch.Generator().manual_seed(seed)
        return torch.rand(1, 3, *hw, generator=g)
    return resize(load_image(init), hw)


def _grams(net, styles, blend, cfg: StyleConfig, hw) -> dict[str, torch.Tensor]:
    """The blended target Grams of the styles, each scaled to `style_scale` times the stage's size."""
    scaled = [resize_longest(s, max(16, round(cfg.style_scale * max(hw)))) for s in styles]
    return blended_grams(net, scaled, blend, cfg.style_layers)


def _features(net, image: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return net(image)


def stylize(content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: StyleConfig | None = None,
            blend: Sequence[float] | None = None, init: torch.Tensor | None = None,
            extra: O.Objective | None = None) -> torch.Tensor:
    """Optimise an image whose features match `content` and whose Grams match the blended `styles`.

    `init`, an image, replaces `cfg.init` as the start; `extra` is added to the objective at every scale
    (lossnet.temporal passes the warped previous frame and its temporal term)."""
    cfg = cfg or StyleConfig()
    if not styles:
        raise LossnetError("at least one style image is needed")
    blend = check_weights("style blend", blend if blend is not None else [1.0] * len(styles), len(styles))
    original = content
    if cfg.original_colors:  # luminance-only transfer; colours come back from the content at the end
        content, styles = luminance(content), [match_luminance(s, content) for s in styles]
    content, styles = content.to(cfg.device), [s.to(cfg.device) for s in styles]
    net = _network(cfg, list(cfg.content_layers) + list(cfg.style_layers))

    def build(hw):
        goal = objective(cfg, _features(net, resize(content, hw)), _grams(net, styles, blend, cfg, hw))
        start = resize(init, hw) if init is not None else _start(cfg.init, hw, content, cfg.seed)
        return (goal + extra if extra is not None else goal), start.to(cfg.device)

    result, history = coarse_to_fine([_hw(content, s) for s in cfg.sizes], build, net, cfg.loop, cfg.iters)
    return picture(keep_colors(result, original.to(result.device)) if cfg.original_colors else result, history)


def texture(style: torch.Tensor | Sequence[torch.Tensor], size: tuple[int, int], cfg: StyleConfig | None = None,
            blend: Sequence[float] | None = None) -> torch.Tensor:
    """Texture synthesis (Gatys et al. 2015): match Grams only, starting from noise. `size` is the final (H, W)."""
    cfg = cfg or StyleConfig(init="noise")
    styles = [style] if isinstance(style, torch.Tensor) else list(style)
    blend = check_weights("style blend", blend if blend is not None else [1.0] * len(styles), len(styles))
    styles = [s.to(cfg.device) for s in styles]
    net = _network(cfg, cfg.style_layers)
    final = max(size)
    stages = [(max(1, round(size[0] * s / final)), max(1, round(size[1] * s / final))) for s in cfg.sizes]

    def build(hw):
        goal = cfg.style_weight * O.style(_grams(net, styles, blend, cfg, hw), layer_weights(cfg)) + cfg.tv_weight * O.tv()
        return goal, _start(cfg.init, hw, None, cfg.seed).to(cfg.device)

    return picture(*coarse_to_fine(stages, build, net, cfg.loop, cfg.iters))


def invert(image: torch.Tensor, layer: str = "relu3_3", cfg: StyleConfig | None = None) -> torch.Tensor:
    """Feature inversion: an image, from noise, whose `layer` features match those of `image` (plus TV)."""
    cfg = cfg or StyleConfig(init="noise", tv_weight=0.05)
    image = image.to(cfg.device)
    net = _network(cfg, [layer])

    def build(hw):
        goal = cfg.content_weight * content_term(_features(net, resize(image, hw)), [layer]) + cfg.tv_weight * O.tv()
        return goal, _start(cfg.init, hw, None, cfg.seed).to(cfg.device)

    return picture(*coarse_to_fine([_hw(image, s) for s in cfg.sizes], build, net, cfg.loop, cfg.iters))
