"""Video in, video out, frame by frame (imageio + its bundled ffmpeg); a folder of frames works as a video.

Frames are read lazily and written to a temporary file (or folder) that replaces the output only when every
frame is done, so a failed or interrupted run leaves nothing behind. A video keeps the input's frame count,
frame rate and audio (copied, or re-encoded when the output's container cannot hold the codec).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from .errors import LossnetError
from .io import atomic_write, list_images, load_image, resize_longest

QUALITY = 8  # imageio's 0-10 scale for libx264 (8: visually lossless for photos at a modest size)
# ffmpeg's RGB <-> YUV 4:2:0 conversion by default repeats each chroma sample over a 2x2 block when decoding.
# That block grid is fixed to the frame, not the scene, so on anything that moves it reads as colour flicker
# (it doubled the measured warping error of a stylised moving-object clip) and feeds the networks blocky
# colour edges. Interpolated chroma and exact rounding, both ways, as video players do it.
SWS_FLAGS = ["-sws_flags", "bicubic+full_chroma_int+accurate_rnd"]


def open_video(path: str | os.PathLike):
    """(reader, fps) for a video file; a clear error for anything that is not one."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.is_file():
        raise LossnetError(f"no such file: {path}")
    try:
        reader = imageio.get_reader(str(path), format="FFMPEG", output_params=SWS_FLAGS)
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


def has_audio(path: str | os.PathLike) -> bool:
    """Whether ffmpeg finds an audio stream in `path` (it lists the streams when asked for no output)."""
    import imageio_ffmpeg
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                           capture_output=True, text=True, errors="replace")
    return re.search(r"Stream #\S+.*: Audio:", probe.stderr) is not None


def _mux_audio(video_only: Path, audio_from: Path, out: Path) -> None:
    """`out`: the video stream of `video_only` and every audio stream of `audio_from`, the video not re-encoded."""
    import imageio_ffmpeg
    base = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(video_only), "-i", str(audio_from),
            "-map", "0:v:0", "-map", "1:a", "-c:v", "copy"]
    # Copy the audio when the output's container takes its codec; else the container's default encoder.
    for audio_codec in (["-c:a", "copy"], []):
        result = subprocess.run([*base, *audio_codec, str(out)], capture_output=True, text=True, errors="replace")
        if result.returncode == 0:
            return
    last = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
    raise LossnetError(f"cannot put the audio of {audio_from} into {out.suffix} video: {last[:200]}")


def _encode(frames, path: Path, fps: float) -> int:
    """H.264 frames into `path` (not atomic: callers write to a temp file); returns the frame count."""
    import imageio.v2 as imageio

    count = 0
    writer = imageio.get_writer(str(path), format="FFMPEG", fps=fps, codec="libx264", quality=QUALITY,
                                macro_block_size=1, pixelformat="yuv420p", output_params=SWS_FLAGS)
    try:
        for frame in frames:
            array = (_even(frame)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            writer.append_data(array)
            count += 1
    finally:
        writer.close()
    if count == 0:
        raise LossnetError("the video has no frames")
    return count


def write_frames(frames, path: str | os.PathLike, fps: float, audio_from: str | os.PathLike | None = None) -> int:
    """Write (1, 3, H, W) frames in [0, 1] as H.264 (atomically), with the audio of `audio_from` if it has any;
    returns the frame count."""
    count = 0
    audio = audio_from is not None and has_audio(audio_from)

    def write(tmp: Path):
        nonlocal count
        if not audio:
            count = _encode(frames, tmp, fps)
            return
        video_only = tmp.with_name(f"{tmp.stem}.video{tmp.suffix}")
        try:
            count = _encode(frames, video_only, fps)
            _mux_audio(video_only, Path(audio_from), tmp)
        finally:
            video_only.unlink(missing_ok=True)
    atomic_write(Path(path), write)
    return count


def _natural(path: Path):
    """Sort key: frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class Frames:
    """The frames of a video file, or of a folder of images taken in natural order (frame2 before frame10), read
    lazily and resized to longest side `size` when given. `fps` is None for a folder; `count` is exact."""

    def __init__(self, src: str | os.PathLike, size: int | None = None):
        self.src, self.size = Path(src), size
        if self.src.is_dir():
            self.files = sorted(list_images(self.src), key=_natural)
            stems = [p.stem for p in self.files]
            if len(set(stems)) < len(stems):
                twice = sorted({s for s in stems if stems.count(s) > 1})
                raise LossnetError(f"{self.src} has several frames named {twice[0]} (with different suffixes)")
            self.fps, self.count = None, len(self.files)
        else:
            self.files = None
            reader, self.fps = open_video(self.src)
            try:
                self.count = reader.count_frames()
            except Exception as e:  # noqa: BLE001 - ffmpeg could open it but not decode it to the end
                raise LossnetError(f"cannot decode {self.src}: {(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None
            finally:
                reader.close()

    @property
    def names(self) -> list[str]:
        return [p.stem for p in self.files] if self.files is not None else [f"{i:06d}" for i in range(self.count)]

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.files is not None:
            first = None
            for path in self.files:
                frame = load_image(path, self.size)
                if first is not None and frame.shape != first:
                    raise LossnetError(f"{path} is {frame.shape[-1]}x{frame.shape[-2]} but the first frame of "
                                       f"{self.src} is {first[-1]}x{first[-2]}: frames of one sequence share a size")
                first = frame.shape
                yield frame
            return
        reader, _ = open_video(self.src)
        try:
            for frame in frames_of(reader, self.src):
                yield resize_longest(frame, self.size) if self.size else frame
        finally:
            reader.close()


def _write_folder(frames: Iterable[torch.Tensor], out: Path, names: list[str]) -> int:
    """Frames as out/NAME.png, staged in a hidden folder and moved in only once every frame is done."""
    from .io import save_image

    if out.exists() and not out.is_dir():
        raise LossnetError(f"output {out} exists and is not a folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".partial{os.getpid()}"
    staging.mkdir()
    try:
        count = 0
        for name, frame in zip(names, frames):
            save_image(frame, staging / f"{name}.png")
            count += 1
        for name in names[:count]:
            os.replace(staging / f"{name}.png", out / f"{name}.png")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
    return count


def map_frames(src: str | os.PathLike, out: str | os.PathLike,
               run: Callable[[Iterator[torch.Tensor]], Iterable[torch.Tensor]], size: int | None = None,
               show_progress: bool = True, desc: str = "stylize") -> tuple[int, float | None]:
    """Turn every frame of `src` (a video, or a folder of frames) into a frame of `out` (a video with the same
    fps, frame count and audio, or a folder of PNGs with the frames' names). `run` maps the stream of input
    frames (resized to `size`) to the stream of results, so it can carry state from frame to frame (the
    temporal methods) or batch them. A bar (per frame, with an ETA) follows it. Returns (frames, fps or None)."""
    from .progress import progress

    out = Path(out)
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise LossnetError(f"output folder does not exist: {out.parent}")
    source = Frames(src, size)
    bar = progress(source.count, desc, show_progress, faster="a smaller --size")

    def counted(results):
        for result in results:
            yield result
            bar.update(1)
    results = counted(run(iter(source)))
    if source.fps is None:
        count = _write_folder(results, out, source.names)
    else:
        count = write_frames(results, out, source.fps, audio_from=src)
    bar.close()
    return count, source.fps


def _batches(frames: Iterable[torch.Tensor], size: int) -> Iterator[list[torch.Tensor]]:
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def apply_frames(run: Callable[[torch.Tensor], torch.Tensor], src, out, size: int | None = None,
                 batch_size: int = 1, temporal=None, show_progress: bool = True,
                 desc: str = "apply") -> tuple[int, float | None]:
    """`map_frames` with a per-image method: `run` maps a batch of frames (N, 3, H, W) to their results,
    `batch_size` frames at a time. With `temporal` (a `lossnet.temporal.TemporalConfig`, or anything whose
    `stabiliser()` gives a `(frame, result) -> result` to call on every frame in order) each result is
    blended with the previous one carried along the optical flow, so strokes stay on the scene (the results
    must then have the frames' size). Returns (frames, fps or None)."""

    def results(frames):
        stable = temporal.stabiliser() if temporal is not None else None
        for batch in _batches(frames, batch_size):
            for frame, result in zip(batch, run(torch.cat(batch)).split(1)):
                if stable is None:
                    yield result
                elif result.shape[-2:] != frame.shape[-2:]:
                    raise LossnetError("temporal blending needs results of the frames' size: it does not apply "
                                       "to a method that changes the size (super-resolution)")
                else:
                    yield stable(frame, result)
    return map_frames(src, out, results, size, show_progress, desc)


def count_frames(path) -> int:
    return Frames(path).count
