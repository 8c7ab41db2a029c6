"""pix2pix generators (Isola et al., https://arxiv.org/abs/1611.07004) as in junyanz/pytorch-CycleGAN-and-pix2pix.

`define_generator("unet_256")` is the paper's generator: 8 stride-2 4x4 convs down to 1x1, 8 transposed
convs back up, and a skip from each encoder level to the decoder level of the same size (i <-> n-i).
It has exactly 54,413,955 parameters for RGB -> RGB with batch norm, as the reference prints, and the same
state-dict keys (`model.model.1.model.3...`), so the reference's checkpoints load. `resnet_9blocks` is
the reference's alternative (Johnson-style encoder, 9 residual blocks, decoder).

Dropout is the only noise source (the paper found input noise z ignored): `NoiseDropout` stays on in eval
mode, so `net.eval()` freezes batch-norm statistics but keeps the sampling. The reference puts it in the
three 512-channel decoder levels right outside the innermost one (the paper says "the first three decoder
layers"; we follow the reference's code). Inputs and outputs are in [-1, 1] (Tanh); map [0, 1] images with
`x * 2 - 1` and back with `(y + 1) / 2`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LossnetError, suggest
from .reflectconv import ReflectionPad2d

NORMS = ("batch", "instance", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The reference's choices: batch norm (affine, running stats), instance norm (neither), or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise LossnetError(f"unknown norm {kind!r}: choose one of {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    """A conv followed by batch norm needs no bias: the norm's shift replaces it."""
    return norm != "batch"


class NoiseDropout(nn.Dropout):
    """Dropout that stays on in eval mode: pix2pix's noise source at training AND test time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True, inplace=self.inplace)


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down, the inner levels (`submodule`), up, then the skip [x, up(...)] to the outer level.

    The outermost level has no skip (it returns the image, through Tanh) and no norm; the innermost has no
    submodule and no norm after its down conv (its output is 1x1 at 256 px).
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "batch", dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        bias = conv_bias(norm)
        down_conv = nn.Conv2d(input_nc or outer_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        up_in = inner_nc if innermost else inner_nc * 2  # below the innermost level, skips double the channels
        if outermost:
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        else:
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            down = [nn.LeakyReLU(0.2, True), down_conv] + ([] if innermost else [norm_layer(norm, inner_nc)])
            layers = down + ([] if innermost else [submodule]) + [nn.ReLU(True), up_conv, norm_layer(norm, outer_nc)]
            layers += [NoiseDropout(0.5)] if dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` halvings: input H and W must be multiples of 2**num_downs (256 for unet_256)."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: bool = True):
        super().__init__()
        if num_downs < 2:
            raise LossnetError(f"a U-Net needs at least 2 downsamplings, got {num_downs}")
        self.num_downs = num_downs
        width = [ngf * min(2 ** level, 8) for level in range(num_downs)]  # inner channels per level, capped at 8*ngf
        block = None
        for level in reversed(range(num_downs)):  # built from the innermost level out
            outermost, innermost = level == 0, level == num_downs - 1
            block = UnetSkipConnectionBlock(
                outer_nc=output_nc if outermost else width[level - 1], inner_nc=width[level],
                input_nc=input_nc if outermost else None, submodule=block, outermost=outermost,
                innermost=innermost, norm=norm, dropout=dropout and 4 <= level < num_downs - 1)
        self.model = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2 ** self.num_downs
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise LossnetError(f"this U-Net needs height and width divisible by {multiple}, "
                               f"got {x.shape[-1]}x{x.shape[-2]}: crop or resize the input")
        return self.model(x)


class ResnetBlock(nn.Module):
    """x + (pad-conv-norm-relu-[dropout]-pad-conv-norm)(x), with the reference's layer order (and keys)."""

    def __init__(self, dim: int, norm: str = "batch", dropout: bool = False):
        super().__init__()
        bias = conv_bias(norm)
        layers = [ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True)]
        layers += [NoiseDropout(0.5)] if dropout else []
        layers += [ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """7x7 conv, 2 stride-2 downsamplings, `n_blocks` ResnetBlocks, 2 transposed-conv upsamplings, 7x7 conv, Tanh.

    H and W must be multiples of 4. (The transposed convs are the reference's, kept for its checkpoints.)
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch",
                 dropout: bool = False, n_blocks: int = 9, n_downsampling: int = 2):
        super().__init__()
        bias = conv_bias(norm)
        layers = [ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(n_downsampling):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), norm_layer(norm, c * 2), nn.ReLU(True)]
        dim = ngf * 2 ** n_downsampling
        layers += [ResnetBlock(dim, norm, dropout) for _ in range(n_blocks)]
        for i in reversed(range(n_downsampling)):
            c = ngf * 2 ** (i + 1)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


GENERATORS = {
    "unet_256": lambda **kw: UnetGenerator(num_downs=8, **kw),
    "unet_128": lambda **kw: UnetGenerator(num_downs=7, **kw),
    "resnet_9blocks": lambda **kw: ResnetGenerator(n_blocks=9, **kw),
    "resnet_6blocks": lambda **kw: ResnetGenerator(n_blocks=6, **kw),
}


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02,
                 generator: torch.Generator | None = None) -> nn.Module:
    """The reference's init: conv weights N(0, gain) (or xavier/kaiming/orthogonal), biases 0,
    batch-norm scales N(1, gain). Pass a seeded `generator` for reproducible weights."""
    if init_type not in INITS:
        raise LossnetError(f"unknown init {init_type!r}{suggest(init_type, INITS)}: choose one of {', '.join(INITS)}")
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, init_gain, generator=generator)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=init_gain, generator=generator)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in", generator=generator)
            else:
                nn.init.orthogonal_(m.weight, gain=init_gain, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, init_gain, generator=generator)
            nn.init.zeros_(m.bias)
    return net


def define_generator(name: str = "unet_256", input_nc: int = 3, output_nc: int = 3, ngf: int = 64,
                     norm: str = "batch", dropout: bool = True, init_type: str = "normal",
                     init_gain: float = 0.02, generator: torch.Generator | None = None) -> nn.Module:
    """A generator by its reference name, initialised. pix2pix's defaults: unet_256, batch norm, dropout."""
    if name not in GENERATORS:
        raise LossnetError(f"unknown generator {name!r}{suggest(name, GENERATORS)}: choose one of {', '.join(GENERATORS)}")
    net = GENERATORS[name](input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm, dropout=dropout)
    return init_weights(net, init_type, init_gain, generator)
