"""PSNR / SSIM / Y against hand-computed values and scikit-image."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import photo
from lossnet.data import degrade, gaussian_blur, modcrop
from lossnet.errors import LossnetError
from lossnet.io import load_image
from lossnet.metrics import gradient_energy, lattice_contrast, psnr, rgb_to_y, sr_scores, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")
SET5 = Path("/work/shared/data/sr/Set5")


def test_psnr_of_a_constant_offset():
    a = torch.rand(1, 3, 20, 20) * 0.8
    assert psnr(a, a + 0.1) == pytest.approx(20.0)  # MSE 0.01
    assert psnr(a * 255, a * 255 + 1, data_range=255) == pytest.approx(20 * math.log10(255))
    assert psnr(a, a) == math.inf


def test_ssim_hand_cases():
    a = torch.rand(3, 32, 32)
    assert ssim(a, a) == pytest.approx(1.0)
    flat = torch.full((1, 16, 16), 0.5)
    # on flat images only the luminance term is left: (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    c1 = 0.01 ** 2
    assert ssim(flat, flat + 0.2) == pytest.approx((2 * 0.5 * 0.7 + c1) / (0.25 + 0.49 + c1))
    with pytest.raises(LossnetError, match="at least 11"):
        ssim(torch.rand(1, 10, 30), torch.rand(1, 10, 30))
    with pytest.raises(LossnetError, match="differ in size"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))


def _skimage_ssim(a, b, channel_axis=None):
    return skimage_metrics.structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                                 use_sample_covariance=False, channel_axis=channel_axis)


def test_matches_skimage_on_smooth_random_images():
    g = torch.Generator().manual_seed(0)
    a = F.avg_pool2d(torch.rand(1, 3, 70, 50, generator=g), 3, 1, 1)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    na, nb = (t[0].permute(1, 2, 0).double().numpy() for t in (a, b))
    assert ssim(a, b) == pytest.approx(_skimage_ssim(na, nb, channel_axis=2), abs=1e-6)
    assert psnr(a, b) == pytest.approx(skimage_metrics.peak_signal_noise_ratio(na, nb, data_range=1.0), abs=1e-6)


@pytest.mark.skipif(not SET5.is_dir(), reason="shared Set5 data not present")
@pytest.mark.parametrize("name", ["butterfly", "bird"])
def test_matches_skimage_on_set5_bicubic(name):
    hr = modcrop(load_image(SET5 / f"{name}.png")[..., :160, :160], 4)
    sr = F.interpolate(degrade(hr, 4), scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    y_sr, y_hr = rgb_to_y(sr)[0, 0].double().numpy(), rgb_to_y(hr)[0, 0].double().numpy()
    assert ssim(rgb_to_y(sr), rgb_to_y(hr)) == pytest.approx(_skimage_ssim(y_sr, y_hr), abs=1e-4)
    assert psnr(sr, hr) == pytest.approx(skimage_metrics.peak_signal_noise_ratio(
        hr[0].numpy(), sr[0].numpy(), data_range=1.0), abs=1e-4)
    scores = sr_scores(sr, hr, 4)
    assert 18 < scores["psnr"] < 40 and 0.4 < scores["ssim"] < 1
    assert 0.05 < scores["gradient_energy"] < 0.6  # bicubic x4 keeps a fraction of the HR image's edges


def test_gradient_energy_is_one_for_the_reference_and_grows_with_sharpening():
    hr = photo("astronaut", 96)
    blurred = gaussian_blur(hr, 1.5)
    sharpened = (hr + 1.0 * (hr - blurred)).clamp(0, 1)
    assert gradient_energy(hr, hr) == pytest.approx(1.0)
    assert gradient_energy(blurred, hr) < 0.5 < 1 < gradient_energy(sharpened, hr)


def test_a_faint_four_pixel_lattice_stands_out_of_a_photo_spectrum():
    x = photo("astronaut", 256)
    assert lattice_contrast(x) < 3
    # what a network's two nearest-neighbour x2 upsamplings print: a pattern repeating every 4 pixels, +-3 % of
    # the range (a style network's lattice measures ~+-2.5 %), hard to see at full size
    lattice = torch.tensor([0.03, 0, -0.03, 0]).repeat(64)
    gridded = (x + lattice.view(1, 1, 1, -1) + lattice.view(1, 1, -1, 1)).clamp(0, 1)
    assert lattice_contrast(gridded) > 10 * lattice_contrast(x)
    assert lattice_contrast(gridded, period=8) < 3  # the lattice is at its own period, not any other
    with pytest.raises(LossnetError, match="at least 32 px"):
        lattice_contrast(torch.rand(1, 3, 20, 40))


def test_rgb_to_y_is_bt601_studio_range():
    black, white = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert torch.allclose(rgb_to_y(black), torch.full((1, 1, 2, 2), 16 / 255))
    assert torch.allclose(rgb_to_y(white), torch.full((1, 1, 2, 2), 235 / 255), atol=1e-6)
    red = torch.tensor([1.0, 0, 0]).view(3, 1, 1)
    assert rgb_to_y(red).item() == pytest.approx((16 + 65.481) / 255)


def test_sr_scores_ignore_the_border_and_average_a_batch():
    hr = torch.rand(2, 3, 40, 40)
    sr = hr.clone()
    sr[..., :4, :] = 0  # damage only inside the 4-pixel border
    sr[..., :, -4:] = 1
    assert sr_scores(sr, hr, 4) == {"psnr": math.inf, "ssim": pytest.approx(1.0), "gradient_energy": pytest.approx(1.0)}
    assert sr_scores(sr, hr, 2)["psnr"] < 30


def test_the_painting_measure_runs_on_a_network_that_no_method_optimises():
    from lossnet.classifier import lite0_wheel_file, load_classifier
    from lossnet.metrics import PaintingScore
    from lossnet.procedural import make_style
    if lite0_wheel_file() is None:
        pytest.skip("EfficientNet-Lite0 weights not fetched (lossnet weights fetch)")
    net = load_classifier(quiet=True)
    painting, x = make_style("swirls", 128, seed=0), photo("chelsea", 128)
    score = PaintingScore.in_lite0(painting, net)
    painted = painting[..., :x.shape[-2], :x.shape[-1]]  # the photo's shape, the painting's texture
    halfway = score.painting_distance(0.5 * painted + 0.5 * x, x)
    assert score.painting_distance(painted, x) < 0.2 < halfway < 0.9  # measured 0.11, 0.39; the photo: 1.0
    assert score.content_distance(x, x) == 0 < score.content_distance(painted, x)
