"""Named taps on a frozen loss network: `LossNetwork(layers=["relu2_2", "relu4_3"])(image) -> {name: tensor}`.

The network is built only as deep as its deepest tap, its parameters are frozen (no weight gradients are
ever computed), and it takes RGB in [0, 1]: the normalisation of whatever weights are loaded is inside.
"""
from __future__ import annotations

import torch
from torch import nn

from .errors import LossnetError
from .nets.vgg import layer_index, layer_names, make_features
from .weights import Weights, vgg_weights


def load_matching(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """strict load of the keys `module` has, with one clear error for a file of another architecture."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    wrong = [k for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or wrong:
        key = (missing or wrong)[0]
        found = tuple(state_dict[key].shape) if key in state_dict else "nothing"
        raise LossnetError(f"weights do not fit {what}: {key} should be {tuple(own[key].shape)}, found {found}")
    module.load_state_dict({k: state_dict[k] for k in own}, strict=True)


class LossNetwork(nn.Module):
    """A frozen VGG cut after its deepest tap; `forward` returns the taps' activations by name."""

    def __init__(self, layers, arch: str = "vgg16", weights: Weights | str | None = None,
                 pooling: str = "max", quiet: bool = False):
        super().__init__()
        for name in layers:  # validate before loading (or downloading) any weights
            layer_index(arch, name)
        if not isinstance(weights, Weights):
            weights = vgg_weights(arch, weights, quiet=quiet)
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
        load_matching(self, {k: v for k, v in weights.state_dict.items() if k.startswith("features.")},
                      f"{self.arch} up to {names[depth - 1]}")
        self.requires_grad_(False)
        self.eval()
        self.weights_description = weights.description

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out, wanted = {}, {i: name for name, i in self.index.items()}
        x = self.preprocess(image)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return out

    def train(self, mode: bool = True):  # a loss network never leaves eval mode
        return super().train(False)
