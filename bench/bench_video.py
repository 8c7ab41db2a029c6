"""Video stylisation with and without `--temporal`: warping error, the model's own objective, ms per frame.

    python bench/bench_video.py               # every bundled style model on three clips; writes BENCHMARKS.md
    python bench/bench_video.py starry,wave   # these models only (a model's name, or a .safetensors path)
    python bench/bench_video.py --no-write    # prints only
    python bench/bench_video.py strip         # the README's strip of frames, docs/gallery/video/strip.jpg

The clips are made from public photos in ../shared/data (never copied into the repository) and written, with
every stylised video, under ~/lossnet-video (LOSSNET_VIDEO_DIR): a pan across Tuebingen, a zoom into the
Golden Gate, and a disc cut from another photo moving across a slowly panning campus, 512x384 at 24 fps.

Per clip and model: the warping error (Lai et al.; `lossnet.temporal.warping_error`, DIS `medium` flow on the
input frames, a finer preset than the one `--temporal` blends with) of the per-frame and the `--temporal`
video, and the input's own as the floor; the model's own objective (its training objective, as
`bench_fast.quality` computes it) on every 4th frame of both, as a ratio; and ms per frame of
`lossnet.registry.apply_to_path` end to end (decode, network, flow and blend, encode) on one thread.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lossnet import fast, registry, temporal, video  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", "1"))
DATA = Path(os.environ.get("LOSSNET_DATA", ROOT.parent / "shared" / "data"))
WORK = Path(os.environ.get("LOSSNET_VIDEO_DIR", Path.home() / "lossnet-video"))
SIZE = (384, 512)  # H, W of every clip
FRAMES = 48
FPS = 24
OBJECTIVE_EVERY = 4  # the objective costs a VGG pass per frame: every 4th frame of each video


# ----------------------------------------------------------------------------- clips from still photos
def _read(path: Path) -> np.ndarray:
    from lossnet.io import load_image
    return load_image(path)[0].permute(1, 2, 0).numpy()


def _view(photo: np.ndarray, scale: float, x0: float, y0: float) -> np.ndarray:
    """The SIZE window whose top-left corner is (x0, y0) of `photo` magnified by `scale` (Lanczos, subpixel)."""
    import cv2
    m = np.float32([[1 / scale, 0, x0], [0, 1 / scale, y0]])  # output pixel -> photo pixel
    return cv2.warpAffine(photo, m, SIZE[::-1], flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def pan() -> list[np.ndarray]:
    """A left-to-right pan with a little drift down, 5.3 px a frame, across Tuebingen (1024x768)."""
    photo = _read(DATA / "content" / "tubingen.jpg")
    return [_view(photo, 1.0, 16 + 5.3 * t, 120 + 0.9 * t) for t in range(FRAMES)]


def zoom() -> list[np.ndarray]:
    """A zoom from the whole Golden Gate photo (979x734) to 1.7x, towards the bridge's tower."""
    photo = _read(DATA / "content" / "golden_gate.jpg")
    base = SIZE[1] / photo.shape[1]
    cx, cy = 0.62 * photo.shape[1], 0.45 * photo.shape[0]
    frames = []
    for t in range(FRAMES):
        s = base * 1.7 ** (t / (FRAMES - 1))
        frames.append(_view(photo, s, cx - (cx * base / s), cy - (cy * base / s)))
    return frames


def moving_object() -> list[np.ndarray]:
    """A disc cut from the sailboat photo crossing the Cornell campus (which pans 1 px a frame): the disc
    occludes and disoccludes the campus as it moves."""
    return _disc_crossing(_read(DATA / "content" / "cornell.jpg"), _read(DATA / "content" / "sailboat.jpg"), 0.85)


def public_object() -> list[np.ndarray]:
    """The same motion from public-domain photos that ship with scikit-image (a disc of `coffee` crossing the
    `astronaut`): the README's strip (../shared/data/content may not be published)."""
    from lossnet.io import bundled_photo
    def photo(name):
        return bundled_photo(name)[0].permute(1, 2, 0).numpy()
    return _disc_crossing(photo("astronaut"), photo("coffee"), 1.25)


def _disc_crossing(campus: np.ndarray, boat: np.ndarray, scale: float) -> list[np.ndarray]:
    radius = 80
    disc = _view(boat, 0.6, 40, 60)[:2 * radius, :2 * radius]
    yy, xx = np.mgrid[:2 * radius, :2 * radius] + 0.5
    alpha = np.clip(radius - np.hypot(xx - radius, yy - radius), 0, 1)[..., None].astype(np.float32)
    frames = []
    for t in range(FRAMES):
        frame = _view(campus, scale, 20 + 1.0 * t, 40).copy()
        x, y = int(round(-60 + 11.5 * t)), int(round(110 + 40 * np.sin(t / 9)))
        xs, ys = slice(max(x, 0), min(x + 2 * radius, SIZE[1])), slice(max(y, 0), min(y + 2 * radius, SIZE[0]))
        dx, dy = xs.start - x, ys.start - y
        a = alpha[dy:dy + ys.stop - ys.start, dx:dx + xs.stop - xs.start]
        d = disc[dy:dy + ys.stop - ys.start, dx:dx + xs.stop - xs.start]
        frame[ys, xs] = a * d + (1 - a) * frame[ys, xs]
        frames.append(frame)
    return frames


CLIPS = {"pan": pan, "zoom": zoom, "object": moving_object}
PUBLIC_CLIPS = {"object-public": public_object}  # for pictures that are published


def make_clips(folder: Path = WORK / "clips", clips: dict | None = None) -> dict[str, Path]:
    """Write each clip (default: the measured ones, CLIPS) as H.264 at FPS (once: an existing clip is reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in (clips or CLIPS).items():
        path = folder / f"{name}.mp4"
        if not path.is_file():
            frames = (torch.from_numpy(np.clip(f, 0, 1)).permute(2, 0, 1)[None] for f in make())
            video.write_frames(frames, path, FPS)
        paths[name] = path
    return paths


# ----------------------------------------------------------------------------- stylise and score
def styles_of(net) -> list:
    """Each style of a model as its style vector (None: a one-style model)."""
    return [None] if net.n_styles == 1 else [fast.style_weights(net, k) for k in range(net.n_styles)]


def stylise(net, style, clip: Path, out: Path, cfg: temporal.TemporalConfig | None) -> float:
    """`lossnet stylize CLIP --model ... [--temporal]` through the library; returns ms per frame, end to end."""
    start = time.perf_counter()
    frames = registry.apply_to_path(net, clip, out, {"style": style}, batch_size=4, temporal=cfg, progress=False).count
    return (time.perf_counter() - start) * 1000 / frames


def objective_mean(cfg, loss_net, grams, frames, results, every: int = OBJECTIVE_EVERY) -> dict[str, float]:
    """The model's own objective (each term and the total), averaged over every `every`-th frame."""
    rows = [fast.objective_value(cfg, loss_net, f, r, grams)
            for i, (f, r) in enumerate(zip(frames, results)) if i % every == 0]
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def measure(models=None, clips=None) -> tuple[list[dict], list[dict]]:
    """(quality rows: one per clip, model and style; speed rows: ms per frame on the first clip, the better of
    the quality run and one more run of each)."""
    from bench_fast import model_objective

    torch.set_num_threads(THREADS)
    paths = make_clips()
    out_dir = WORK / "stylised"
    out_dir.mkdir(parents=True, exist_ok=True)
    quality, speed = [], []
    for name in models or fast.bundled_models():
        net, cfg, loss_net, targets = model_objective(name)
        for k, style in enumerate(styles_of(net)):
            label = name if style is None else f"{name} [{net.styles[k]}]"
            timing = {"per-frame": [], "temporal": []}
            for clip_name, clip in (clips or paths).items():
                runs = {}
                for mode, tcfg in (("per-frame", None), ("temporal", temporal.TemporalConfig())):
                    out = out_dir / f"{clip_name}_{Path(name).stem}_{k}_{mode}.mp4"  # a model may be a path
                    ms = stylise(net, style, clip, out, tcfg)
                    runs[mode] = out
                    if clip_name == next(iter(paths)):
                        timing[mode] += [ms, stylise(net, style, clip, out, tcfg)]
                frames = list(video.Frames(clip))
                results = {mode: list(video.Frames(path)) for mode, path in runs.items()}
                (per_frame, steady), floor, pairs = temporal.warping_error(frames, results["per-frame"],
                                                                         results["temporal"])
                # the same on Farneback's flow: `--temporal` blends along DIS flow, so also measure it on a
                # flow of another method that it never saw
                (cross_per, cross_steady), cross_floor, _ = temporal.warping_error(
                    frames, results["per-frame"], results["temporal"], preset=temporal.FARNEBACK)
                objective = {mode: objective_mean(cfg, loss_net, targets[k], frames, r) for mode, r in results.items()}
                quality.append({"clip": clip_name, "model": label, "floor": floor, "per_frame": per_frame,
                                "temporal": steady, "objective": objective, "pairs": pairs,
                                "cross": (cross_floor, cross_per, cross_steady)})
                print(f"{clip_name} {label}: E_warp {per_frame:.5f} -> {steady:.5f} (input {floor:.5f}); objective "
                      f"{objective['per-frame']['total']:.3f} -> {objective['temporal']['total']:.3f}", flush=True)
            speed.append({"model": label, "per_frame": min(timing["per-frame"]), "temporal": min(timing["temporal"])})
    return quality, speed


def section(quality: list[dict], speed: list[dict]) -> str:
    d = temporal.TemporalConfig()
    lines = ["| clip | model | E_warp input (floor) | per-frame | `--temporal` | change | change on Farneback flow | "
             "objective per-frame | `--temporal` | change | style term change |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in quality:
        o, (_, cross_per, cross_steady) = r["objective"], r["cross"]
        lines.append(f"| {r['clip']} | {r['model']} | {r['floor']:.5f} | {r['per_frame']:.5f} | {r['temporal']:.5f} | "
                     f"**{100 * (r['temporal'] / r['per_frame'] - 1):+.0f} %** | "
                     f"{100 * (cross_steady / cross_per - 1):+.0f} % | {o['per-frame']['total']:.3f} | "
                     f"{o['temporal']['total']:.3f} | **{100 * (o['temporal']['total'] / o['per-frame']['total'] - 1):+.1f} %** | "
                     f"{100 * (o['temporal']['style'] / o['per-frame']['style'] - 1):+.1f} % |")
    worst_e = max(r["temporal"] / r["per_frame"] for r in quality)
    worst_cross = max(r["cross"][2] / r["cross"][1] for r in quality)
    worst_o = max(r["objective"]["temporal"]["total"] / r["objective"]["per-frame"]["total"] for r in quality)
    lines += ["", f"{FRAMES} frames of {SIZE[1]}x{SIZE[0]} at {FPS} fps per clip, `--temporal` at its defaults "
                  f"(strength {d.strength}, DIS `{d.preset}` flow, `{d.check_preset}` back); the warping error on DIS "
                  "`medium` flow of the input and, as a cross-check, on Farneback's (a flow the blend does not follow), "
                  f"over the videos as written (H.264); the objective on every {OBJECTIVE_EVERY}th frame. Worst case: "
                  f"warping error **{100 * (1 - worst_e):.0f} %** below per-frame (goal: at least 40 %; "
                  f"{100 * (1 - worst_cross):.0f} % on Farneback flow), objective **{100 * (worst_o - 1):+.1f} %** "
                  "(goal: at most +10 %).", "",
              "| model | per-frame ms | `--temporal` ms | ratio |", "|---|---|---|---|"]
    for r in speed:
        lines.append(f"| {r['model']} | {r['per_frame']:.0f} | {r['temporal']:.0f} | "
                     f"**{r['temporal'] / r['per_frame']:.2f}x** |")
    lines += ["", f"ms per frame of the `{next(iter(CLIPS))}` clip end to end (decode, network, flow, blend, "
                  f"encode), {THREADS} thread{'s' * (THREADS != 1)}, the better of two runs."]
    return "\n".join(lines)


def strip(path: Path = ROOT / "docs" / "gallery" / "video" / "strip.png", model: str = "starry",
          clip: str = "object-public", first: int = 20, count: int = 3, box=(60, 150, 192, 144)) -> Path:
    """Rows: the input, per-frame, `--temporal`; columns: `count` consecutive frames cropped to `box` (x, y, w, h),
    then the warping error of the last pair (white: large; red: occluded, not counted), so the flicker that a
    still frame hides is visible. A 256-colour PNG, small enough to commit."""
    from PIL import Image, ImageDraw
    from lossnet.io import to_pil

    torch.set_num_threads(THREADS)
    clip_path = make_clips(clips={**CLIPS, **PUBLIC_CLIPS})[clip]
    net = fast.load_transformer(model)
    rows = {"input": clip_path}
    for mode, cfg in (("per-frame", None), ("--temporal", temporal.TemporalConfig())):
        out = WORK / "stylised" / f"strip_{clip}_{Path(model).stem}_{mode.strip('-')}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        # always made afresh: a video left from an earlier model or temporal default would show the old one
        registry.apply_to_path(net, clip_path, out, batch_size=4, temporal=cfg, progress=False)
        rows[mode] = out
    x, y, w, h = box
    frames = {k: list(video.Frames(p))[first:first + count] for k, p in rows.items()}
    flow, mask = temporal.link(frames["input"][-2], frames["input"][-1], "medium")
    canvas = Image.new("RGB", ((count + 1) * w, len(rows) * h))
    draw = ImageDraw.Draw(canvas)
    for r, (label, row) in enumerate(frames.items()):
        for c, frame in enumerate(row):
            canvas.paste(to_pil(frame[..., y:y + h, x:x + w]), (c * w, r * h))
        error = (row[-2] - temporal.warp(row[-1], flow)).pow(2).sum(1, keepdim=True)
        heat = (error * 12).clamp(0, 1).expand(-1, 3, -1, -1).clone()
        occluded = torch.from_numpy(mask == 0)
        heat[0, 0][occluded], heat[0, 1][occluded], heat[0, 2][occluded] = 0.55, 0.1, 0.1
        canvas.paste(to_pil(heat[..., y:y + h, x:x + w]), (count * w, r * h))
        draw.text((4, r * h + 3), label, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    draw.text((count * w + 4, 3), f"warping error, frames {first + count - 2}-{first + count - 1}",
              fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB)")
    return path


def main(argv=None) -> None:
    argv = list(argv or [])
    names = [a for a in argv if not a.startswith("--")]
    quality, speed = measure(models=names[0].split(",") if names else None)
    from run import record
    record("Video: --temporal (lossnet.temporal)", section(quality, speed), "bench_video.py", argv,
           write="--no-write" not in argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["strip"]:
        strip()
    else:
        main(sys.argv[1:])
