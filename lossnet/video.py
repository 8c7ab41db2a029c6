"""Video in, video out, frame by frame through a style network (imageio + its bundled ffmpeg).

Frames are read lazily and written to a temporary file that replaces the output only when every frame is
done, so a failed run leaves nothing behind. The output keeps the input's frame count and frame rate.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .errors import LossnetError
from .io import atomic_write, resize_longest


def open_video(path: str | os.PathLike):
    """(reader, fps) for a video file; a clear error for anything that is not one."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.is_file():
        raise LossnetError(f"no such file: {path}")
    try:
        reader = imageio.get_reader(str(path), format="FFMPEG")
        meta = reader.get_meta_data()
    except Exception as e:  # noqa: BLE001 - ffmpeg's many ways of saying "not a video"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LossnetError(f"cannot read {path} as a video: {first[:200]}") from None
    fps = float(meta.get("fps") or 0)
    if not fps > 0:
        reader.close()
        raise LossnetError(f"{path} has no frame rate: is it a video?")
    return reader, fps


def frames_of(reader, path):
    try:
        for frame in reader:
            yield torch.from_numpy(np.asarray(frame, dtype=np.float32)[..., :3] / 255.0).permute(2, 0, 1)[None]
    except Exception as e:  # noqa: BLE001
        raise LossnetError(f"cannot decode {path}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None


def _even(image: torch.Tensor) -> torch.Tensor:
    """H.264 in yuv420p needs even sides: replicate the last row/column of odd-sized frames."""
    h, w = image.shape[-2:]
    return torch.nn.functional.pad(image, (0, w % 2, 0, h % 2), mode="replicate") if h % 2 or w % 2 else image


def write_frames(frames, path: str | os.PathLike, fps: float) -> int:
    """Write (1, 3, H, W) frames in [0, 1] as H.264 (atomically); returns the frame count."""
    import imageio.v2 as imageio

    count = 0

    def write(tmp):
        nonlocal count
        writer = imageio.get_writer(str(tmp), format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                    macro_block_size=1, pixelformat="yuv420p")
        try:
            for frame in frames:
                array = (_even(frame)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
                writer.append_data(array)
                count += 1
        finally:
            writer.close()
        if count == 0:
            raise LossnetError("the video has no frames")
    atomic_write(Path(path), write)
    return count


def stylize_video(net, src, out, style=None, size: int | None = None, batch_size: int = 4, **opts) -> tuple[int, float]:
    """Stylise every frame of `src` into `out` (same fps, same frame count); returns (frames, fps)."""
    from .fast import apply

    out = Path(out)
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise LossnetError(f"output folder does not exist: {out.parent}")
    reader, fps = open_video(src)

    def stylised():
        batch = []
        for frame in frames_of(reader, src):
            batch.append(resize_longest(frame, size) if size else frame)
            if len(batch) == batch_size:
                yield from apply(net, torch.cat(batch), style, **opts).split(1)
                batch = []
        if batch:
            yield from apply(net, torch.cat(batch), style, **opts).split(1)
    try:
        count = write_frames(stylised(), out, fps)
    finally:
        reader.close()
    return count, fps


def count_frames(path) -> int:
    reader, _ = open_video(path)
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()
