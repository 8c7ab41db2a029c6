"""--precision: the choice (auto / fp32 / bf16 / fp16, the unsupported case), bf16 against fp32 on tiny real
networks, and exact resume of a bf16 training run. bf16 runs on any CPU (slowly where it has no AMX), so these
tests build the Precision directly instead of asking the CPU."""
from __future__ import annotations

import math

import pytest
import torch

from lossnet import fast, precision
from lossnet.cli import main
from lossnet.errors import LossnetError
from lossnet.io import save_image
from lossnet.nets.transformer import TransformerNet
from lossnet.train import TrainConfig, train

BF16 = precision.Precision("bf16", "cpu")
TINY = dict(channels=(4, 8, 8), n_residual=1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a - b).pow(2).mean())
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


@pytest.fixture
def cpu(monkeypatch):
    """Pretend the CPU has the given flags."""
    def set_flags(*flags):
        monkeypatch.setattr(precision, "cpu_info", lambda: ("Test CPU", frozenset(flags)))
    return set_flags


def test_auto_takes_bf16_only_where_the_cpu_has_it(cpu):
    cpu("avx512f", "amx_bf16", "amx_tile")
    p = precision.resolve("auto", "cpu")
    assert p.name == "bf16" and p.dtype == torch.bfloat16 and "AMX-BF16" in p.describe()
    cpu("avx512f", "avx512_bf16")
    assert precision.resolve("auto", "cpu").name == "bf16"
    cpu("avx2", "avx512f")
    assert precision.resolve("auto", "cpu").name == "fp32"
    assert precision.resolve("fp32", "cpu").name == "fp32"


def test_explicit_bf16_without_support_and_fp16_off_cuda_are_errors(cpu):
    cpu("avx2")
    with pytest.raises(LossnetError, match="neither AMX-BF16 nor AVX512-BF16"):
        precision.resolve("bf16", "cpu")
    with pytest.raises(LossnetError, match="needs a CUDA device"):
        precision.resolve("fp16", "cpu")
    with pytest.raises(LossnetError, match="unknown precision"):
        precision.resolve("int8", "cpu")


def test_cli_refuses_bf16_on_a_cpu_without_it_in_one_line(cpu, tmp_path, capsys):
    cpu("avx2")
    photo = tmp_path / "p.png"
    save_image(torch.rand(1, 3, 16, 16), photo)
    code = main(["stylize", str(photo), "--model", "starry", "-o", str(tmp_path / "o.png"), "--precision", "bf16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --precision bf16")
    assert not (tmp_path / "o.png").exists()


def test_cpu_description_names_the_model_and_flags(cpu):
    cpu("amx_bf16", "amx_tile", "avx512_bf16")
    assert precision.describe_cpu() == "Test CPU (amx_bf16 amx_tile avx512_bf16)"
    cpu("avx2")
    assert "no AMX" in precision.describe_cpu()


def test_gram_matrix_stays_fp32_under_autocast():
    from lossnet.objectives import gram_matrix
    f = torch.rand(2, 16, 12, 12).contiguous(memory_format=torch.channels_last)
    with BF16.autocast():
        g = gram_matrix(f.bfloat16())
    assert g.dtype == torch.float32
    exact = gram_matrix(f.bfloat16().float())  # the Gram of the same bf16 values, in fp32
    assert torch.allclose(g, exact, rtol=1e-5, atol=1e-7)


def _trained_like_tiny(seed=0):
    torch.manual_seed(seed)
    net = TransformerNet(2, **TINY)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, fast.CondInstanceNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.5)
        net.up[-1].conv.weight.mul_(100)
    return net.eval()


def test_bf16_style_network_matches_fp32(tmp_path):
    from lossnet.io import bundled_photo
    image = bundled_photo("astronaut", 96)
    net = _trained_like_tiny()
    for style in (None, torch.tensor([0.3, 0.7])):
        a = fast.apply(net, image, style, precision="fp32")
        b = fast.apply(net, image, style, precision=BF16)
        assert b.dtype == torch.float32 and b.shape == a.shape
        assert psnr(a, b) > 35, psnr(a, b)
    tiles = dict(tile=48, overlap=16)  # tiles share the whole image's norm statistics, recorded in fp32
    assert psnr(fast.apply(net, image, **tiles, precision="fp32"), fast.apply(net, image, **tiles, precision=BF16)) > 35


def test_bf16_super_resolution_and_pix2pix_match_fp32():
    from lossnet import pix2pix, superres
    from lossnet.nets.srnet import SRNet
    from lossnet.nets.unet import define_generator
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 24, 24)
    sr = SRNet(4, 8, 1).eval()
    assert psnr(superres.upscale(sr, lr, precision="fp32"), superres.upscale(sr, lr, precision=BF16)) > 35
    g = define_generator("unet_128", ngf=4, norm="batch", dropout=True, generator=torch.Generator().manual_seed(0)).eval()
    x = torch.rand(1, 3, 40, 40)
    assert psnr(pix2pix.apply(g, x, precision="fp32"), pix2pix.apply(g, x, precision=BF16)) > 30


def _task(photos, tmp_path, **kw):
    from lossnet.procedural import make_style
    style = tmp_path / "style.png"
    if not style.exists():
        save_image(make_style("swirls", 64), style)
    cfg = fast.FastStyleConfig(styles=[str(style)], data=[str(photos)], crop=32, batch_size=2, style_size=64,
                               arch="lite", train=TrainConfig(**{"progress": False, "sample_every": 0,
                                                                 "precision": BF16, **kw}))
    return fast.FastStyleTask(cfg, quiet=True)


def test_bf16_training_learns_and_resumes_exactly(photos, tmp_path):
    from lossnet.weights import load_state_dict
    whole = _task(photos, tmp_path, iters=6, checkpoint_every=3, lr=1e-2)
    rows = train(whole, tmp_path / "a", whole.cfg.train)
    assert all(math.isfinite(r["total"]) for r in rows)
    part = _task(photos, tmp_path, iters=3, checkpoint_every=3, lr=1e-2)
    train(part, tmp_path / "b", part.cfg.train)  # "killed" after step 3
    rest = _task(photos, tmp_path, iters=6, checkpoint_every=3, lr=1e-2)
    train(rest, tmp_path / "b", rest.cfg.train, resume=True)
    a, b = (load_state_dict(tmp_path / d / "checkpoint.safetensors") for d in "ab")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_the_same_seed_builds_the_same_network_and_another_seed_does_not(photos, tmp_path):
    def weights(seed):
        task = _task(photos, tmp_path, seed=seed)
        return torch.cat([p.detach().flatten() for p in task.generator.parameters()])
    torch.manual_seed(123)  # the global RNG's state must not matter
    first = weights(0)
    torch.manual_seed(456)
    assert torch.equal(first, weights(0))
    assert not torch.equal(first, weights(1))
