"""Style images the project makes itself, so the demo and tests need no copied artwork.

Each is a seeded numpy function of pixel coordinates, made to have what a Gram matrix picks up: strong,
repeated strokes and a small, saturated palette.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import LossnetError, suggest


def _palette(t: np.ndarray, colors: list[tuple[int, int, int]]) -> np.ndarray:
    """Map t in [0, 1] onto a piecewise-linear colour ramp."""
    stops = np.linspace(0, 1, len(colors))
    c = np.asarray(colors, dtype=np.float32) / 255.0
    return np.stack([np.interp(t, stops, c[:, k]) for k in range(3)], -1)


def _smooth_noise(rng, h, w, cells):
    """Bilinearly upsampled random grid: cheap, smooth, seedable noise in [0, 1]."""
    grid = torch.from_numpy(rng.random((1, 1, cells + 1, cells + 1)).astype(np.float32))
    return torch.nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)[0, 0].numpy()


def swirls(size: int = 512, seed: int = 0) -> np.ndarray:
    """Thick swirling bands in night blues and star yellows: van Gogh-like brushwork."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    warp = _smooth_noise(rng, size, size, 4) * 6 + _smooth_noise(rng, size, size, 9) * 1.5
    bands = np.sin(2 * np.pi * (6 * x + 3 * np.sin(2 * np.pi * y + warp)) + 4 * warp)
    strokes = np.sin(2 * np.pi * 40 * (x * np.cos(warp) + y * np.sin(warp)))  # fine brush texture
    t = np.clip(0.5 + 0.4 * bands + 0.1 * strokes, 0, 1)
    img = _palette(t, [(12, 24, 70), (30, 70, 160), (90, 150, 210), (235, 215, 90), (250, 245, 200)])
    return (img * (0.85 + 0.15 * _smooth_noise(rng, size, size, 30)[..., None])).clip(0, 1)


def mosaic(size: int = 512, seed: int = 0, cells: int = 60) -> np.ndarray:
    """Stained glass: Voronoi cells of saturated colour with dark lead lines."""
    rng = np.random.default_rng(seed)
    points = rng.random((cells, 2)) * size
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    d = (y[..., None] - points[:, 0]) ** 2 + (x[..., None] - points[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    nearest, second = np.take_along_axis(d, order[..., :2], -1).transpose(2, 0, 1)
    colors = _palette(rng.random(cells), [(180, 20, 30), (240, 170, 20), (20, 110, 60), (20, 60, 170), (120, 30, 140)])
    img = colors[order[..., 0]]
    edge = np.clip((np.sqrt(second) - np.sqrt(nearest)) / 3.0, 0, 1)[..., None]  # 0 on the cell border
    return img * edge


STYLES = {"swirls": swirls, "mosaic": mosaic}


def make_style(name: str, size: int = 512, seed: int = 0) -> torch.Tensor:
    """(1, 3, size, size) float tensor of a procedural style image."""
    if name not in STYLES:
        raise LossnetError(f"unknown procedural style {name!r}{suggest(name, STYLES)}: choose {', '.join(STYLES)}")
    return torch.from_numpy(np.ascontiguousarray(STYLES[name](size, seed), dtype=np.float32)).permute(2, 0, 1)[None]
