"""Named taps on a frozen loss network: `LossNetwork(layers=["relu2_2", "relu4_3"])(image) -> {name: tensor}`.

The network is built only as deep as its deepest tap, its parameters are frozen (no weight gradients are
ever computed), and it takes RGB in [0, 1]: the normalisation of whatever weights are loaded is inside.
"""
from __future__ import annotations

import torch
from torch import nn

from .errors import LossnetError
from .nets.vgg import layer_index, layer_names, make_features
from .weights import Weights, notice, vgg_weights


def build_matching(factory, state_dict: dict[str, torch.Tensor], what: str) -> nn.Module:
    """`factory()` loaded with `state_dict`. The network is first built on the meta device (nothing allocated)
    and checked against the file's tensors, so a model file whose stored config is absurd (a 150 GB network)
    or inconsistent is refused in milliseconds, with the file's own tensors as the only memory used."""
    try:
        with torch.device("meta"):
            probe = factory()
    except (TypeError, ValueError, KeyError, RuntimeError, LossnetError) as e:
        raise LossnetError(f"unusable config for {what} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    _check_matching(probe.state_dict(), state_dict, what)
    module = factory()
    load_matching(module, state_dict, what)
    return module


def _check_matching(own: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor], what: str) -> None:
    missing = [k for k in own if k not in state_dict]
    wrong = [k for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or wrong:
        key = (missing or wrong)[0]
        found = tuple(state_dict[key].shape) if key in state_dict else "nothing"
        raise LossnetError(f"weights do not fit {what}: {key} should be {tuple(own[key].shape)}, found {found}")


def load_matching(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """strict load of the keys `module` has, with one clear error for a file of another architecture."""
    own = module.state_dict()
    _check_matching(own, state_dict, what)
    module.load_state_dict({k: state_dict[k] for k in own}, strict=True)


def check_arch(state_dict: dict[str, torch.Tensor], arch: str) -> None:
    """Every `features.*` tensor in a file must have its place in `arch`: a VGG19 file is not a VGG16 file,
    even where the first layers would fit (shapes come from a meta-device build: nothing is allocated)."""
    with torch.device("meta"):
        expected = {f"features.{k}": v.shape for k, v in make_features(arch).state_dict().items()}
    for key, value in state_dict.items():
        if key.startswith("features.") and expected.get(key) != value.shape:
            should = f"should be {tuple(expected[key])}" if key in expected else f"has no place in {arch}"
            raise LossnetError(f"weights do not fit {arch}: {key} {should}, found {tuple(value.shape)} "
                               "(a file for another network? see --network)")


class LossNetwork(nn.Module):
    """A frozen VGG cut after its deepest tap; `forward` returns the taps' activations by name."""

    def __init__(self, layers, arch: str = "vgg16", weights: Weights | str | None = None,
                 pooling: str = "max", quiet: bool = False):
        super().__init__()
        for name in layers:  # validate before loading (or downloading) any weights
            layer_index(arch, name)
        if not isinstance(weights, Weights):
            weights = vgg_weights(arch, weights, quiet=True)  # said below, once the weights are known to fit
        self.arch = weights.arch
        self.preprocess = weights.preprocess
        self.layers = list(dict.fromkeys(layers))
        if not self.layers:
            raise LossnetError("no layers requested from the loss network")
        names = layer_names(self.arch)
        self.index = {name: layer_index(self.arch, name) for name in self.layers}
        depth = max(self.index.values()) + 1
        keep = frozenset(i for name, i in self.index.items() if name.startswith("conv"))
        self.features = make_features(self.arch, depth, pooling, weights.ceil_mode, keep)
        check_arch(weights.state_dict, self.arch)
        load_matching(self, {k: v for k, v in weights.state_dict.items() if k.startswith("features.")},
                      f"{self.arch} up to {names[depth - 1]}")
        self.requires_grad_(False)
        self.to(memory_format=torch.channels_last)
        self.eval()
        self.weights_description = weights.description
        # Without ceil_mode a 1-pixel map pools to nothing: each pooling layer doubles the smallest input.
        pools = sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in self.features)
        self.min_side = 1 if weights.ceil_mode else 2 ** pools
        self.deepest = names[depth - 1]
        if not quiet:
            notice(f"loss network weights: {weights.description}")

    def taps(self, image: torch.Tensor, names) -> dict[str, torch.Tensor]:
        """The Taps protocol (as `Classifier.taps`): {name: activation} for `names`, computed only as deep as needed."""
        return self.forward(image, list(names))

    def forward(self, image: torch.Tensor, layers=None) -> dict[str, torch.Tensor]:
        """{tap: activation} for `layers` (default: every tap); the pass stops at the deepest one asked for,
        so a content target at relu2_2 costs only the first four convs."""
        if min(image.shape[-2:]) < self.min_side:
            h, w = image.shape[-2:]
            raise LossnetError(f"a {w}x{h} image is too small for {self.arch} up to {self.deepest}: "
                               f"it needs at least {self.min_side} pixels per side")
        try:
            wanted = {self.index[name]: name for name in (layers or self.layers)}
        except KeyError as e:
            raise LossnetError(f"layer {e.args[0]} is not a tap of this loss network ({', '.join(self.layers)})") from None
        last, out = max(wanted), {}
        # channels-last: oneDNN's native layout, in fp32 and bf16 alike (the weights are stored that way too)
        x = self.preprocess(image).contiguous(memory_format=torch.channels_last)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
            if i == last:
                break
        return out

    def train(self, mode: bool = True):  # a loss network never leaves eval mode
        return super().train(False)
