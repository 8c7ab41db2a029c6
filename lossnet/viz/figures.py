"""Turning results into pictures: tensor grids and heat maps, and matplotlib figures written atomically.

Matplotlib is used through `matplotlib.figure.Figure` (no pyplot, no global backend state, no display).
"""
from __future__ import annotations

import io as _io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..io import atomic_write, check_writable


def normalize(t: torch.Tensor, dims=None) -> torch.Tensor:
    """Scale to [0, 1] (over all of t, or separately along everything but dim 0 when dims='each')."""
    if dims == "each":
        flat = t.flatten(1)
        low, high = flat.min(1).values, flat.max(1).values
        shape = (-1,) + (1,) * (t.dim() - 1)
        return (t - low.view(shape)) / (high - low).clamp(min=1e-12).view(shape)
    return (t - t.min()) / (t.max() - t.min()).clamp(min=1e-12)


def colorize(maps: torch.Tensor, cmap: str = "viridis") -> torch.Tensor:
    """(N, H, W) maps, each scaled to [0, 1], -> (N, 3, H, W) colours of a matplotlib colormap."""
    from matplotlib import colormaps

    rgb = colormaps[cmap](normalize(maps.detach().float(), "each").cpu().numpy())[..., :3]
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float()


def grid(images: torch.Tensor, columns: int, pad: int = 2, background: float = 1.0) -> torch.Tensor:
    """(N, 3, h, w) -> (1, 3, H, W): a grid with `columns` images per row, `pad` pixels apart."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    out = torch.full((1, c, rows * (h + pad) + pad, columns * (w + pad) + pad), background)
    for k, image in enumerate(images):
        top, left = pad + (k // columns) * (h + pad), pad + (k % columns) * (w + pad)
        out[0, :, top:top + h, left:left + w] = image
    return out


def overlay(image: torch.Tensor, heat: torch.Tensor, cmap: str = "jet", alpha: float = 0.5) -> torch.Tensor:
    """(1, 3, H, W) image with an (H, W) heat map blended over it."""
    return (1 - alpha) * image.cpu() + alpha * colorize(heat[None], cmap)


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> (H, W, 3) for imshow."""
    image = image[0] if image.dim() == 4 else image
    return image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def save_figure(fig, path, dpi: int = 80) -> Path:
    """Write a matplotlib figure as PNG atomically (render to memory first: no half-written file)."""
    path = check_writable(path)
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def panels(items: Sequence[tuple[str, object]], path, size: float = 3.0, cmap: str = "inferno") -> Path:
    """One row of titled panels; each item is an image (1, 3, H, W) or a map (H, W) drawn with `cmap`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * len(items), size * 1.1))
    for k, (title, item) in enumerate(items):
        ax = fig.add_subplot(1, len(items), k + 1)
        if item.dim() == 2:
            ax.imshow(item.detach().cpu().numpy(), cmap=cmap)
        else:
            ax.imshow(to_numpy(item))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return save_figure(fig, path)


def image_rows(rows: Sequence[tuple[str, torch.Tensor, Sequence[str]]], path, size: float = 1.6) -> Path:
    """Rows of small captioned images: (row label, (K, 3, h, w) images, K captions)."""
    from matplotlib.figure import Figure

    columns = max(len(images) for _, images, _ in rows)
    fig = Figure(figsize=(size * columns, size * 1.15 * len(rows)))
    for r, (label, images, captions) in enumerate(rows):
        for k, (image, caption) in enumerate(zip(images, captions)):
            ax = fig.add_subplot(len(rows), columns, r * columns + k + 1)
            ax.imshow(to_numpy(image))
            ax.set_title(caption, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(label, fontsize=8)
    return save_figure(fig, path)


def thumbnail_map(points: np.ndarray, images: torch.Tensor, path, title: str, zoom: float = 1.0) -> Path:
    """Images drawn as thumbnails at their 2-D coordinates (an embedding map)."""
    from matplotlib.figure import Figure
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    fig = Figure(figsize=(8, 8))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0)  # sets the limits
    for (px, py), image in zip(points, images):
        ax.add_artist(AnnotationBbox(OffsetImage(to_numpy(image), zoom=zoom), (px, py), frameon=False))
    margin = 0.08 * (points.max(0) - points.min(0) + 1e-9)
    ax.set_xlim(points[:, 0].min() - margin[0], points[:, 0].max() + margin[0])
    ax.set_ylim(points[:, 1].min() - margin[1], points[:, 1].max() + margin[1])
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


def robust(heat: torch.Tensor, q: float = 0.99) -> torch.Tensor:
    """Clip a heat map at its q-quantile so a few extreme pixels do not make the rest invisible."""
    return heat.clamp(max=float(torch.quantile(heat.flatten().float(), q)))


def signed_image(grad: torch.Tensor) -> torch.Tensor:
    """A signed (1, 3, H, W) gradient as a picture: grey is zero, 0.15 per standard deviation."""
    return (0.5 + 0.15 * (grad - grad.mean()) / (grad.std() + 1e-12)).clamp(0, 1)
