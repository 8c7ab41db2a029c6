"""Universal style transfer (lossnet.universal): decoders trained for reconstruction on the HED VGG16, the WCT and
AdaIN transforms on known statistics, the user's controls (alpha, blends, masks, colours, tiles) and the
command line on images, folders and videos. The decoders are tiny ones trained here for a few seconds."""
from __future__ import annotations

import pytest
import torch

from conftest import files_in, photo, run_cli
from lossnet import registry
from lossnet.io import load_image, save_image
from lossnet.metrics import psnr
from lossnet.procedural import make_style
from lossnet.train import TrainConfig
from lossnet.universal import (DecoderConfig, FeatureMap, UniversalConfig, UniversalStyle, load_decoder,
                               load_decoders, moments, reconstruct, stylize, train_decoder)

FP32 = dict(precision="fp32")  # exact comparisons: no bf16 rounding


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three small real photos (scikit-image), the training data."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        save_image(photo(name, 64), folder / f"{name}.png")
    return folder


def train(folder, out, level, width=1.0, iters=60, **train):
    cfg = DecoderConfig(data=[str(folder)], level=level, width=width, crop=32, batch_size=4, texture_share=0.2,
                        train=TrainConfig(iters=iters, lr=5e-3, checkpoint_every=iters, sample_every=0, workers=0,
                                          progress=False, **train))
    return train_decoder(cfg, out)


@pytest.fixture(scope="module")
def decoders(hed, photos, tmp_path_factory):
    """A folder with a relu1_1 decoder (Li et al.'s: one conv) and an eighth-width relu2_1 one, briefly trained."""
    folder = tmp_path_factory.mktemp("decoders")
    train(photos, folder / "relu1_1.safetensors", "relu1_1")
    train(photos, folder / "relu2_1.safetensors", "relu2_1", width=0.125)
    return folder


@pytest.fixture(scope="module")
def paintings():
    return [make_style("swirls", 48, seed=1), make_style("mosaic", 48, seed=2)]


def test_a_decoder_trained_briefly_gives_back_a_photo_it_never_saw(decoders):
    held_out = photo("rocket", 64)
    trained = load_decoders([decoders])
    assert set(trained) == {"relu1_1", "relu2_1"}
    for level, decoder in trained.items():
        untrained = type(decoder)(level, decoder.width)
        untrained.load_state_dict({k: v for k, v in decoder.state_dict().items() if k.startswith("input_")},
                                  strict=False)
        score = psnr(reconstruct(decoder, held_out, **FP32), held_out)
        assert score > psnr(reconstruct(untrained, held_out, **FP32), held_out) + 6
        assert score > {"relu1_1": 24, "relu2_1": 17}[level], (level, score)
    stored = registry.stored_metadata(decoders / "relu1_1.safetensors")
    assert stored["lossnet_kind"] == "universal_decoder" and '"encoder": "hed"' in stored["lossnet_config"]


def test_decoder_training_is_deterministic_and_resumes_exactly(hed, photos, tmp_path):
    whole = load_decoder(train(photos, tmp_path / "a.safetensors", "relu1_1", iters=4))
    again = load_decoder(train(photos, tmp_path / "b.safetensors", "relu1_1", iters=4))
    train(photos, tmp_path / "c.safetensors", "relu1_1", iters=2)
    cfg = DecoderConfig(data=[str(photos)], level="relu1_1", crop=32, batch_size=4, texture_share=0.2,
                        train=TrainConfig(iters=4, lr=5e-3, checkpoint_every=4, sample_every=0, workers=0, progress=False))
    resumed = load_decoder(train_decoder(cfg, tmp_path / "c.safetensors", resume=True))
    for other in (again, resumed):
        assert all(torch.equal(p, q) for p, q in zip(whole.state_dict().values(), other.state_dict().values()))


def features(image, level="relu1_1"):
    from lossnet.universal import encoder
    with torch.no_grad():
        return encoder()(image, [level])[level][0].float()


def covariance(f):
    x = f.flatten(1) - f.flatten(1).mean(1, keepdim=True)
    return x @ x.T / x.shape[1]


def test_wct_gives_the_features_the_paintings_covariance_and_mean(hed):
    content, style = features(photo("astronaut", 64)), features(make_style("swirls", 64))
    out = FeatureMap.between(moments(content, "wct"), moments(style, "wct"))(content)
    target = covariance(style)
    assert (covariance(out) - target).norm() / target.norm() < 1e-3
    assert torch.allclose(out.flatten(1).mean(1), style.flatten(1).mean(1), atol=1e-3 * style.abs().max())
    c = moments(content, "wct")  # whitened: variance 1 in every direction the photo varies in, else 0
    values = torch.linalg.eigvalsh(covariance(FeatureMap(c.inverse, -c.inverse @ c.mean)(content)))
    assert torch.minimum(values.abs(), (values - 1).abs()).max() < 1e-2 and values.sum() > 32  # fp32 eigh
    half = FeatureMap.between(moments(content, "wct"), moments(style, "wct")).toward(0.5)
    assert torch.allclose(half(content), (out + content) / 2, atol=1e-3 * out.abs().max())


def test_wct_whitens_exactly_at_relu4_1(hed):
    """512 channels: an fp32 eigendecomposition leaves the whitened variances up to 4 % off 1 at this size."""
    content = features(photo("astronaut", 192), "relu4_1")
    c = moments(content, "wct")
    values = torch.linalg.eigvalsh(covariance(FeatureMap(c.inverse, -c.inverse @ c.mean)(content)).double())
    assert torch.minimum(values.abs(), (values - 1).abs()).max() < 2e-3 and values.sum() > 400


def test_adain_matches_each_channels_mean_and_standard_deviation(hed):
    content, style = features(photo("coffee", 64)), features(make_style("mosaic", 64))
    out = FeatureMap.between(moments(content, "adain"), moments(style, "adain"))(content).flatten(1)
    live = content.flatten(1).std(1) > 0  # a channel that is 0 everywhere has no deviation to scale
    assert torch.allclose(out.mean(1), style.flatten(1).mean(1), atol=1e-3 * style.abs().max())
    assert torch.allclose(out.std(1, unbiased=False)[live], style.flatten(1).std(1, unbiased=False)[live], rtol=1e-3,
                          atol=1e-3)
    assert FeatureMap.between(moments(content, "adain"), moments(style, "adain")).a.dim() == 1  # per channel


@pytest.mark.parametrize("method", ["wct", "adain"])
def test_alpha_0_is_the_photo_through_the_decoders_and_alpha_1_takes_the_paintings_colours(decoders, paintings, method):
    trained = load_decoders([decoders])
    image = photo("astronaut", 48)
    levels = ["relu2_1", "relu1_1"] if method == "wct" else ["relu2_1"]
    through = image
    for level in levels:
        through = reconstruct(trained[level], through, **FP32).clamp(0, 1)
    none = stylize(image, paintings[:1], UniversalConfig(method=method, alpha=0, **FP32), trained)
    assert torch.allclose(none, through, atol=1e-6)
    full = stylize(image, paintings[:1], UniversalConfig(method=method, **FP32), trained)
    half = stylize(image, paintings[:1], UniversalConfig(method=method, alpha=0.5, **FP32), trained)
    target = moments(features(paintings[0], "relu2_1"), "adain")

    def distance(x):  # of the result's statistics at relu2_1 from the painting's
        found = moments(features(x, "relu2_1"), "adain")
        return float((found.mean - target.mean).norm() + (found.root - target.root).norm())
    assert distance(full) < distance(half) < distance(none)


def test_blend_weights_mix_the_paintings_and_a_one_hot_blend_is_one_painting(decoders, paintings):
    trained, image = load_decoders([decoders]), photo("coffee", 48)
    alone = [stylize(image, [p], UniversalConfig(**FP32), trained) for p in paintings]
    first = stylize(image, paintings, UniversalConfig(style_weights=[1, 0], **FP32), trained)
    mixed = stylize(image, paintings, UniversalConfig(style_weights=[1, 1], **FP32), trained)
    assert torch.allclose(first, alone[0], atol=1e-5)
    between = (mixed - alone[0]).abs().mean(), (mixed - alone[1]).abs().mean(), (alone[0] - alone[1]).abs().mean()
    assert between[0] < between[2] and between[1] < between[2]


def test_a_mask_puts_the_first_painting_on_white_and_the_second_on_black(decoders, paintings):
    trained, image = load_decoders([decoders]), photo("chelsea", 48)
    h, w = image.shape[-2:]
    alone = [stylize(image, [p], UniversalConfig(**FP32), trained) for p in paintings]
    white = stylize(image, paintings, UniversalConfig(**FP32), trained, mask=torch.ones(1, 1, 8, 8))
    assert torch.allclose(white, alone[0], atol=1e-3)  # one region of weight 1: the same statistics
    left = torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1
    split = stylize(image, paintings, UniversalConfig(**FP32), trained, mask=left)
    for side, (first, second) in ((slice(0, w // 2 - 8), alone), (slice(w // 2 + 8, w), alone[::-1])):
        assert (split[..., side] - first[..., side]).abs().mean() < (split[..., side] - second[..., side]).abs().mean()
    none = stylize(image, paintings, UniversalConfig(alpha=0, **FP32), trained)
    assert torch.allclose(stylize(image, paintings, UniversalConfig(alpha=0, **FP32), trained, mask=left), none)
    from lossnet.errors import ConfigError
    for bad in (left.expand(1, 3, h, w), 2 * left):  # an RGB mask, a mask beyond [0, 1]
        with pytest.raises(ConfigError, match="mask"):
            UniversalStyle(paintings, UniversalConfig(**FP32), trained, mask=bad)


def test_original_colours_keep_the_photos_colours(decoders, paintings):
    from lossnet.color import rgb_to_yiq
    trained, image = load_decoders([decoders]), photo("astronaut", 48)
    kept = stylize(image, paintings[:1], UniversalConfig(original_colors=True, **FP32), trained)
    plain = stylize(image, paintings[:1], UniversalConfig(**FP32), trained)
    inside = (kept > 0.02) & (kept < 0.98)  # clamping moves the colours at the ends of the range
    assert (rgb_to_yiq(kept)[:, 1:] - rgb_to_yiq(image)[:, 1:]).abs()[inside[:, 1:]].mean() < 0.01
    assert (rgb_to_yiq(kept)[:, :1] - rgb_to_yiq(plain)[:, :1]).abs().mean() < 0.02


def test_tiles_give_the_whole_images_result(decoders, paintings):
    trained, image = load_decoders([decoders]), photo("astronaut", 96)
    whole = stylize(image, paintings[:1], UniversalConfig(tile=0, **FP32), trained)
    tiles = stylize(image, paintings[:1], UniversalConfig(tile=48, overlap=12, **FP32), trained)
    assert (tiles - whole).abs().max() < 1e-3  # the whitening amplifies the tiles' float rounding
    seams = stylize(image, paintings[:1], UniversalConfig(tile=48, overlap=0, **FP32), trained)
    assert (seams - whole).abs().max() > 1e-2  # it did run in tiles: without their context they show


def test_the_command_line_on_an_image_a_folder_and_a_video(decoders, photos, paintings, tmp_path, capsys):
    style, mask = tmp_path / "painting.png", tmp_path / "mask.png"
    save_image(paintings[0], style)
    save_image(torch.ones(1, 3, 16, 16), mask)
    code, res = run_cli(["stylize", photos / "coffee.png", "--style", style, "--method", "wct", "--decoders",
                         decoders, "-o", tmp_path / "wct.png", "--precision", "fp32", "--quiet"], capsys)
    assert code == 0, res.err
    assert load_image(tmp_path / "wct.png").shape == load_image(photos / "coffee.png").shape
    code, res = run_cli(["stylize", photos, "--style", style, "--style", photos / "chelsea.png", "--method", "adain",
                         "--mask", mask, "--alpha", "0.7", "--size", "40", "--decoders", decoders / "relu2_1.safetensors",
                         "--original-colors", "-o", tmp_path / "folder", "--quiet"], capsys)
    assert code == 0, res.err
    assert files_in(tmp_path / "folder") == ["astronaut.png", "chelsea.png", "coffee.png"]
    pytest.importorskip("imageio_ffmpeg")
    pytest.importorskip("cv2")
    from lossnet.video import count_frames, write_frames
    clip = tmp_path / "clip.mp4"
    write_frames((photo("astronaut", 48)[..., :32, :] for _ in range(4)), clip, fps=8)
    code, res = run_cli(["stylize", clip, "--style", style, "--method", "wct", "--decoders", decoders, "--temporal",
                         "-o", tmp_path / "out.mp4", "--quiet"], capsys)
    assert code == 0, res.err
    assert count_frames(tmp_path / "out.mp4") == 4


def test_adain_reads_the_paintings_at_three_quarters_of_the_output_unless_told():
    from lossnet.universal import STYLE_SIDE, painting_side
    assert painting_side("adain", 512) == 384 and painting_side("wct", 512) == 512
    assert painting_side("adain", None) == round(0.75 * STYLE_SIDE) and painting_side("wct", None) == STYLE_SIDE
    assert painting_side("adain", 512, 1.0) == 512 and painting_side("wct", 300, 2.0) == 600


def test_a_decoder_of_other_encoder_weights_is_refused(decoders, tmp_path):
    from lossnet.errors import LossnetError
    decoder = load_decoder(decoders / "relu1_1.safetensors")
    decoder.encoder, decoder.encoder_check = "other.pth", "1.0e+00"
    with pytest.raises(LossnetError, match="inverts the encoder weights 'other.pth'"):
        UniversalStyle([], UniversalConfig(), {"relu1_1": decoder})


def _bad(tmp_path, decoders, photos, paintings):
    from lossnet.weights import save_model
    style = save_image(paintings[0], tmp_path / "painting.png")
    other_kind = save_model(torch.nn.Conv2d(3, 3, 3), tmp_path / "srnet.safetensors", "srnet", {})
    (tmp_path / "empty").mkdir()
    img = photos / "coffee.png"
    wct = ["--style", style, "--method", "wct", "--decoders", decoders]
    return {
        "no style": ["stylize", img, "--method", "wct", "--decoders", decoders],
        "no decoders there": ["stylize", img, "--style", style, "--method", "adain", "--decoders", tmp_path / "empty"],
        "decoder of another kind": ["stylize", img, "--style", style, "--method", "wct", "--decoders", other_kind],
        "a level without a decoder": ["stylize", img, *wct, "--levels", "relu4_1"],
        "mask with one painting": ["stylize", img, *wct, "--mask", style],
        "blend count": ["stylize", img, *wct, "--style-weights", "1,2"],
        "alpha out of range": ["stylize", img, *wct, "--alpha", "1.5"],
        "paintings too small": ["stylize", img, *wct, "--size", "40", "--style-scale", "0.1"],
        "alpha with gatys": ["stylize", img, "--style", style, "--alpha", "0.5"],
        "an optimisation option": ["stylize", img, *wct, "--iters", "50"],
        "a style network's option": ["stylize", img, *wct, "--blend", "1,1"],
        "with a style network": ["stylize", img, *wct, "--model", "starry-lite"],
        "temporal on one image": ["stylize", img, *wct, "--temporal"],
        "unreadable painting": ["stylize", img, "--style", tmp_path / "missing.png", "--method", "wct",
                                "--decoders", decoders],
    }


@pytest.mark.parametrize("case", ["no style", "no decoders there", "decoder of another kind", "a level without a decoder",
                                  "mask with one painting", "blend count", "alpha out of range", "paintings too small",
                                  "alpha with gatys",
                                  "an optimisation option", "a style network's option",
                                  "with a style network", "temporal on one image", "unreadable painting"])
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(case, decoders, photos, paintings, tmp_path, capsys):
    args = _bad(tmp_path, decoders, photos, paintings)[case]
    (tmp_path / "work").mkdir()
    code, res = run_cli([*args, "-o", tmp_path / "work" / "out.png", "--quiet"], capsys)
    errors = [line for line in res.err.splitlines() if not line.startswith(("lossnet: ", "warning: "))]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: "), res.err
    assert files_in(tmp_path / "work") == []
