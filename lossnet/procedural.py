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

# Class colours of the CMP facade label maps (the pix2pix "facades" set), measured as cluster means of its
# label images, so a drawn map speaks the bundled label->photo model's language.
FACADE_CLASSES = {"background": (5, 9, 214), "facade": (2, 49, 248), "window": (12, 121, 244),
                  "cornice": (234, 85, 26), "sill": (244, 156, 27), "balcony": (198, 244, 84),
                  "shop": (38, 221, 242), "door": (187, 8, 23)}


def facade_labels(size: int = 256, seed: int = 0) -> torch.Tensor:
    """(1, 3, size, size) label map of a made-up facade: floors of windows with sills, cornices between
    floors, a balcony floor, shops and a door at street level."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = FACADE_CLASSES["facade"]
    img[: size // 10] = FACADE_CLASSES["background"]  # sky above the roof line
    floors, columns = int(rng.integers(4, 7)), int(rng.integers(4, 8))
    top, street = size // 10 + size // 25, size - size // 5
    floor_h, col_w = (street - top) / floors, size / columns

    def box(y0, y1, x0, x1, cls):
        img[int(y0):int(y1), int(x0):int(x1)] = FACADE_CLASSES[cls]

    balcony_floor = int(rng.integers(1, floors))
    for f in range(floors):
        y = top + f * floor_h
        box(y, y + floor_h * 0.1, 0, size, "cornice")
        for c in range(columns):
            x = c * col_w
            box(y + floor_h * 0.25, y + floor_h * 0.8, x + col_w * 0.22, x + col_w * 0.78, "window")
            box(y + floor_h * 0.8, y + floor_h * 0.87, x + col_w * 0.18, x + col_w * 0.82, "sill")
        if f == balcony_floor:
            box(y + floor_h * 0.65, y + floor_h * 0.85, size * 0.1, size * 0.9, "balcony")
    box(street, size, 0, size, "shop")
    door = size * rng.uniform(0.35, 0.55)
    box(street + size * 0.03, size, door, door + size * 0.1, "door")
    return torch.from_numpy(img / 255.0).permute(2, 0, 1)[None].contiguous()


def make_style(name: str, size: int = 512, seed: int = 0) -> torch.Tensor:
    """(1, 3, size, size) float tensor of a procedural style image."""
    if name not in STYLES:
        raise LossnetError(f"unknown procedural style {name!r}{suggest(name, STYLES)}: choose {', '.join(STYLES)}")
    return torch.from_numpy(np.ascontiguousarray(STYLES[name](size, seed), dtype=np.float32)).permute(2, 0, 1)[None]
