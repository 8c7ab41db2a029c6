"""Flicker-free video stylisation (Ruder, Dosovitskiy & Brox, https://arxiv.org/abs/1604.08610) and the warping
error that measures flicker (Lai et al., https://arxiv.org/abs/1808.00449), on OpenCV's DIS optical flow
(Kroeger et al., https://arxiv.org/abs/1603.03590: a CPU method with no weights to download).

    flow, mask = link(frame, previous)          # frame(x) ~ previous(x + flow(x)) wherever mask is 1
    stable = Stabiliser()                       # feed-forward: each result blended with the last one, warped
    out = stable(frame, stylised)
    run = gatys_frames(styles, StyleConfig(...), TemporalConfig())   # the pixel loop, with a temporal term
    warping_error(frames, stylised_frames)      # Lai et al.'s E_warp

A frame-by-frame stylisation paints every frame's strokes afresh, so they swim. Here the previous result is
carried onto the current frame along the input's optical flow and blended into the new one wherever the flow
can be trusted: where the forward and backward flows agree (the pixel was visible in both frames) and away
from motion boundaries (Ruder et al., eqs. 6-7). Disoccluded regions get no share of the past: they are
painted fresh. Images are (1, 3, H, W) RGB in [0, 1]; flows are (H, W, 2) float32 arrays, OpenCV's layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from . import objectives as O
from .data import gaussian_blur
from .errors import LossnetError

# DIS settings: (finest pyramid level, patch size, patch stride, gradient-descent iterations, variational
# refinement iterations). ultrafast, fast and medium are OpenCV's own presets. The flow that carries the
# result is `medium`: full resolution and dense patches, so it follows a moving object's edge (`fast` stops at
# half resolution, and its flow smears across the edge, which ghosts the object). "balanced", full resolution
# with few iterations at about half medium's cost, checks it on the way back: that flow only finds occlusions.
PRESETS = {"ultrafast": (2, 8, 4, 12, 0), "fast": (2, 8, 4, 16, 5), "balanced": (1, 8, 4, 12, 1),
           "medium": (1, 8, 3, 25, 5)}
# Farneback's polynomial-expansion flow (OpenCV, no weights): another method than DIS, for measuring a
# stabilisation that blends along DIS flow with a flow it did not use.
FARNEBACK = "farneback"
FLOW_METHODS = (*PRESETS, FARNEBACK)
# The temporal term's weight at strength 1 (a pixel MSE next to relative losses). The default strength is 0.5
# for the feed-forward blend (see TemporalConfig); 2800 makes the pixel loop's default weight 1400, the measured best.
GATYS_TEMPORAL_WEIGHT = 2800.0


@dataclass
class TemporalConfig:
    """How much of the previous result each frame keeps, and how the flow is computed.

    `strength` is the share of the warped previous result in a stylised frame where the flow is reliable
    (0: frame by frame; 1: strokes never change where the scene is tracked). In the pixel loop it scales the
    temporal loss term instead (weight `strength * GATYS_TEMPORAL_WEIGHT`). At the default, 0.5, every bundled
    model keeps its objective within 10 % of frame by frame on the video bench (+7.5 % at worst); at 0.7 the long
    strokes of `starry` lose 12.3 % of their warping-error gain on a moving object, at 0.6 10.0 %."""
    strength: float = 0.5
    keep_contrast: bool = True  # the feed-forward blend restores the strokes' local contrast (see `blend`)
    preset: str = "medium"  # DIS settings (PRESETS) for the flow that carries the previous result
    check_preset: str = "balanced"  # ... for the flow back, which only finds occlusions: a cheaper one will do
    flow_side: int = 1024  # the flow is computed at most at this longest side and scaled up beyond it

    def __post_init__(self):
        if not 0 <= self.strength <= 1:
            raise LossnetError(f"temporal strength must be in [0, 1], got {self.strength}")
        for preset in (self.preset, self.check_preset):
            if preset not in FLOW_METHODS:
                raise LossnetError(f"unknown flow preset {preset!r}: choose {', '.join(FLOW_METHODS)}")

    def stabiliser(self) -> Stabiliser:
        """A fresh `Stabiliser` with these settings, for one sequence: what `lossnet.video.apply_frames` (and so
        `registry.apply_to_path`) calls for each video it runs."""
        return Stabiliser(self)


# ----------------------------------------------------------------------------- flow, warp, masks
def _cv2():
    import cv2
    # OpenCV has its own thread pool; keep it to torch's thread count so `OMP_NUM_THREADS=1` means one core.
    cv2.setNumThreads(torch.get_num_threads())
    return cv2


def gray(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W) uint8 luminance, what DIS reads (an array is taken as already that).
    The flow functions take either; a caller that links each frame twice converts it once."""
    if isinstance(image, np.ndarray):
        return image
    rgb = image[0].detach().float().cpu().clamp(0, 1)
    y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (y.numpy() * 255 + 0.5).astype(np.uint8)


_DIS: dict[str, object] = {}


def _dis(preset: str):
    """OpenCV's DIS with one of PRESETS' settings, made once per preset."""
    if preset not in _DIS:
        cv2 = _cv2()
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        finest, patch, stride, descent, refinement = PRESETS[preset]
        dis.setFinestScale(finest)
        dis.setPatchSize(patch)
        dis.setPatchStride(stride)
        dis.setGradientDescentIterations(descent)
        dis.setVariationalRefinementIterations(refinement)
        _DIS[preset] = dis
    return _DIS[preset]


def optical_flow(source: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, preset: str = "medium",
                 max_side: int | None = 1024) -> np.ndarray:
    """DIS optical flow (or Farneback's, `preset="farneback"`) from `source` to `target`:
    source(x) ~ target(x + flow(x)), (H, W, 2) in pixels.

    Frames larger than `max_side` are shrunk for the flow and the flow is scaled back up: motion is smooth
    at that scale, and DIS's cost grows with the pixel count."""
    if preset not in FLOW_METHODS:
        raise LossnetError(f"unknown flow preset {preset!r}: choose {', '.join(FLOW_METHODS)}")
    a, b = gray(source), gray(target)
    if a.shape != b.shape:
        raise LossnetError(f"frames of different sizes ({a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}) "
                           "cannot be linked by optical flow")
    cv2 = _cv2()
    h, w = a.shape
    scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
    if scale < 1:
        small = (max(1, round(w * scale)), max(1, round(h * scale)))
        a, b = (cv2.resize(x, small, interpolation=cv2.INTER_AREA) for x in (a, b))
    if preset == FARNEBACK:  # 5 levels, 15 px windows, 7-px polynomials: OpenCV's sample settings, finer
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 5, 7, 1.5, 0)
    else:
        flow = _dis(preset).calc(a, b, None)
    if scale < 1:
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= w / small[0]
        flow[..., 1] *= h / small[1]
    return flow


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _positions(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x + flow(x) as OpenCV's two remap maps (the pixel grid is kept per frame size: it is the same every frame)."""
    h, w = flow.shape[:2]
    if (h, w) not in _GRIDS:
        _GRIDS.clear()
        _GRIDS[h, w] = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx, gy = _GRIDS[h, w]
    return gx + flow[..., 0], gy + flow[..., 1]


def _sample(array: np.ndarray, positions, cubic: bool) -> np.ndarray:
    """array (H, W, C) float32 read at `positions`; positions outside the frame take the nearest edge."""
    cv2 = _cv2()
    return cv2.remap(array, *positions, cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def warp(image: torch.Tensor, flow: np.ndarray) -> torch.Tensor:
    """`image` (on the flow's target frame) brought onto the flow's source frame: out(x) = image(x + flow(x)).

    Bicubic, not bilinear: a result is warped again at every frame, and bilinear's blur would add up."""
    array = np.ascontiguousarray(image[0].detach().float().cpu().permute(1, 2, 0).numpy())
    out = _sample(array, _positions(flow), cubic=True)
    return torch.from_numpy(out.reshape(*out.shape[:2], -1)).permute(2, 0, 1)[None].clamp(0, 1).contiguous()


def _norm2(v: np.ndarray) -> np.ndarray:
    return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]


def reliable(flow: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Where `flow` (frame A -> B) can be trusted, as a (H, W) float32 mask of 0 and 1, given `back` (B -> A).

    Ruder et al., eqs. 6-7, with their thresholds (in pixels): a pixel is occluded in B when the two flows
    do not cancel, |f + b(x + f)|^2 > 0.01 (|f|^2 + |b(x + f)|^2) + 0.5; it sits on a motion boundary when
    |grad f_x|^2 + |grad f_y|^2 > 0.01 |f|^2 + 0.002; and it is lost when x + f leaves the frame."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    xs, ys = _positions(flow)
    back_there = _sample(back, (xs, ys), cubic=False)
    flow_energy = _norm2(flow)
    consistent = _norm2(flow + back_there) <= 0.01 * (flow_energy + _norm2(back_there)) + 0.5
    # central differences of both flow components (Sobel with a 1-tap kernel is [-1, 0, 1])
    gx = cv2.Sobel(flow, cv2.CV_32F, 1, 0, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(flow, cv2.CV_32F, 0, 1, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
    smooth = _norm2(gx) + _norm2(gy) <= 0.01 * flow_energy + 0.002
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return (consistent & smooth & inside).astype(np.float32)


def link(frame: torch.Tensor | np.ndarray, other: torch.Tensor | np.ndarray, preset: str = "medium",
         max_side: int | None = 1024, check_preset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flow from `frame` to `other`, its reliability mask): `warp(image_on_other, flow)` is valid where mask is 1.

    The flow back (`check_preset`, default `preset`) only tests the forward one: where either is wrong they
    do not cancel, and the pixel is painted fresh, so a coarser flow back costs some stability, not ghosts."""
    frame, other = gray(frame), gray(other)
    flow = optical_flow(frame, other, preset, max_side)
    return flow, reliable(flow, optical_flow(other, frame, check_preset or preset, max_side))


def _mask_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask)[None, None]


# ----------------------------------------------------------------------------- feed-forward: blending
DETAIL_SIGMA = 1.0  # px: what a Gaussian of this width smooths away is the finest detail, what resampling softens
CONTRAST_SIGMA = 4.0  # px: the neighbourhood over which the detail's energy is measured and restored
MAX_GAIN = 2.0


def blend(stylised: torch.Tensor, warped: torch.Tensor, mask: np.ndarray, strength: float,
          keep_contrast: bool = False) -> torch.Tensor:
    """strength x the warped previous result + the rest of the new one, where mask is 1; the new one elsewhere.

    A plain average of two paintings whose strokes do not line up has less contrast than either: an average of
    uncorrelated detail keeps w^2 + (1-w)^2 of its energy (58 % at w = 0.7), and carried along frame after frame
    a steady state keeps far less, so a textured style fades into a smooth wash, most where the scene moves
    (zoom) and the new strokes never line up with the old; and every warp resamples the carried result, which
    softens it a little more each frame. With `keep_contrast` (`TemporalConfig`'s default) the detail (what a
    1 px Gaussian removes) of the average is scaled, per neighbourhood, up to the energy of the new frame's own
    detail: the variance-preserving blend of texture synthesis (Heitz & Neyret 2018), made local, with the
    network's output as the measure of how much texture a frame should have. Where the two agree (a still scene) the gain is 1 and nothing changes;
    it never lowers detail (at least 1) nor more than doubles it."""
    weight = strength * _mask_tensor(mask)
    mixed = weight * warped + (1 - weight) * stylised
    if not keep_contrast or strength == 0:
        return mixed
    detail_warped = warped - gaussian_blur(warped, DETAIL_SIGMA)
    detail_new = stylised - gaussian_blur(stylised, DETAIL_SIGMA)
    detail = weight * detail_warped + (1 - weight) * detail_new  # mixed minus the mix of the smooth parts
    wanted = detail_new.square().sum(1, keepdim=True)
    eps = 1e-4  # (1 % of full range)^2 per channel: flat areas keep their (absent) detail, unamplified noise
    gain = ((gaussian_blur(wanted, CONTRAST_SIGMA) + eps) /
            (gaussian_blur(detail.square().sum(1, keepdim=True), CONTRAST_SIGMA) + eps)).sqrt().clamp(1, MAX_GAIN)
    return (mixed + (gain - 1) * detail).clamp(0, 1)


class Stabiliser:
    """Called once per frame, in order: the stylised frame with the previous result blended in along the flow.

    The blend is done after the network, so any per-frame method can be stabilised and the network still
    sees whole batches of frames; the cost is two DIS flows, a mask and a warp per frame."""

    def __init__(self, cfg: TemporalConfig | None = None):
        self.cfg = cfg or TemporalConfig()
        self.previous_frame: np.ndarray | None = None  # its luminance, what the flow reads
        self.previous_result: torch.Tensor | None = None

    def __call__(self, frame: torch.Tensor, stylised: torch.Tensor) -> torch.Tensor:
        result, frame = stylised, gray(frame)
        if self.previous_frame is not None and self.previous_frame.shape == frame.shape and self.cfg.strength > 0:
            flow, mask = link(frame, self.previous_frame, self.cfg.preset, self.cfg.flow_side, self.cfg.check_preset)
            result = blend(stylised, warp(self.previous_result, flow), mask, self.cfg.strength, self.cfg.keep_contrast)
        self.previous_frame, self.previous_result = frame, result
        return result


def stabilise(frames: Iterable[torch.Tensor], stylised: Iterable[torch.Tensor],
              cfg: TemporalConfig | None = None) -> Iterator[torch.Tensor]:
    """Stabilise a stream of per-frame results (`stylised`, one per input frame in `frames`)."""
    stable = Stabiliser(cfg)
    for frame, result in zip(frames, stylised):
        yield stable(frame, result)


# ----------------------------------------------------------------------------- the pixel loop (Gatys)
def temporal_loss(warped: torch.Tensor, mask: np.ndarray) -> O.Objective:
    """Ruder et al.'s short-term temporal loss: mean of mask x (image - warped previous result)^2, the mask
    and target resized to the image (so coarse-to-fine stages work too)."""
    from .io import resize
    warped, weight = warped.detach(), _mask_tensor(mask)

    def term(feats, image):
        hw = tuple(image.shape[-2:])
        target = resize(warped, hw).to(image)
        w = (weight if tuple(weight.shape[-2:]) == hw
             else torch.nn.functional.interpolate(weight, size=hw, mode="area")).to(image)
        return (w * (image.float() - target.float()).pow(2)).mean()
    return O.Objective([(1.0, "temporal", term)])


def gatys_frames(styles: Sequence[torch.Tensor], style_cfg, cfg: TemporalConfig | None = None,
                 blend_weights: Sequence[float] | None = None) -> Callable[[Iterable[torch.Tensor]], Iterator[torch.Tensor]]:
    """Frame-by-frame Gatys (`lossnet.style.stylize`), or with `cfg` Ruder et al.'s method: every frame after
    the first starts from the previous result warped onto it (the frame itself where the flow is unreliable)
    and its objective gains the temporal term. Those frames run at the finest scale only: their start image
    is already a stylised image at full size, which a coarse stage would only blur."""
    from .color import luminance
    from .style import stylize

    def run(frames: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        import logging
        notices = logging.getLogger("lossnet")  # each frame loads the loss network: say which weights once
        level, previous_frame, previous = notices.level, None, None
        try:
            for frame in frames:
                result = stylise(frame, previous_frame, previous)
                yield result
                previous_frame, previous = frame, result
                notices.setLevel(max(level, logging.WARNING))
        finally:
            notices.setLevel(level)

    def stylise(frame: torch.Tensor, previous_frame: torch.Tensor | None, previous: torch.Tensor | None) -> torch.Tensor:
        if cfg is None or cfg.strength == 0 or previous is None or previous_frame.shape != frame.shape:
            result = stylize(frame, styles, style_cfg, blend_weights)
        else:
            flow, mask = link(frame, previous_frame, cfg.preset, cfg.flow_side, cfg.check_preset)
            warped = warp(previous, flow)
            if style_cfg.original_colors:  # that loop optimises luminance; colours come back at the end
                warped = luminance(warped)
            start = blend(frame if not style_cfg.original_colors else luminance(frame), warped, mask, 1.0)
            finest = replace(style_cfg, sizes=[max(style_cfg.sizes)],
                             iters=[style_cfg.iters[-1]] if style_cfg.iters else None)
            extra = cfg.strength * GATYS_TEMPORAL_WEIGHT * temporal_loss(warped, mask)
            result = stylize(frame, styles, finest, blend_weights, init=start, extra=extra)
        return result
    return run


# ----------------------------------------------------------------------------- warping error
def pair_warping_error(frame: torch.Tensor, following: torch.Tensor, flow: np.ndarray, mask: np.ndarray) -> float:
    """Lai et al.'s E_pair: squared RGB distance between `frame` and `following` warped back onto it, summed
    over channels and averaged over the pixels where mask is 1 (their non-occlusion mask); NaN if none is."""
    weight = _mask_tensor(mask)
    pixels = float(weight.sum())
    if pixels == 0:
        return float("nan")
    diff = (frame.float() - warp(following, flow)).pow(2).sum(1, keepdim=True)
    return float((weight * diff).sum()) / pixels


def warping_error(original: Iterable[torch.Tensor], *videos: Iterable[torch.Tensor], preset: str = "medium",
                  max_side: int | None = 1024) -> tuple[list[float], float, int]:
    """E_warp (Lai et al.) of each of `videos` over the flow of `original` (the input frames): the mean over
    consecutive pairs of `pair_warping_error`. Frames of another size than the original's are compared on the
    flow of the original resized to theirs. Returns ([error of each video], the original's own error, pairs):
    the original's is the floor, what flow residuals, lighting changes and noise leave."""
    from .io import resize

    totals, pairs, previous = [0.0] * (1 + len(videos)), 0, None
    for frames in zip(original, *videos):
        if previous is not None:
            links, errors = {}, []  # one flow per size, shared by the videos of that size
            for result, after in zip(previous, frames):
                hw = tuple(result.shape[-2:])
                if hw not in links:
                    links[hw] = link(resize(previous[0], hw), resize(frames[0], hw), preset, max_side)
                errors.append(pair_warping_error(result, after, *links[hw]))
            if not any(math.isnan(e) for e in errors):  # NaN: nothing in common (a cut), nothing to compare
                totals = [t + e for t, e in zip(totals, errors)]
                pairs += 1
        previous = frames
    if pairs == 0:
        raise LossnetError("the warping error needs at least two frames that show the same scene")
    return [t / pairs for t in totals[1:]], totals[0] / pairs, pairs


def video_warping_error(original, stylised, preset: str = "medium") -> tuple[float, float, int]:
    """(E_warp of `stylised`, E_warp of `original` itself, pairs) for two videos or folders of frames, the
    flow taken from `original` (resized to the stylised frames' size when they differ)."""
    from .video import Frames

    source, result = Frames(original), Frames(stylised)
    if source.count != result.count:
        raise LossnetError(f"{original} has {source.count} frames but {stylised} has {result.count}: "
                           "the warping error compares a video with its own stylisation")
    (error,), floor, pairs = warping_error(source, result, preset=preset)
    return error, floor, pairs
