"""HED's edge head (Xie & Tu, https://arxiv.org/abs/1504.06375) on top of the converted VGG16 backbone.

lossnet uses the HED backbone as an offline loss network; the head is here because an edge map that
follows the photo's contours is the visible proof that the Keras -> torch conversion is right.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..features import LossNetwork, load_matching
from ..weights import OFFLINE, hed_weights, missing_offline
from ..errors import LossnetError

SIDE_LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]


class HEDEdges(nn.Module):
    """sigmoid(fuse(concat(upsampled dsn_k(relu_k)))): an edge probability map (N, 1, H, W)."""

    def __init__(self):
        super().__init__()
        weights = hed_weights()
        if weights is None:
            raise LossnetError(missing_offline(OFFLINE["hed"]))
        self.backbone = LossNetwork(SIDE_LAYERS, weights=weights, quiet=True)
        self.hed = nn.ModuleDict({f"dsn{k}": nn.Conv2d(c, 1, 1) for k, c in enumerate([64, 128, 256, 512, 512], 1)})
        self.hed["fuse"] = nn.Conv2d(5, 1, 1)
        load_matching(self.hed, {k[4:]: v for k, v in weights.state_dict.items() if k.startswith("hed.")}, "HED head")
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(image)
        size = image.shape[-2:]
        sides = [F.interpolate(self.hed[f"dsn{k}"](feats[name]), size=size, mode="bilinear", align_corners=False)
                 for k, name in enumerate(SIDE_LAYERS, 1)]
        return torch.sigmoid(self.hed["fuse"](torch.cat(sides, 1)))
