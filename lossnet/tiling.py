"""Run an image-to-image network on a large image in overlapping tiles, feather-blended so no seam shows.

Used by feed-forward style and super-resolution to bound memory by one tile (pix2pix runs whole: its U-Net
sees the image at 1/256 of its size and needs all of it). `pad_to_multiple` pads an image to the sizes a network
takes, and crops its output back.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _ramp(n: int, overlap: int, start: bool, end: bool) -> torch.Tensor:
    w = torch.ones(n)
    r = torch.linspace(0, 1, overlap + 2)[1:-1]
    if start and overlap:
        w[:overlap] = torch.minimum(w[:overlap], r[:n])
    if end and overlap:
        w[n - overlap:] = torch.minimum(w[n - overlap:], r.flip(0)[-n:])
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    return sorted(set(list(range(0, size - tile, tile - overlap)) + [size - tile]))


@torch.no_grad()
def tiled(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int, overlap: int = 16,
          scale: int = 1) -> torch.Tensor:
    """fn(image) computed in overlapping tile x tile pieces of the input, feather-blended over the overlap;
    `fn` maps (N, C, h, w) to (N, C', scale*h, scale*w). Memory is bounded by one tile."""
    h, w = image.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(image)
    overlap = max(0, min(overlap, tile // 2))
    out = total = None
    for y in _starts(h, tile, overlap):
        for x in _starts(w, tile, overlap):
            th, tw = min(tile, h - y), min(tile, w - x)
            piece = fn(image[..., y:y + th, x:x + tw])
            if out is None:
                out = torch.zeros(*piece.shape[:-2], h * scale, w * scale, dtype=piece.dtype)
                total = torch.zeros(h * scale, w * scale, dtype=piece.dtype)
            wy = _ramp(th * scale, overlap * scale, y > 0, y + th < h)
            wx = _ramp(tw * scale, overlap * scale, x > 0, x + tw < w)
            weight = wy[:, None] * wx[None, :]
            ys, xs = slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale)
            out[..., ys, xs] += piece.cpu() * weight
            total[ys, xs] += weight
    return out / total


def pad_to_multiple(image: torch.Tensor, multiple: int, centered: bool = False):
    """(image padded so H and W are multiples of `multiple`, crop(y, scale) that undoes it on an output `scale`
    times larger). Reflection padding, or replication where the image is smaller than the pad; at the end of
    each side, or split over both sides when `centered` (pix2pix, as the reference pads)."""
    h, w = image.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    top, left = (ph // 2, pw // 2) if centered else (0, 0)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        image = F.pad(image, (left, pw - left, top, ph - top), mode=mode)

    def crop(y: torch.Tensor, scale: int = 1) -> torch.Tensor:
        return y[..., top * scale:(top + h) * scale, left * scale:(left + w) * scale]
    return image, crop
