"""Colour-space helpers shared by the methods that keep a photo's colours (`--original-colors`)."""
from __future__ import annotations

import torch

# ITU-R BT.601 YIQ: Y is luminance, I and Q carry the colour.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 3, H, W) grey image of its luminance (three equal channels)."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Shift and scale the image's luminance to the reference's mean and std (Gatys et al. 2016, sec. 3)."""
    y, ref = luminance(image), luminance(reference)
    return ((y - y.mean()) / (y.std() + 1e-8) * ref.std() + ref.mean()).clamp(0, 1)


def keep_colors(stylised: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """The stylised image's luminance with the original's colour (I, Q) channels."""
    if stylised.shape[-2:] != original.shape[-2:]:
        from .io import resize
        original = resize(original, tuple(stylised.shape[-2:]))
    yiq = torch.cat([rgb_to_yiq(stylised)[:, :1], rgb_to_yiq(original)[:, 1:]], 1)
    return yiq_to_rgb(yiq).clamp(0, 1)
