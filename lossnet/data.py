"""Training data for the generator loop: photo crops, the SR degradation, pix2pix pairs, an endless batch stream.

Every item is float in [0, 1] (pix2pix maps to [-1, 1] for its Tanh itself). A data set is anything with
`len()` and `sample(index, generator) -> item | None`; all its randomness (crop, flip) comes from
`generator`, and `generator=None` means the deterministic evaluation transform (centre crop, no flip).
A `BatchStream` (`infinite_batches`) derives a generator from (seed, epoch, position) for every item and a
shuffled order from (seed, epoch); `StepBatches` positions it from the training step, so a batch is a function
of (seed, step) and a resumed run replays nothing.

A file that cannot be read is skipped with a `SkippedFileWarning` naming it (once), and training goes on;
only a data set with nothing usable is an error. In the two-folder pix2pix layout a pair whose images differ
in size is skipped the same way: pix2pix needs pixel-aligned pairs, and resizing one side would only hide
a misaligned pair; one bad pair should not stop a long run.
"""
from __future__ import annotations

import collections
import itertools
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import LossnetError
from .io import IMAGE_SUFFIXES, load_image, resize

DIRECTIONS = ("AtoB", "BtoA")


class SkippedFileWarning(UserWarning):
    """An image or pair left out of training; the message names the file."""


def _skip(path: Path, reason: str) -> None:
    message = f"skipping: {reason}" if str(path) in reason else f"skipping {path}: {reason}"  # name it once
    warnings.warn(message, SkippedFileWarning, stacklevel=2)


def _image_files(folder: Path) -> list[Path]:
    """Images anywhere under `folder`, sorted, leaving out hidden files and folders (.ipynb_checkpoints, ...)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Images anywhere under `folder`, sorted; an error if the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LossnetError(f"no such folder: {folder}")
    files = _image_files(folder)
    if not files:
        raise LossnetError(f"no images under {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


class _Reader:
    """load_image that warns about and then remembers unreadable files, so each is decoded and reported once."""

    def __init__(self):
        self.skipped: set[Path] = set()

    def __call__(self, path: Path) -> torch.Tensor | None:
        if path in self.skipped:
            return None
        try:
            return load_image(path)
        except LossnetError as e:
            self.skip(path, str(e))
            return None

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.add(path)
        _skip(path, reason)


def _cover(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize up (keeping the aspect) so both sides are at least `size`; larger images are left alone."""
    h, w = image.shape[-2:]
    if min(h, w) >= size:
        return image
    scale = size / min(h, w)
    return resize(image, (max(size, round(h * scale)), max(size, round(w * scale))))


def _crop(image: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """A size x size crop: random with a generator, centred without."""
    h, w = image.shape[-2:]
    if generator is None:
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top = int(torch.randint(h - size + 1, (), generator=generator))
        left = int(torch.randint(w - size + 1, (), generator=generator))
    return image[..., top:top + size, left:left + size]


class RandomCrops:
    """Square crops of every photo under `folder`: (3, crop_size, crop_size) in [0, 1].

    Photos smaller than the crop are resized up first. `multiple_of` (the SR scale) checks that the crop
    degrades to a whole LR image. With `zoom`, the crop's side is drawn between `crop_size` and the photo's
    shorter side and the crop is resized to `crop_size` (the whole photo can be seen, at several scales: style
    training); without it crops keep the photo's own scale (super-resolution, whose degradation model needs it).
    `flip` mirrors half of them. Without a generator (evaluation) the crop is the centred one, never flipped.
    """

    def __init__(self, folder: str | os.PathLike, crop_size: int = 256, multiple_of: int = 1,
                 zoom: bool = False, flip: bool = False):
        if crop_size < 1 or crop_size % multiple_of:
            raise LossnetError(f"crop size {crop_size} must be a positive multiple of {multiple_of} "
                               f"(the super-resolution scale), e.g. {max(1, crop_size // multiple_of) * multiple_of}")
        self.folder, self.crop_size, self.zoom, self.flip = Path(folder), crop_size, zoom, flip
        self.files = find_images(folder)
        self.read = _Reader()

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        image = self.read(self.files[index])
        if image is None:
            return None
        image = _cover(image, self.crop_size)
        side = self.crop_size
        if self.zoom:
            shortest = min(image.shape[-2:])
            side = shortest if generator is None else \
                self.crop_size + int(torch.randint(shortest - self.crop_size + 1, (), generator=generator))
        crop = resize(_crop(image, side, generator), (self.crop_size, self.crop_size))[0]
        if self.flip and generator is not None and torch.rand((), generator=generator) < 0.5:
            crop = crop.flip(-1)
        return crop


def photo_crops(folders: Sequence[str | os.PathLike], crop_size: int, **options) -> "Concat":
    """`RandomCrops(folder, crop_size, **options)` of every training folder as one data set (--data DIR ...)."""
    if not folders:
        raise LossnetError("no training folder given (--data DIR)")
    return Concat([RandomCrops(f, crop_size, **options) for f in folders])


# --- super-resolution degradation (Johnson et al. sec. 4.2: Gaussian blur sigma 1.0, bicubic downsampling)

def gaussian_blur(image: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), radius 3 sigma (at least 1), reflected borders. The SR
    degradation here, the class-model regulariser (lossnet.viz.class_model) and the video blend's detail
    (lossnet.temporal.blend)."""
    # at most the image's shorter side less one (what reflection padding allows): a wider kernel would only
    # cost memory (sigma 1e9 would need 24 GB), and this one is already flat across the image
    radius = max(1, min(math.ceil(3 * sigma), min(image.shape[-2:]) - 1))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(image.shape[1], 1, 1, 1)  # one kernel per channel
    padded = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    c = image.shape[1]
    return F.conv2d(F.conv2d(padded, kernel, groups=c), kernel.transpose(2, 3), groups=c)


def modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """The top-left crop whose sides are multiples of `scale`, as SR benchmarks evaluate."""
    h, w = image.shape[-2:]
    return image[..., :h - h % scale, :w - w % scale]


def degrade(hr: torch.Tensor, scale: int, sigma: float = 1.0) -> torch.Tensor:
    """HR (N, 3, H, W) or (3, H, W) -> LR of exactly H/scale x W/scale: blur, then bicubic downsampling.

    The blur is the anti-aliasing, so the bicubic resize runs without its own (antialias=False).
    """
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise LossnetError(f"HR image {w}x{h} is not a multiple of the scale {scale}: crop it first (modcrop)")
    batch = hr if hr.dim() == 4 else hr[None]
    lr = F.interpolate(gaussian_blur(batch, sigma), size=(h // scale, w // scale), mode="bicubic",
                       align_corners=False, antialias=False).clamp(0, 1)
    return lr if hr.dim() == 4 else lr[0]


def sr_pair(hr_crop: torch.Tensor, scale: int, sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) training pair from HR crops (one or a batch)."""
    return degrade(hr_crop, scale, sigma), hr_crop


# --- pix2pix pairs

def _folder_pairs(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path]]:
    """Match A/ and B/ by relative path, or by path without suffix (A/1.jpg <-> B/1.png); warn on a missing B."""
    b_files = _image_files(b_dir)
    by_name = {p.relative_to(b_dir): p for p in b_files}
    by_stem = {p.relative_to(b_dir).with_suffix(""): p for p in b_files}
    pairs = []
    for a in _image_files(a_dir):
        rel = a.relative_to(a_dir)
        b = by_name.get(rel) or by_stem.get(rel.with_suffix(""))
        if b is None:
            _skip(a, f"no image of the same name in {b_dir}")
        else:
            pairs.append((a, b))
    return pairs


class PairedImages:
    """pix2pix pairs as (input, target), each (3, H, W) in [0, 1], transformed identically.

    `root` holds either A|B images side by side (the facades layout: split at width / 2, A left) or two
    folders `A/` and `B/` with matching file names. `direction` "AtoB" gives (A, B), "BtoA" (B, A); for
    facades (photo left, labels right) labels -> photo is BtoA. Transforms, as the reference: resize to
    `load_size` x `load_size` (square), random `crop_size` crop, random horizontal flip; None/False turns
    each off. With `generator=None` (evaluation) the crop is centred and nothing is flipped.
    """

    def __init__(self, root: str | os.PathLike, direction: str = "AtoB", load_size: int | None = 286,
                 crop_size: int | None = 256, flip: bool = True):
        if direction not in DIRECTIONS:
            raise LossnetError(f"unknown direction {direction!r}: choose AtoB or BtoA")
        if load_size and crop_size and crop_size > load_size:
            raise LossnetError(f"crop size {crop_size} is larger than the load size {load_size}")
        self.root, self.direction = Path(root), direction
        self.load_size, self.crop_size, self.flip = load_size, crop_size, flip
        self.two_folders = (self.root / "A").is_dir() and (self.root / "B").is_dir()
        if self.two_folders:
            self.pairs = _folder_pairs(self.root / "A", self.root / "B")
        else:
            self.pairs = [(p, None) for p in find_images(self.root)]
        if not self.pairs:
            raise LossnetError(f"no image pairs in {self.root}: expected A|B images side by side, "
                               "or folders A/ and B/ with matching file names")
        self.read = _Reader()

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int) -> torch.Tensor | None:
        """(2, 3, H, W): A and B stacked, so one resize / crop / flip moves both alike."""
        a_path, b_path = self.pairs[index]
        a = self.read(a_path)
        if a is None:
            return None
        if b_path is None:  # side by side; an odd width loses its last column
            half = a.shape[-1] // 2
            return torch.cat([a[..., :half], a[..., half:2 * half]])
        b = self.read(b_path)
        if b is None:
            self.read.skipped.add(a_path)
            return None
        if a.shape != b.shape:
            self.read.skip(a_path, f"its pair {b_path} differs in size ({a.shape[-1]}x{a.shape[-2]} vs "
                                   f"{b.shape[-1]}x{b.shape[-2]}); pix2pix needs pixel-aligned pairs")
            return None
        return torch.cat([a, b])

    def sample(self, index: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        ab = self._load(index)
        if ab is None:
            return None
        if self.load_size:
            ab = resize(ab, (self.load_size, self.load_size))
        if self.crop_size:
            ab = _crop(_cover(ab, self.crop_size), self.crop_size, generator)
        if self.flip and generator is not None and torch.rand((), generator=generator) < 0.5:
            ab = ab.flip(-1)
        a, b = ab
        return (a, b) if self.direction == "AtoB" else (b, a)


class Subset:
    """Some of a data set's items, by index; samples like the data set."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def sample(self, index: int, generator: torch.Generator | None = None):
        return self.dataset.sample(self.indices[index], generator)


def holdout(dataset, fraction: float | int = 0.1, seed: int = 0) -> tuple[Subset, Subset]:
    """(train, held_out): a fixed random part (a fraction, or a count) held out, e.g. facades' missing val split.

    For evaluation without augmentation, wrap a second data set: `Subset(PairedImages(root, ...), held.indices)`.
    """
    n = len(dataset)
    count = fraction if isinstance(fraction, int) else round(n * fraction)
    if not 1 <= count < n:
        raise LossnetError(f"cannot hold out {fraction} of {n} items: leave at least one on each side")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[count:])), Subset(dataset, sorted(order[:count]))


# --- batches

def _generator(*keys: int) -> torch.Generator:
    """A generator seeded from a tuple of non-negative ints, well mixed (nearby keys give unrelated streams)."""
    state = np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)


def _collate(items: list):
    """Stack tensors, or tuples of tensors component by component."""
    first = items[0]
    if isinstance(first, tuple):
        return tuple(_collate([item[i] for item in items]) for i in range(len(first)))
    if any(item.shape != first.shape for item in items):
        raise LossnetError("images in a batch differ in size: set a crop size, or use batch size 1")
    return torch.stack(items)


class BatchStream:
    """Endless batches; each epoch is a new shuffle. `state()` -> dict, and `infinite_batches(..., state=s)`
    continues exactly there without replaying anything (every crop and flip depends only on its position)."""

    def __init__(self, dataset, batch_size: int, seed: int = 0, state: dict | None = None):
        if batch_size < 1:
            raise LossnetError(f"batch size must be at least 1, got {batch_size}")
        if seed < 0:
            raise LossnetError(f"seed must be non-negative, got {seed}")
        self.dataset, self.batch_size = dataset, batch_size
        state = state or {}
        self.seed = int(state.get("seed", seed))
        self.epoch, self.position = int(state.get("epoch", 0)), int(state.get("position", 0))
        self._order: tuple[int, list[int]] | None = None
        self._unreadable: set[int] = set()  # a data set skips an unreadable item every time

    def state(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def order(self, epoch: int) -> list[int]:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, torch.randperm(len(self.dataset), generator=_generator(self.seed, epoch)).tolist())
        return self._order[1]

    def __iter__(self):
        return self

    def __next__(self):
        items = []
        while len(items) < self.batch_size:
            if self.position >= len(self.dataset):
                self.epoch, self.position = self.epoch + 1, 0
            index = self.order(self.epoch)[self.position]
            item = self.dataset.sample(index, _generator(self.seed, self.epoch, self.position))
            self.position += 1
            if item is not None:
                items.append(item)
                continue
            self._unreadable.add(index)
            if len(self._unreadable) == len(self.dataset):
                raise LossnetError(f"none of the {len(self.dataset)} training items could be read (see the warnings)")
        return _collate(items)


def infinite_batches(dataset, batch_size: int, seed: int = 0, state: dict | None = None) -> BatchStream:
    """`next(stream)` -> a batch (a tensor, or a tuple of tensors for pairs); `stream.state()` to resume."""
    return BatchStream(dataset, batch_size, seed, state)


class Concat:
    """Several data sets as one (e.g. BSDS500 train/ + test/), sampled like any of them."""

    def __init__(self, datasets: Sequence):
        self.datasets = list(datasets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def sample(self, index: int, generator: torch.Generator | None = None):
        for d in self.datasets:
            if index < len(d):
                return d.sample(index, generator)
            index -= len(d)
        raise IndexError(index)


class StepBatches:
    """`batches(step)` for the generator loop: a batch depends only on (seed, step), so resume replays nothing
    (an unreadable file shifts only its own batch). Each call reads from its own `BatchStream` positioned from
    the step, so calls may run in several threads at once (`prefetched`)."""

    def __init__(self, dataset, batch_size: int, seed: int = 0):
        BatchStream(dataset, batch_size, seed)  # the same argument checks, now
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed

    def __call__(self, step: int):
        epoch, position = divmod(step * self.batch_size, len(self.dataset))
        return next(BatchStream(self.dataset, self.batch_size, self.seed,
                                {"seed": self.seed, "epoch": epoch, "position": position}))


def prefetched(make: Callable[[int], object], steps: Iterable[int], workers: int = 0) -> Iterator:
    """`make(step)` for each step, in order; with `workers` threads up to that many are made ahead, so decoding
    and cropping the next batches overlaps the training step (PIL and torch release the GIL). `make` must depend
    only on its step (`StepBatches`): the items are then the plain loop's, whatever the timing."""
    steps = iter(steps)
    if workers <= 0:
        yield from (make(step) for step in steps)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="lossnet-data") as pool:
        pending = collections.deque(pool.submit(make, step) for step in itertools.islice(steps, workers))
        try:
            while pending:
                item = pending.popleft().result()
                pending.extend(pool.submit(make, step) for step in itertools.islice(steps, 1))
                yield item
        finally:
            for future in pending:  # a stopped loop waits for nothing it no longer needs
                future.cancel()
