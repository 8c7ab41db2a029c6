"""THE pixel loop (lossnet.optimize) on a tiny objective through a 1-conv network: no pretrained weights, seconds.
Optimisers, history, stop, project, clamping, snapshots, non-finite errors, coarse to fine."""
from __future__ import annotations

import pytest
import torch

from lossnet import objectives as O
from lossnet.errors import LossnetError
from lossnet.optimize import LoopConfig, coarse_to_fine, jitter, optimize_pixels


def tiny_net():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    conv.requires_grad_(False)
    return lambda x: {"f": conv(x)}


def target_and_objective(net, hw=(16, 16)):
    target = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(1))
    return target, O.content("f", net(target)["f"])


def loop(**kw) -> LoopConfig:
    return LoopConfig(**{"iters": 20, "progress": False, "precision": "fp32", **kw})


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_loop_reaches_the_target_and_keeps_a_history(optimizer):
    net = tiny_net()
    target, objective = target_and_objective(net)
    cfg = loop(optimizer=optimizer, iters=60 if optimizer == "adam" else 20, lr=0.05 if optimizer == "adam" else None)
    image, history = optimize_pixels(objective, net, torch.full_like(target, 0.5), cfg)
    assert [row["iter"] for row in history] == list(range(1, cfg.iters + 1))
    assert set(history[0]) == {"iter", "content", "loss"}
    assert history[-1]["loss"] < 0.05 * history[0]["loss"]
    assert (image - target).abs().mean() < 0.1 and not image.requires_grad


def test_stop_ends_early_and_project_sees_every_iteration():
    net = tiny_net()
    target, objective = target_and_objective(net)
    seen = []
    cfg = loop(optimizer="adam", lr=0.05, iters=50, stop=lambda row: row["iter"] == 7,
               project=lambda x, it: seen.append((it, tuple(x.shape))))
    _, history = optimize_pixels(objective, net, torch.full_like(target, 0.5), cfg)
    assert len(history) == 7 and [it for it, _ in seen] == list(range(1, 8)) and seen[0][1] == (1, 3, 16, 16)


def test_clamping_rules():
    net = tiny_net()
    # a target far outside [0, 1]: the unclamped optimum leaves the range
    target = torch.full((1, 3, 8, 8), 3.0)
    objective = O.content("f", net(target)["f"])
    start = torch.full((1, 3, 8, 8), 0.5)
    image, _ = optimize_pixels(objective, net, start, loop(optimizer="adam", lr=0.2, iters=10))
    assert image.max() <= 1.0  # Adam: clamped after every step
    free, _ = optimize_pixels(objective, net, start, loop(optimizer="adam", lr=0.2, iters=10, clamp=False))
    assert free.max() > 1.5  # clamp=False (DeepDream's signed detail, class models) keeps the values
    lbfgs, _ = optimize_pixels(objective, net, start, loop(optimizer="lbfgs", iters=5))
    assert lbfgs.min() >= 0 and lbfgs.max() <= 1  # L-BFGS: clamped once, at the end


def test_a_non_finite_term_stops_the_loop_naming_it():
    net = tiny_net()
    target, objective = target_and_objective(net)
    bad = objective + O.Objective([(1.0, "exploding", lambda feats, image: image.sum() * float("inf"))])
    with pytest.raises(LossnetError, match=r"loss term exploding became non-finite at iteration 0"):
        optimize_pixels(bad, net, torch.full_like(target, 0.5), loop())


def test_snapshots_every_n_iterations_but_not_the_last(tmp_path):
    net = tiny_net()
    target, objective = target_and_objective(net)
    out = tmp_path / "out.png"
    optimize_pixels(objective, net, torch.full_like(target, 0.5), loop(iters=9, snapshot_every=3, snapshot_path=str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_iter0003.png", "out_iter0006.png"]


def test_coarse_to_fine_grows_the_image_and_keeps_every_stage_in_the_history():
    net = tiny_net()
    sizes, starts = [(8, 12), (16, 24)], []

    def build(hw):
        target = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(2))
        starts.append(hw)
        return O.content("f", net(target)["f"]), torch.full((1, 3, *hw), 0.5)
    image, history = coarse_to_fine(sizes, build, net, loop(iters=4), iters=[5, 3])
    assert image.shape == (1, 3, 16, 24) and starts == sizes
    assert [row["iter"] for row in history] == [1, 2, 3, 4, 5, 1, 2, 3]


def test_a_taps_object_is_asked_for_the_objective_layers_only():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).requires_grad_(False)
    asked = []

    class Taps:
        def taps(self, x, names):
            asked.append(tuple(names))
            return {"f": conv(x), "unused": conv(x) * 2}
    target = torch.rand(1, 3, 8, 8)
    optimize_pixels(O.content("f", conv(target)), Taps(), torch.full_like(target, 0.5), loop(iters=2))
    assert set(asked) == {("f",)}


def test_jitter_is_seeded_and_shifts_by_at_most_its_pixels():
    x = torch.arange(100.0).reshape(1, 1, 10, 10)
    a, b = jitter(2, seed=5), jitter(2, seed=5)
    for _ in range(5):
        ya, yb = a(x), b(x)
        assert torch.equal(ya, yb)
        shift = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(torch.roll(x, (dy, dx), (-2, -1)), ya)]
        assert shift


def test_the_loop_offers_its_iterate_to_a_progress_observer():
    from lossnet.progress import observe
    net = tiny_net()
    target, objective = target_and_objective(net)
    seen = []
    observe(lambda desc, n, total, terms, image: seen.append((n, None if image is None else image().shape)))
    try:
        optimize_pixels(objective, net, torch.full_like(target, 0.5), loop(iters=3, desc="observed"))
    finally:
        observe(None)
    assert seen[0] == (0, None) and [n for n, _ in seen[1:4]] == [1, 2, 3] and seen[1][1] == (1, 3, 16, 16)
    assert seen[-1][0] is None  # the bar closed
