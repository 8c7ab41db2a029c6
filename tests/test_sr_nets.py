"""SRNet: exact output sizes, bicubic start, config round trip, scale checks."""
import pytest
import torch
import torch.nn.functional as F

from lossnet.errors import LossnetError
from lossnet.nets.srnet import SRNet


@pytest.mark.parametrize("scale", [4, 8])
def test_output_is_exactly_scale_times_odd_input(scale):
    torch.manual_seed(0)
    net = SRNet(scale, channels=8).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 37, 23))
    assert out.shape == (1, 3, 37 * scale, 23 * scale)


def test_default_is_johnson_layout_with_log2_upsampling_stages():
    assert len(SRNet(4).body) == 4 and len(SRNet(4).upsample) == 2 and len(SRNet(8).upsample) == 3
    assert SRNet(4).head[0][1].weight.shape == (64, 3, 9, 9)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in SRNet(4).modules())


def test_untrained_residual_net_is_exactly_bicubic():
    lr = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        out = SRNet(4, channels=8)(lr)
    assert torch.allclose(out, F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False))


def test_direct_mode_outputs_in_unit_range():
    with torch.no_grad():
        out = SRNet(2, channels=8, norm="batch", residual=False).eval()(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 16, 16) and 0 <= out.min() and out.max() <= 1


def test_config_round_trip_also_from_metadata_strings():
    net = SRNet(8, channels=16, blocks=2, norm="none", residual=False)
    assert SRNet.from_config(net.config()).config() == net.config()
    as_strings = {k: str(v) for k, v in net.config().items()}
    assert SRNet.from_config(as_strings).config() == net.config()
    with pytest.raises(LossnetError, match="unknown SRNet config"):
        SRNet.from_config({"scale": 4, "depth": 3})
    with pytest.raises(LossnetError, match="not an SR network"):
        SRNet.from_config({"arch": "unet_256"})


def test_checkpoint_of_another_scale_is_refused_clearly():
    x8 = SRNet(8, channels=8).state_dict()
    with pytest.raises(LossnetError, match="x8 super-resolution, not x4"):
        SRNet(4, channels=8).load_state_dict(x8)  # the x4 keys are a subset of x8's: shapes alone would not tell
    SRNet(8, channels=8).load_state_dict(x8)


@pytest.mark.parametrize("bad", [3, 1, 6, 2.5])
def test_bad_scale(bad):
    with pytest.raises(LossnetError, match="scale"):
        SRNet(bad)


def test_bad_norm_and_tiny_input():
    with pytest.raises(LossnetError, match="unknown norm"):
        SRNet(4, norm="layer")
    with pytest.raises(LossnetError, match="at least 5 pixels"):
        SRNet(4, channels=4)(torch.rand(1, 3, 4, 8))
