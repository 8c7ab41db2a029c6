"""Run an image-to-image network on a large image in tiles that carry their context (cut off again, so no
seam shows), only when memory needs it.

Tiles cost time (their overlap is computed twice, and a style network needs a statistics pass over the whole
image), so feed-forward style and super-resolution run an image whole whenever it fits: `auto_tile` measures
the network's peak memory per pixel (`peak_bytes`, on two small inputs, once per network and precision) and
compares the image's need with the memory available (`memory_budget`, or the caller's `--max-memory`); when it
does not fit, the tiles are as large as fit. pix2pix runs whole: its U-Net sees the image at 1/256 of its size
and needs all of it. `pad_to_multiple` pads an image to the sizes a network takes, and crops its output back.
"""
from __future__ import annotations

import math
import os
import weakref
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# Below this many bytes a pixel no network of lossnet's comes (measured by `bytes_per_pixel`: the full style
# network ~320 B/pixel in fp32): an image that fits at this rate runs whole without measuring anything.
GENEROUS_BYTES_PER_PIXEL = 2048
MIN_TILE = 256  # smaller tiles are mostly overlap


def _spans(size: int, tile: int, margin: int, align: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (start, end) of each tile's input and (keep_start, keep_end) of the part of it that is
    kept. The kept parts split the axis evenly; each tile adds `margin` pixels of context on both sides (cut
    off again, so no pixel is computed near a tile's edge) and starts on a multiple of `align` (a network
    that downsamples by 4 sees the same pixel grid in every tile as in the whole image)."""
    if size <= tile:
        return [(0, size, 0, size)]
    core = max(align, tile - 2 * margin - align)
    n = math.ceil(size / core)
    cuts = [0] + [round(i * size / n) // align * align for i in range(1, n)] + [size]
    spans = []
    for keep_start, keep_end in zip(cuts, cuts[1:]):
        start = max(0, keep_start - margin) // align * align
        spans.append((start, min(size, keep_end + margin), keep_start, keep_end))
    return spans


@torch.no_grad()
def tiled(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int, overlap: int = 16,
          scale: int = 1, align: int = 1) -> torch.Tensor:
    """fn(image) computed in tiles of about tile x tile input pixels: each tile carries `overlap` pixels of
    context around the part of it that is kept, so where `fn`'s reach is within `overlap` the result equals
    fn(image). `fn` maps (N, C, h, w) to (N, C', scale*h, scale*w); `align`: tiles start on multiples of it (a
    network's total stride). Memory is bounded by one tile."""
    h, w = image.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(image)
    overlap = max(0, min(overlap, tile // 4))
    out = None
    for y0, y1, ky0, ky1 in _spans(h, tile, overlap, align):
        for x0, x1, kx0, kx1 in _spans(w, tile, overlap, align):
            piece = fn(image[..., y0:y1, x0:x1])
            if out is None:
                out = torch.empty(*piece.shape[:-2], h * scale, w * scale, dtype=piece.dtype)
            out[..., ky0 * scale:ky1 * scale, kx0 * scale:kx1 * scale] = \
                piece[..., (ky0 - y0) * scale:(ky1 - y0) * scale, (kx0 - x0) * scale:(kx1 - x0) * scale].cpu()
    return out


class _LiveTensors(TorchDispatchMode):
    """Counts the bytes of every tensor storage an operation creates until it is freed; `peak` is the most
    alive at once (checked after each operation, so a storage freed inside one counts until it returns: a
    slight overestimate)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[object, int]] = {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.multiprocessing.reductions import StorageWeakRef
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.now -= self.live.pop(key)[1]
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                if storage.data_ptr() not in self.live:
                    self.live[storage.data_ptr()] = (StorageWeakRef(storage), storage.nbytes())
                    self.now += storage.nbytes()
        self.peak = max(self.peak, self.now)
        return out


def peak_bytes(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor) -> int:
    """The most bytes of tensors that `fn(image)` holds at once (its own allocations: not `image`)."""
    with torch.no_grad(), _LiveTensors() as live:
        fn(image)
    return live.peak


def bytes_per_pixel(fn: Callable[[torch.Tensor], torch.Tensor], channels: int = 3,
                    sides: tuple[int, int] = (128, 192)) -> tuple[float, float]:
    """(bytes per input pixel, fixed bytes) of `fn`'s peak memory: a line through its peaks on two square inputs
    (after a warm-up, so that one-time copies such as bf16 weights are not counted per pixel)."""
    fn(torch.rand(1, channels, sides[0], sides[0]))
    small, large = (peak_bytes(fn, torch.rand(1, channels, s, s)) for s in sides)
    per_pixel = max(0.0, (large - small) / (sides[1] ** 2 - sides[0] ** 2))
    return per_pixel, max(0.0, small - per_pixel * sides[0] ** 2)


def memory_budget(max_memory: float | None = None) -> int:
    """Bytes one pass may use: `max_memory` GiB when given, else half of the memory available now (the
    kernel's MemAvailable, or a container's limit when lower): the rest is left for the input and output,
    the allocator's slack and whatever else runs."""
    if max_memory is not None:
        return int(max_memory * 2 ** 30)
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # cgroup v2: the container's limit less what it uses
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            free = int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = free if available is None else min(available, free)
    except (OSError, ValueError):
        pass
    if available is None:  # no /proc (macOS, Windows): the physical memory
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            available = 4 * 2 ** 30
    return available // 2


_MEASURED: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def auto_tile(net: torch.nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
              tile: int | None = None, max_memory: float | None = None, key: str = "") -> int:
    """The tile side for `fn` (which runs `net`) on `image`: 0 (run whole) when the image fits in the memory
    budget, else the largest side, a multiple of 32, whose tile fits. `tile`: None decides from memory alone; 0
    never tiles; N caps the side at N (`--tile`). `key` tells apart measures of one network (its precision)."""
    if tile == 0:
        return 0
    n, channels, h, w = image.shape
    budget = memory_budget(max_memory)
    if n * h * w * GENEROUS_BYTES_PER_PIXEL <= budget:  # fits whatever the network: nothing to measure
        return 0 if tile is None or max(h, w) <= tile else tile
    measured = _MEASURED.setdefault(net, {})
    if key not in measured:
        measured[key] = bytes_per_pixel(fn, channels)
    per_pixel, fixed = measured[key]
    room = max(budget - fixed, 0)
    if n * h * w * per_pixel <= room and (tile is None or max(h, w) <= tile):
        return 0
    side = int(math.sqrt(room / max(per_pixel * n, 1e-9))) // 32 * 32
    side = max(MIN_TILE, side)  # below it the overlap is most of the work: better to run slowly than not at all
    return min(side, tile) if tile is not None else side


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


def shrunk(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """`image` downscaled to about `pixels` pixels (its longest side at least 16), or itself if not larger: what
    a tiled pass takes its whole-image statistics from."""
    from .io import resize_longest
    h, w = image.shape[-2:]
    if h * w <= pixels:
        return image
    return resize_longest(image, max(16, int(max(h, w) * math.sqrt(pixels / (h * w)))))
