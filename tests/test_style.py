"""Gatys style transfer, texture synthesis and inversion on the real (offline HED) loss network, tiny sizes."""
import pytest
import torch

from lossnet.color import rgb_to_yiq
from lossnet.errors import LossnetError
from lossnet.optimize import LoopConfig
from lossnet.procedural import make_style
from lossnet.style import StyleConfig, check_weights, invert, stylize, texture

from conftest import photo


def config(n, **kw) -> StyleConfig:
    """n iterations per stage unless `iters` (one per stage) says otherwise; no progress bar."""
    return StyleConfig(loop=LoopConfig(iters=n, progress=False), **kw)


@pytest.fixture(scope="module")
def swirls():
    return make_style("swirls", 64)


def test_texture_style_loss_falls(hed, swirls):
    cfg = config(15, init="noise", sizes=[64], style_weight=1.0, tv_weight=0.1)
    image = texture(swirls, (64, 64), cfg)
    assert image.shape == (1, 3, 64, 64) and 0 <= image.min() and image.max() <= 1
    style = [row["style"] for row in image.history]
    assert style[-1] < 0.25 * style[0], style


def test_history_has_one_row_per_iteration(hed, swirls):
    cfg = config(2, init="noise", sizes=[24, 32], iters=[3, 2], style_weight=1.0)
    image = texture(swirls, (32, 32), cfg)
    assert [row["iter"] for row in image.history] == [1, 2, 3, 1, 2]


def test_stylize_style_loss_falls(hed, swirls):
    content = photo("astronaut", 64)
    cfg = config(15, sizes=[64])
    image = stylize(content, [swirls], cfg)
    assert image.shape == (1, 3, 64, 64)
    rows = image.history
    assert rows[0]["content"] == pytest.approx(0.0, abs=1e-6)  # starts at the content image
    assert rows[-1]["style"] < 0.5 * rows[0]["style"]
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert not torch.equal(image, content)


def test_same_seed_same_output_different_seed_different_output(hed, swirls):
    def run(seed):
        return texture(swirls, (48, 48), config(4, init="noise", sizes=[48], seed=seed, style_weight=1.0))

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and (a - c).abs().mean() > 0.01


def test_stylize_from_noise_is_seeded(hed, swirls):
    content = photo("camera", 40)
    def run(seed):
        return stylize(content, [swirls], config(2, sizes=[40], init="noise", seed=seed))

    a, b = run(3), run(4)
    assert torch.equal(a, run(3)) and not torch.equal(a, b)


def test_non_contiguous_start_image(hed, swirls):
    content = photo("astronaut", 32).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last view
    assert not content.is_contiguous()
    image = stylize(content, [swirls], config(1, sizes=[32]))  # same size: used as is, not resized
    assert image.shape == (1, 3, 32, 32)


def test_coarse_to_fine_and_blend(hed, swirls):
    content = photo("astronaut", 48)
    mosaic = make_style("mosaic", 48)
    cfg = config(2, sizes=[24, 48], iters=[3, 2])
    image = stylize(content, [swirls, mosaic], cfg, blend=[0.7, 0.3])
    assert image.shape == (1, 3, 48, 48)


def test_original_colors_keeps_content_chroma(hed, swirls):
    content = photo("astronaut", 32)
    image = stylize(content, [swirls], config(3, sizes=[32], original_colors=True))
    iq_out, iq_content = rgb_to_yiq(image)[:, 1:], rgb_to_yiq(content)[:, 1:]
    assert (iq_out - iq_content).abs().mean() < 0.02  # only clamping to [0, 1] moves the colours


def test_invert_content_loss_falls(hed):
    cfg = config(10, init="noise", sizes=[48], tv_weight=0.05)
    image = invert(photo("camera", 48), "relu2_2", cfg)
    assert image.shape == (1, 3, 48, 48)
    content = [row["content"] for row in image.history]
    assert content[-1] < 0.5 * content[0]


def test_bad_arguments():
    with pytest.raises(LossnetError, match="2 weights given for 1 items"):
        check_weights("blend", [1, 2], 1)
    with pytest.raises(LossnetError, match="non-negative"):
        check_weights("blend", [-1, 2], 2)
    with pytest.raises(LossnetError, match="non-negative"):
        check_weights("blend", [0, 0], 2)
    assert check_weights("blend", [0, 3], 2) == [0.0, 3.0]
    with pytest.raises(LossnetError, match="at least one style"):
        stylize(photo("astronaut", 32), [])
    with pytest.raises(LossnetError, match="did you mean relu3_3"):
        stylize(photo("astronaut", 32), [make_style("swirls", 32)], config(1, sizes=[32], style_layers=["relu3_33"]))
    with pytest.raises(LossnetError, match="unknown procedural style"):
        make_style("swirl")
