"""Gram, content, style and TV against values computed by hand on tiny explicit tensors."""
import pytest
import torch

from lossnet import objectives as O

# One image, two channels, 2x2: channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [0, -1]].
F = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])


def test_gram_matrix_by_hand():
    # flat rows: c0 = (1, 2, 3, 4), c1 = (0, 1, 0, -1); C*H*W = 8
    # c0.c0 = 1+4+9+16 = 30, c0.c1 = 0+2+0-4 = -2, c1.c1 = 0+1+0+1 = 2
    expected = torch.tensor([[[30.0, -2.0], [-2.0, 2.0]]]) / 8
    assert torch.allclose(O.gram_matrix(F), expected)


def test_gram_matrix_batch_and_symmetry():
    f = torch.randn(3, 4, 5, 6)
    g = O.gram_matrix(f)
    assert g.shape == (3, 4, 4)
    assert torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g[1], O.gram_matrix(f[1:2])[0])


def test_relative_mse_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # target 1: squared errors 0, 1, 4, 9 -> mean 3.5; mean(target^2) = 1
    assert O.relative_mse(x, torch.ones(4)).item() == pytest.approx(3.5)
    # target 2: squared errors 1, 0, 1, 4 -> mean 1.5; mean(target^2) = 4 -> 0.375
    assert O.relative_mse(x, torch.full((4,), 2.0)).item() == pytest.approx(0.375)
    # a zero target does not divide by zero
    assert O.relative_mse(x, torch.zeros(4)).item() == pytest.approx(7.5 / 1e-8, rel=1e-4)


def test_relative_mse_of_a_batch_is_the_mean_of_its_images():
    # image 0: errors 1, 1 over target energy 1 -> 1; image 1: errors 0, 4 (mean 2) over energy 4 -> 0.5
    x = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    t = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    assert O.relative_mse(x, t).item() == pytest.approx((1.0 + 0.5) / 2)
    # a shared target (batch 1, e.g. a style Gram) is compared with every image
    assert O.relative_mse(x, t[:1]).item() == pytest.approx(1.0)


def test_content_loss_is_relative_to_target_energy():
    target = {"relu": torch.full((1, 1, 2, 2), 2.0)}
    obj = O.content("relu", target["relu"])
    assert obj.layers == ("relu",)
    feats = {"relu": torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])}
    assert obj(feats, None).item() == pytest.approx(0.375)
    # scaling features and target together leaves the loss unchanged (relative), unlike a plain MSE
    scaled = O.content("relu", 60 * target["relu"])
    assert scaled({"relu": 60 * feats["relu"]}, None).item() == pytest.approx(0.375, rel=1e-5)
    assert obj(target, None).item() == 0.0


def test_style_loss_by_hand():
    g = O.gram_matrix(F)[0]  # [[3.75, -0.25], [-0.25, 0.25]]
    # target Gram: identity/4 -> differences (3.5, -0.25, -0.25, 0): mean sq = (12.25 + 0.0625*2) / 4
    target = torch.eye(2)[None] / 4
    expected_a = (12.25 + 0.125) / 4 / (2 * 0.0625 / 4)  # divided by mean(target^2) = 0.03125
    assert expected_a == pytest.approx(99.0)
    # second layer: features zero -> Gram zero -> relative error exactly 1
    target_b = g[None].clone()
    obj = O.style({"a": target, "b": target_b}, {"a": 0.25, "b": 2.0})
    assert set(obj.layers) == {"a", "b"}
    value = obj({"a": F, "b": torch.zeros_like(F)}, None).item()
    assert value == pytest.approx(0.25 * 99.0 + 2.0 * 1.0, rel=1e-6)
    # default layer weights are 1/L
    value = O.style({"a": target, "b": target_b})({"a": F, "b": torch.zeros_like(F)}, None).item()
    assert value == pytest.approx(0.5 * 99.0 + 0.5 * 1.0, rel=1e-6)


def test_tv_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical differences 3, 4 -> mean sq 12.5; horizontal 1, 2 -> mean sq 2.5
    assert O.tv()({}, image).item() == pytest.approx(15.0)
    assert O.tv()({}, torch.full((1, 3, 8, 8), 0.3)).item() == 0.0
    # two channels: the means run over every channel
    two = torch.cat([image, torch.zeros_like(image)], 1)
    assert O.tv()({}, two).item() == pytest.approx(7.5)


def test_objective_algebra():
    feats = {"relu": torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])}
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    content = O.content("relu", torch.ones(1, 1, 2, 2))  # 3.5
    obj = 2 * content + O.tv() * 3
    parts = obj.parts(feats, image)
    assert set(parts) == {"content", "tv"}
    assert parts["content"].item() == pytest.approx(7.0)
    assert parts["tv"].item() == pytest.approx(45.0)
    assert obj(feats, image).item() == pytest.approx(52.0)
    # same-named terms add up; sum() works; zero-weighted terms are not evaluated
    both = sum([content, content, 0 * O.tv()])
    assert both.parts(feats, image).keys() == {"content"}
    assert both(feats, image).item() == pytest.approx(7.0)
    assert (content - content)(feats, image).item() == pytest.approx(0.0)
    assert (-content)(feats, image).item() == pytest.approx(-3.5)
    assert (content + O.style({"b": torch.eye(2)[None]})).layers == ("relu", "b")


def test_activation_and_l2():
    f = {"x": torch.arange(8.0).view(1, 2, 2, 2)}
    assert O.activation("x")(f, None).item() == pytest.approx(3.5)
    assert O.activation("x", channel=1)(f, None).item() == pytest.approx(5.5)
    assert O.l2()({}, torch.tensor([0.0, 1.0, 0.5])).item() == pytest.approx((0.25 + 0.25 + 0) / 3)


def test_targets_are_detached():
    target = torch.ones(1, 1, 2, 2, requires_grad=True)
    obj = O.content("relu", target * 2)
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)
    obj({"relu": x}, None).backward()
    assert target.grad is None and x.grad is not None


def test_color_term_by_hand_and_blind_to_where_the_colours_are():
    d = O.color_directions(64)
    assert torch.allclose(d.norm(dim=1), torch.ones(64)) and d.mean(0).abs().max() < 0.05
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    term = O.colors(target, 64)
    shuffled = target.flatten(2)[..., torch.randperm(64, generator=torch.Generator().manual_seed(1))].view(1, 3, 8, 8)
    assert term(None, shuffled).item() == pytest.approx(0.0, abs=1e-12)  # the same colours, elsewhere
    # every pixel 0.1 brighter in each channel: each projection moves by 0.1 * (dx + dy + dz)
    brighter = term(None, target + 0.1).item()
    assert brighter == pytest.approx((0.1 * d.sum(1)).pow(2).mean().item(), rel=1e-5)
    # a 16x16 image is compared with the 8x8 target's quantiles: each target pixel repeated 4 times
    assert term(None, target.repeat_interleave(2, -1).repeat_interleave(2, -2)).item() == pytest.approx(0.0, abs=1e-12)


def test_lattice_term_by_hand():
    dots = torch.zeros(1, 1, 16, 16)
    dots[..., ::4, ::4] = 1.0  # one phase of sixteen lit: the phase means are 1 and fifteen 0s
    assert O.lattice()({}, dots).item() == pytest.approx(torch.tensor([1.0] + [0.0] * 15).var().item())
    assert O.lattice()({}, dots.roll((1, 2), (-2, -1))).item() == pytest.approx(0.0625)  # any phase
    assert O.lattice()({}, torch.full((2, 3, 18, 17), 0.4)).item() == pytest.approx(0.0, abs=1e-12)
    stripes = torch.zeros(1, 1, 8, 8)
    stripes[..., ::2, :] = 1.0  # a period-2 pattern repeats every 4 pixels too
    assert O.lattice()({}, stripes).item() > 0.2
