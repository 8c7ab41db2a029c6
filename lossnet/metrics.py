"""Image quality metrics as super-resolution papers report them.

`psnr` and `ssim` match scikit-image's `peak_signal_noise_ratio` and `structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=...)`, which is Wang et al.'s
SSIM (https://doi.org/10.1109/TIP.2003.819861): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
averaged over the window positions that lie fully inside the image, then over channels (and images).
`sr_scores` is the usual SR protocol: 8-bit output, Y channel (BT.601, as MATLAB's rgb2ycbcr), `scale`
pixels of border cropped, plus `gradient_energy` (sharpness against HR, which PSNR does not show). Everything
is computed in float64 and returned as Python floats.

`PaintingScore` judges stylised images by a measure that no training objective in lossnet uses, so that runs
trained on different objectives can be ranked: the painting distance (Gram distance to the painting, taken at
several scales of the painting, the best scale counting, relative to the photo's own) and the content distance
(a deep layer's feature distance to the photo).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import LossnetError
from .objectives import gram_matrix, relative_mse

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise LossnetError(f"images differ in size: {tuple(a.shape)} vs {tuple(b.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """10 log10(range^2 / MSE) over all elements, in dB; inf for identical images."""
    _check_pair(a, b)
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean SSIM of (..., H, W) images (channels and images averaged); 1.0 for identical images.

    Only fully-inside windows count, which is what scikit-image's result is after it crops the border,
    so no padding convention matters.
    """
    _check_pair(a, b)
    h, w = a.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise LossnetError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {w}x{h}")
    x, y = (t.double().reshape(-1, 1, h, w) for t in (a, b))
    g = _gaussian_window()

    def mean(t):  # separable Gaussian local mean, 'valid' positions only
        return F.conv2d(F.conv2d(t, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))

    mx, my = mean(x), mean(y)
    vx, vy, cxy = mean(x * x) - mx * mx, mean(y * y) - my * my, mean(x * y) - mx * my  # population (co)variances
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean().item()


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB [0, 1] -> (..., 1, H, W) luma, ITU-R BT.601 studio range: Y in [16, 235] / 255."""
    if image.shape[-3] != 3:
        raise LossnetError(f"expected an RGB image (3 channels), got {image.shape[-3]}")
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=image.dtype, device=image.device) / 255.0
    return (image * weights.view(3, 1, 1)).sum(-3, keepdim=True) + 16.0 / 255.0


def gradient_energy(a: torch.Tensor, reference: torch.Tensor) -> float:
    """Sharpness of `a` relative to `reference`: the mean squared finite-difference gradient (horizontal plus
    vertical) of `a` over that of `reference`. 1.0 is as sharp as the reference, bicubic upscaling scores far
    below 1, and over 1 means more high-frequency energy than the reference (oversharpening or artefacts).
    PSNR rewards the blur of an average; this shows what a perceptual loss buys."""
    _check_pair(a, reference)

    def energy(t: torch.Tensor) -> float:
        t = t.double()
        return float((t[..., 1:, :] - t[..., :-1, :]).pow(2).mean() + (t[..., :, 1:] - t[..., :, :-1]).pow(2).mean())
    return energy(a) / max(energy(reference), 1e-12)


def lattice_contrast(image: torch.Tensor, period: int = 4) -> float:
    """How strongly `image` repeats with `period` pixels along its axes: the luma's spectral power at that
    period (summed over the other axis, horizontal and vertical averaged) over the mean power 3-6 frequency bins
    either side. A photo scores ~1; a style network that prints a lattice with the period of its two x2 stages
    scores 10-100 at period 4, though the lattice is faint to the eye. (..., 3, H, W); the mean over a batch."""
    if image.shape[-3] != 3:
        raise LossnetError(f"expected an RGB image (3 channels), got {image.shape[-3]}")
    if min(image.shape[-2:]) < 8 * period:
        raise LossnetError(f"a {period}-pixel lattice needs an image of at least {8 * period} px a side")
    luma = rgb_to_y(image.double().reshape(-1, *image.shape[-3:]))[:, 0]
    power = torch.fft.fft2(luma - luma.mean((-2, -1), keepdim=True)).abs().pow(2)
    ratios = []
    for profile in (power.sum(-2), power.sum(-1)):  # power by horizontal frequency, by vertical frequency
        n = profile.shape[-1]
        k = round(n / period)
        peak = profile[:, [(k + d) % n for d in (-1, 0, 1)]].amax(-1)  # the period need not divide the side
        around = profile[:, [(k + d) % n for d in (-6, -5, -4, -3, 3, 4, 5, 6)]].mean(-1)
        ratios.append(peak / around.clamp_min(1e-20))
    return float(torch.stack(ratios).mean())


def _to_8bit(image: torch.Tensor) -> torch.Tensor:
    return (image.double().clamp(0, 1) * 255).round() / 255


def sr_scores(sr: torch.Tensor, hr: torch.Tensor, scale: int, quantize: bool = True) -> dict[str, float]:
    """{"psnr", "ssim", "gradient_energy"} on the Y channel with `scale` border pixels cropped, averaged over
    a batch (`gradient_energy`: the output's over the HR image's).

    `quantize` rounds both images to 8 bits first, as if the SR output had been saved (the papers score
    saved PNGs); Y itself is not rounded (BasicSR's convention; MATLAB's uint8 rgb2ycbcr differs by ~0.01 dB).
    """
    _check_pair(sr, hr)
    if quantize:
        sr, hr = _to_8bit(sr), _to_8bit(hr)
    crop = (slice(None),) * (sr.dim() - 2) + (slice(scale, -scale or None),) * 2
    ys, yh = rgb_to_y(sr.double())[crop], rgb_to_y(hr.double())[crop]
    pairs = list(zip(ys, yh)) if sr.dim() == 4 else [(ys, yh)]
    return {"psnr": sum(psnr(s, h) for s, h in pairs) / len(pairs),
            "ssim": sum(ssim(s, h) for s, h in pairs) / len(pairs),
            "gradient_energy": sum(gradient_energy(s, h) for s, h in pairs) / len(pairs)}


# The first ReLU of each block: none of the training objectives' default layers (relu1_2, relu2_2, relu3_3,
# relu4_3), so a run that chose its own layers is not judged on them.
PAINTING_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"
# The same measure in a network that no method here optimises or inverts (lossnet.classifier): each stage's last
# block at 1/2 .. 1/16 of the image, as relu1_1 .. relu4_1 in VGG16, and the 1/16 stage's end as the content.
LITE0_PAINTING_LAYERS = ("blocks.0", "blocks.2", "blocks.4", "blocks.7")
LITE0_CONTENT_LAYER = "blocks.7"
# Stroke size follows the scale at which a painting's Grams are taken: an output that paints the strokes of
# the painting at 512 px is as much a painting as one that paints them at 256 px.
PAINTING_SCALES = (256, 384, 512, 768, 1024)


class PaintingScore:
    """How much an image looks like `painting`, and how much of `photo` it keeps.

        score = PaintingScore(painting)
        score.painting_distance(output, photo)   # 1.0: as far from the painting as the photo; lower is closer
        score.content_distance(output, photo)    # 0.0: the photo's deep features exactly; higher lost more

    The painting's Grams are taken with its longest side at each of `PAINTING_SCALES` up to its own size; an
    image's Gram distance is the best over those scales of the mean relative squared error over `layers`.
    `net` is anything with `taps(image, names)` (a `features.LossNetwork`, a `classifier.Classifier`): the
    default VGG16 when None; with another network name its `layers` and `content_layer` too."""

    def __init__(self, painting: torch.Tensor, net=None, layers=PAINTING_LAYERS, content_layer=CONTENT_LAYER):
        from .features import LossNetwork
        from .io import resize_longest

        self.layers, self.content_layer = tuple(layers), content_layer
        self.net = net or LossNetwork([*self.layers, content_layer], quiet=True)
        longest = max(painting.shape[-2:])
        scales = [s for s in PAINTING_SCALES if s <= longest] or [longest]
        with torch.no_grad():
            self.grams = [self._grams(resize_longest(painting, s)) for s in scales]
        self.scales = scales

    @classmethod
    def in_lite0(cls, painting: torch.Tensor, classifier) -> "PaintingScore":
        """The same two measures in EfficientNet-Lite0 (`classifier.load_classifier()`), which nothing optimises."""
        return cls(painting, classifier, LITE0_PAINTING_LAYERS, LITE0_CONTENT_LAYER)

    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad(), torch.autocast(image.device.type, enabled=False):
            return self.net.taps(image.float().clamp(0, 1), [*self.layers, self.content_layer])

    def _grams(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self._features(image)  # one pass for every layer
        return {k: gram_matrix(features[k]) for k in self.layers}

    def gram_distance(self, image: torch.Tensor) -> float:
        """The best over the painting's scales of the mean relative Gram error over the layers."""
        grams = self._grams(image)
        return min(sum(relative_mse(grams[k], target[k]).item() for k in self.layers) / len(self.layers)
                   for target in self.grams)

    def painting_distance(self, image: torch.Tensor, photo: torch.Tensor) -> float:
        """`image`'s Gram distance to the painting over `photo`'s: 1.0 as far as the photo, 0.0 the painting's."""
        return self.gram_distance(image) / max(self.gram_distance(photo), 1e-12)

    def content_distance(self, image: torch.Tensor, photo: torch.Tensor) -> float:
        """Relative squared error of `image`'s content-layer features against `photo`'s (0.0: the photo's)."""
        _check_pair(image, photo)
        k = self.content_layer
        return relative_mse(self._features(image)[k], self._features(photo)[k]).item()
