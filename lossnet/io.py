"""Images in, images out. Every format quirk lives here; the rest of lossnet sees (1, 3, H, W) RGB in [0, 1].

Reading handles PNG/JPEG/WebP/TIFF (8 and 16 bit), grayscale, alpha (composited on white), palette, CMYK
and EXIF orientation. Writing is atomic (temp file + rename), so a failed run never leaves half an image.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import LossnetError

MAX_PIXELS = 40_000_000  # beyond this we refuse: a 2-core machine should not try to decode it whole
MIN_SIDE = 16  # VGG needs a few pixels to pool over; smaller inputs are almost always a mistake
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}

Image.MAX_IMAGE_PIXELS = None  # we apply our own, clearer limit below


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise LossnetError(f"no such file: {path}")
    if path.is_dir():
        raise LossnetError(f"{path} is a directory, not an image")
    if path.stat().st_size == 0:
        raise LossnetError(f"{path} is empty")
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise LossnetError(f"{path} is not an image file (or in a format Pillow cannot read)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # damaged headers raise any of these
        raise LossnetError(f"cannot read {path}: {e}") from None


def _to_array(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 (H, W, 3) in [0, 1], keeping 16-bit precision."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float32) / (65535.0 if im.mode.startswith("I;16") or np.asarray(im).max() > 255 else 255.0)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        return np.repeat(np.clip(a / max(float(a.max()), 1.0), 0, 1)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


# EXIF orientation -> the numpy form of Pillow's `ImageOps.exif_transpose` for arrays Pillow cannot hold.
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.transpose(1, 0, 2),
           6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}


def _deep_tiff(path: Path, im: Image.Image) -> np.ndarray | None:
    """16-bit RGB(A) TIFF -> float32 (H, W, 3): Pillow reads these as 8-bit, tifffile keeps every bit."""
    bits = im.tag_v2.get(258, 8) if im.format == "TIFF" else 8
    if im.mode not in ("RGB", "RGBA") or max(bits if isinstance(bits, tuple) else (bits,)) <= 8:
        return None
    try:
        import tifffile
        a = tifffile.imread(path, key=0)
    except ImportError:
        return None
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or a.dtype != np.uint16:
        return None
    a = a.astype(np.float32) / 65535.0
    if a.shape[-1] == 4:  # composite on white, as for 8-bit images
        a = a[..., :3] * a[..., 3:] + (1.0 - a[..., 3:])
    orient = _ORIENT.get(im.getexif().get(0x0112, 1))
    return orient(a) if orient else a


def load_image(path: str | os.PathLike, size: int | None = None, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Read an image as (1, 3, H, W) RGB float in [0, 1]; `size` resizes so the longest side is `size`."""
    path = Path(path)
    im = _open(path)
    w, h = im.size
    if size is not None and size * size * min(w, h) / max(w, h) > max_pixels:  # the result, not the file
        raise LossnetError(f"a longest side of {size} would make {path} a {size * size * min(w, h) / max(w, h) / 1e6:.0f} "
                           f"MP image, over the {max_pixels / 1e6:.0f} MP limit: use a smaller --size")
    if size is not None and w * h > max_pixels:
        im.draft("RGB", (size, size))  # JPEG decodes at 1/2, 1/4, 1/8 scale for free
        w, h = im.size
    if w * h > max_pixels:
        raise LossnetError(f"{path} is {w}x{h} ({w * h / 1e6:.0f} MP), over the {max_pixels / 1e6:.0f} MP limit: downscale it first")
    if min(w, h) < MIN_SIDE:
        raise LossnetError(f"{path} is {w}x{h}: images need at least {MIN_SIDE} pixels per side")
    try:
        array = _deep_tiff(path, im)
        if array is None:
            array = _to_array(ImageOps.exif_transpose(im))
    except (OSError, SyntaxError, ValueError) as e:
        raise LossnetError(f"cannot decode {path}: {e} (truncated or corrupt file?)") from None
    if array.dtype.kind == "f" and not np.isfinite(array).all():  # float TIFFs can hold NaN / inf
        raise LossnetError(f"{path} holds non-finite pixel values (NaN or inf)")
    # contiguous (1, 3, H, W), not a permuted view of (H, W, 3): L-BFGS flattens gradients with .view()
    image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]
    return resize_longest(image, size) if size else image


def resize_longest(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, C, H, W) so that max(H, W) == size, keeping the aspect ratio."""
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    return resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))


def bundled_photo(name: str = "astronaut", size: int | None = None) -> torch.Tensor:
    """One of scikit-image's bundled photos (astronaut, chelsea, coffee, ...) as (1, 3, H, W) in [0, 1],
    its longest side resized to `size`: images that ship with a registry package, for demos, galleries and
    benchmarks that must run without ../shared."""
    from skimage import data
    array = np.asarray(getattr(data, name)(), dtype=np.float32)[..., :3] / 255.0
    image = torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()  # contiguous: L-BFGS flattens it
    return image if size is None else resize_longest(image, size).contiguous()


def resize(image: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize; 'area' when shrinking a lot would alias otherwise."""
    if tuple(image.shape[-2:]) == tuple(hw):
        return image
    return F.interpolate(image, size=hw, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


class Picture(torch.Tensor):
    """An image tensor, (1, 3, H, W) or (3, H, W) in [0, 1], that shows itself in Jupyter (`_repr_png_`) and
    converts with `.pil()`: what lossnet's entry points (stylize, texture, invert, apply, upscale) return.
    Any operation on it gives a plain tensor, so it behaves as one everywhere else. `history`: the pixel
    loop's rows ({"iter", "loss", term...} per iteration) for the methods that optimise it, else empty."""

    history: list | tuple = ()  # set per instance by `picture`

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))

    def pil(self) -> Image.Image:
        return to_pil(self.as_subclass(torch.Tensor).detach().cpu())

    def _repr_png_(self) -> bytes:
        import io
        buffer = io.BytesIO()
        self.pil().save(buffer, format="PNG")
        return buffer.getvalue()


def picture(image: torch.Tensor, history: list | None = None) -> Picture:
    """`image` (no copy) as a Picture, with the loop's `history` when it has one."""
    result = image.as_subclass(Picture)
    result.history = list(history or [])
    return result


def to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> 8-bit RGB Pillow image."""
    if image.dim() == 4:
        image = image[0]
    array = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail before the work, not after: the output's folder must exist and be writable, its suffix known."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise LossnetError(f"cannot write {path}: use one of {', '.join(sorted(SAVE_FORMATS))}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise LossnetError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise LossnetError(f"output folder is not writable: {folder}")
    if path.is_dir():
        raise LossnetError(f"output {path} is a directory")
    return path


def atomic_write(path: Path, write) -> Path:
    """Call write(tmp_path), then rename onto `path`; the temp file goes away whatever happens."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write atomically as PNG / JPEG / WebP / TIFF, chosen by suffix."""
    path = check_writable(path)
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    fmt = SAVE_FORMATS[path.suffix.lower()]
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt, **options))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in `folder`, sorted; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LossnetError(f"no such folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise LossnetError(f"no images in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files
