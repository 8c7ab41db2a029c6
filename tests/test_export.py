"""ONNX export of every model kind (lossnet.export): onnxruntime against torch, checked before the file is kept."""
from __future__ import annotations

import pytest
import torch

from lossnet import export, registry
from lossnet.cli import main
from lossnet.nets.srnet import SRNet
from lossnet.pix2pix import apply as pix2pix_apply
from lossnet.pix2pix import build_generator, save_generator
from lossnet.superres import save_srnet, upscale

pytest.importorskip("onnxruntime")


def test_sr_graph_matches_torch_at_odd_sizes(tmp_path):
    torch.manual_seed(0)
    net = SRNet(4, channels=8, blocks=1).eval()
    path, difference = export.export_onnx(registry.graph_of(net), tmp_path / "sr.onnx")
    assert difference < 1e-4
    x = torch.rand(1, 3, 13, 22)
    got = export.run_onnx(export.onnx_session(path), x, multiple=1, scale=4)
    assert got.shape == (1, 3, 52, 88)
    assert (got.clamp(0, 1) - upscale(net, x, tile=0, precision="fp32")).abs().max() < 1e-4


def test_pix2pix_graph_is_the_test_mode_generator_without_dropout(tmp_path):
    config = {"netG": "unet_128", "ngf": 4, "norm": "batch", "dropout": True}
    net = build_generator(config).train()
    with torch.no_grad():  # trained-looking norms
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    path, difference = export.export_onnx(registry.graph_of(net), tmp_path / "p2p.onnx")
    assert difference < 1e-4
    x = torch.rand(1, 3, 70, 100)
    got = export.run_onnx(export.onnx_session(path), x, multiple=128, centered=True)
    # the torch generator in test mode with its dropout switched off: per-image batch statistics
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    want = pix2pix_apply(net, x, precision="fp32")
    assert got.shape == want.shape == (1, 3, 70, 100)
    assert (got.clamp(0, 1) - want).abs().max() < 1e-4


def test_export_command_takes_every_kind_and_says_which(tmp_path, capsys):
    torch.manual_seed(0)
    sr = save_srnet(SRNet(4, channels=8, blocks=1), tmp_path / "sr.safetensors", {"loss": "pixel"})
    p2p = save_generator(build_generator({"netG": "unet_128", "ngf": 4, "norm": "batch", "dropout": True}),
                         tmp_path / "g.safetensors", {"netG": "unet_128", "ngf": 4, "norm": "batch", "dropout": True})
    for model, kind in [(sr, "super-resolution"), (p2p, "pix2pix"), ("starry-lite", "style")]:
        assert main(["export", str(model), "--onnx", str(tmp_path / f"{kind}.onnx")]) == 0
        out = capsys.readouterr().out
        assert f"({kind} model; onnxruntime vs torch" in out and (tmp_path / f"{kind}.onnx").is_file()
    assert main(["export", "no-such-model", "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
