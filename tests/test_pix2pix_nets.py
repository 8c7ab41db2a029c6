"""pix2pix networks: the reference's parameter counts, output map, receptive fields, dropout as noise."""
import pytest
import torch

from lossnet.errors import LossnetError
from lossnet.nets import count_parameters
from lossnet.nets.patchgan import PixelDiscriminator, define_discriminator, receptive_field
from lossnet.nets.unet import ResnetGenerator, UnetGenerator, define_generator, init_weights


def test_unet_256_has_the_reference_parameter_count():
    net = UnetGenerator()  # define_generator would also spend seconds initialising 54M weights
    assert count_parameters(net) == 54_413_955
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight" in net.state_dict()


def test_resnet_9blocks_with_instance_norm_has_the_reference_count():
    assert count_parameters(ResnetGenerator(norm="instance", n_blocks=9)) == 11_378_179  # CycleGAN's printout


def test_basic_patchgan_count_and_30x30_map():
    net = define_discriminator("basic")
    assert count_parameters(net) == 2_768_705
    with torch.no_grad():
        assert net.eval()(torch.rand(1, 6, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("n_layers, size", [(1, 16), (2, 34), (3, 70), (4, 142), (5, 286)])
def test_receptive_fields(n_layers, size):
    assert receptive_field(n_layers) == size


def test_receptive_field_of_built_networks():
    assert receptive_field(define_discriminator("basic", ndf=4)) == 70
    assert receptive_field(PixelDiscriminator(ndf=4)) == 1
    with torch.no_grad():
        assert define_discriminator("pixel", ndf=4)(torch.rand(1, 6, 20, 24)).shape == (1, 1, 20, 24)


def test_unet_is_fully_convolutional_at_512():
    net = define_generator("unet_256", ngf=4).eval()  # width does not change the geometry; keeps it fast
    with torch.no_grad():
        out = net(torch.rand(1, 3, 512, 512) * 2 - 1)
    assert out.shape == (1, 3, 512, 512) and out.abs().max() <= 1


def test_unet_rejects_sizes_it_cannot_halve_8_times():
    with pytest.raises(LossnetError, match="divisible by 256"):
        UnetGenerator(ngf=2)(torch.rand(1, 3, 256, 200))


def test_dropout_stays_on_in_eval_mode_in_three_decoder_levels():
    net = define_generator("unet_256", ngf=4, generator=torch.Generator().manual_seed(0)).eval()
    assert sum(type(m).__name__ == "NoiseDropout" for m in net.modules()) == 3
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))
    quiet = define_generator("unet_256", ngf=4, dropout=False).eval()
    with torch.no_grad():
        assert torch.equal(quiet(x), quiet(x))


def test_unet_128_and_resnet_6blocks_shapes():
    with torch.no_grad():
        assert define_generator("unet_128", ngf=4)(torch.rand(1, 3, 128, 128)).shape == (1, 3, 128, 128)
        assert define_generator("resnet_6blocks", ngf=4, output_nc=1)(torch.rand(1, 3, 36, 20)).shape == (1, 1, 36, 20)


def test_init_is_reproducible_and_follows_the_reference():
    a = define_discriminator("basic", ndf=8, generator=torch.Generator().manual_seed(1))
    b = define_discriminator("basic", ndf=8, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    w = init_weights(define_discriminator("basic", ndf=64), "normal", 0.02).model[2].weight
    assert abs(w.std().item() - 0.02) < 1e-3
    for kind in ("xavier", "kaiming", "orthogonal"):
        init_weights(define_generator("resnet_6blocks", ngf=4), kind)


def test_unknown_names_suggest():
    with pytest.raises(LossnetError, match="did you mean unet_256"):
        define_generator("unet256")
    with pytest.raises(LossnetError, match="unknown discriminator"):
        define_discriminator("patch")
    with pytest.raises(LossnetError, match="unknown norm"):
        define_discriminator("basic", norm="group")
    with pytest.raises(LossnetError, match="unknown init"):
        define_discriminator("basic", init_type="uniform")
