"""The image transformation network of Johnson, Alahi & Fei-Fei (https://arxiv.org/abs/1603.08155), with
conditional instance normalisation (Dumoulin, Shlens & Kudlur, https://arxiv.org/abs/1610.07629) so one
network holds many styles.

    9x9 conv 32 -> 3x3/2 conv 64 -> 3x3/2 conv 128 -> 5 residual blocks of 128 -> up 64 -> up 32 -> 9x9 conv 3

Every conv pads by reflection (zero padding leaves dark frames around the output). Upsampling is nearest
neighbour x2 followed by a 3x3 conv rather than a transposed conv: a stride-2 transposed conv overlaps its
kernels unevenly and prints a checkerboard into the output (Odena et al., https://distill.pub/2016/deconv-checkerboard/).
`upsample="bilinear"` interpolates instead, at about twice the two layers' cost. Either way a trained network can
print a lattice with the 4-pixel period of its two x2 stages, weaker by half or more when bilinear upsampling is
trained from scratch (docs/style-study.md measures it).
`downsample="blur"` makes the two stride-2 convolutions anti-aliased (Zhang, "Making Convolutional Networks
Shift-Invariant Again", https://arxiv.org/abs/1904.11486): each convolves at full resolution, normalises and
rectifies, then blurs by a [1, 2, 1] binomial before keeping every second pixel, at 4x those two layers' cost.
Fully convolutional: any H x W goes in, the same H x W comes out (odd sizes are padded to a multiple of 4
by reflection and cropped back).

One change to the paper, without parameters: the output is the input plus the network's last conv (a global
skip connection) instead of a scaled tanh. Training starts from the identity (zero content loss) and only
learns the change, which makes a few hundred CPU steps enough for a usable network; the output is not
bounded during training (like pytorch/examples) and is clamped to [0, 1] when applied.

Normalisation is instance norm by default (Ulyanov et al.: better stylisation than the paper's batch norm),
or batch norm (`norm="batch"`, as in the paper). With `n_styles > 1` each instance norm keeps one scale and
shift per style; a style is chosen, or several blended, by a (N, n_styles) weight vector `style`: the
network's scales and shifts are that mix of the per-style ones, so blending is continuous and blending
one-hot equals the single style exactly.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .reflectconv import inference_weights, pad, reflect_conv2d, upsample_conv3x3

ARCHS = {
    # name: (channels of the three down stages, residual blocks)
    "full": ((32, 64, 128), 5),
    "lite": ((8, 16, 32), 3),  # ~1/15 of the FLOPs: real time on 2 CPU cores
}


class CondInstanceNorm(nn.Module):
    """Instance norm with one affine (scale, shift) per style; `style` (N, n_styles) mixes them.

    `stats`, when set to (mean, var), replaces the per-image statistics (tiled inference uses the whole
    image's statistics in every tile so that tiles agree)."""

    group_norm_inference = True  # the faster CPU inference kernel (see forward); False times the instance-norm path

    def __init__(self, channels: int, n_styles: int = 1, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_styles, channels))
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.record: list | None = None

    def forward(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        # The affine: (C,) when the whole batch has one style (None: the first; a (n_styles,) vector: one blend),
        # (N, C) for a blend per image. A weighted sum, not a matmul: autocast would take a matmul to bf16.
        if style is None:
            weight, bias = self.weight[0], self.bias[0]
        elif style.dim() == 1:
            s = style.float()[:, None]
            weight, bias = (s * self.weight).sum(0), (s * self.bias).sum(0)
        else:
            s = style.float()[:, :, None]
            weight, bias = (s * self.weight).sum(1), (s * self.bias).sum(1)
        if self.stats is None and self.record is None and weight.dim() == 1 and not torch.onnx.is_in_onnx_export():
            # One affine for the batch: torch's fused kernels, forward and backward in two passes over x each
            # (~2x faster than the path below, training included). One image: batch norm over a batch of one,
            # which skips instance norm's reshape. ONNX has no training-mode batch norm: exports take the path below.
            if (self.group_norm_inference and not torch.is_grad_enabled() and x.shape[1] >= 16 and x.device.type == "cpu"
                    and x.is_contiguous(memory_format=torch.channels_last)):
                # Inference: group norm with one channel per group is instance norm, and its CPU kernel reads
                # channels-last directly: 2-7x faster than instance norm's layout copies at 32-128 channels (and
                # than batch norm over one image); slower below 16 channels, and its backward is slower.
                with torch.autocast("cpu", enabled=False):  # mixed types: bf16 x and fp32 affine, bf16 out
                    return F.group_norm(x, x.shape[1], weight.float(), bias.float(), self.eps)
            if x.shape[0] == 1:
                return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
            return F.instance_norm(x, None, None, weight, bias, True, 0.0, self.eps).contiguous(memory_format=torch.channels_last)
        if weight.dim() == 1:
            weight, bias = weight[None], bias[None]
        if self.record is not None:
            # statistics that tiles will share (lossnet.fast.apply), from the kernel the whole image's own
            # normalisation runs (so a tiled result matches an untiled one), which also returns them
            n, c = x.shape[:2]
            if self.group_norm_inference and x.device.type == "cpu" and c >= 16 and \
                    x.is_contiguous(memory_format=torch.channels_last):
                with torch.autocast("cpu", enabled=False):
                    _, mean, rstd = torch.ops.aten.native_group_norm(x, None, None, n, c, x.shape[2] * x.shape[3], c,
                                                                     self.eps)
                mean, var = mean.float().view(n, c, 1, 1), (rstd.float().pow(-2) - self.eps).view(n, c, 1, 1)
            else:
                var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
            self.record.append((mean.detach(), var.detach()))
        elif self.stats is None:
            # E[x^2] - E[x]^2: two cheap reductions, ~3x faster than torch.var_mean on CPU; conv outputs here
            # have |mean| ~ std, so the cancellation costs nothing visible. Accumulated and kept in fp32 when
            # x is bf16 (autocast).
            mean = x.mean(dim=(2, 3), keepdim=True, dtype=torch.float32)
            var = (x.square().mean(dim=(2, 3), keepdim=True, dtype=torch.float32) - mean.square()).clamp_min(0)
        else:
            mean, var = self.stats
        # Normalise and apply the affine in one pass over x: x * scale + shift, folded per channel.
        scale = weight[:, :, None, None] * torch.rsqrt(var + self.eps)
        shift = bias[:, :, None, None] - mean * scale
        return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))  # in x's format: bf16 stays bf16


class BatchNorm(nn.BatchNorm2d):
    """The paper's batch norm, with the conditional norm's call signature (a single style only)."""

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


DOWNSAMPLES = ("strided", "blur")


def binomial_kernel(channels: int) -> torch.Tensor:
    """The separable binomial [1, 2, 1] / 4 blur as a depthwise (channels, 1, 3, 3) kernel."""
    taps = torch.tensor([1.0, 2.0, 1.0]) / 4
    return (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3).contiguous()


def blur_downsample(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Every second pixel of x blurred by `kernel` (reflection-padded): the low-pass that keeps a stride-2
    subsampling from aliasing fine detail into patterns fixed to its grid."""
    return F.conv2d(pad(x, (1, 1, 1, 1)), kernel.to(x.dtype), stride=2, groups=x.shape[1])


class ConvLayer(nn.Module):
    """Reflection pad, conv, then (optionally) norm and ReLU. With `blur`, a stride-2 layer convolves at stride 1
    and subsamples after its ReLU by `blur_downsample` (Zhang's anti-aliased ConvBlurPool)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, norm=None, relu: bool = True,
                 blur: bool = False):
        super().__init__()
        self.blur = blur and stride > 1
        self.conv = nn.Conv2d(cin, cout, kernel, 1 if self.blur else stride)  # the same parameters either way
        if norm is not None:
            # The norm subtracts the mean, so this bias cancels: its gradient is pure rounding noise, which Adam
            # would turn into full-size random steps. Kept (the state dict stays the paper's layout), not trained.
            self.conv.bias.requires_grad_(False)
        self.norm = norm
        self.relu = relu
        if self.blur:  # not saved: the state dict keeps the paper's layout
            self.register_buffer("blur_kernel", binomial_kernel(cout), persistent=False)

    def convolve(self, x):
        if self.conv.stride == (1, 1):
            return reflect_conv2d(x, self.conv.weight, self.conv.bias)
        p = self.conv.kernel_size[0] // 2
        weight, bias = inference_weights(x, self.conv.weight, self.conv.bias)
        return F.conv2d(pad(x, (p, p, p, p)), weight, bias, self.conv.stride)

    def forward(self, x, style=None):
        x = self.convolve(x)
        if self.norm is not None:
            x = self.norm(x, style)
        x = F.relu(x, inplace=True) if self.relu else x  # x is this layer's own tensor
        return blur_downsample(x, self.blur_kernel) if self.blur else x


UPSAMPLES = ("nearest", "bilinear")


class UpsampleConvLayer(ConvLayer):
    """x2, then a 3x3 conv: no checkerboard, unlike a transposed conv. Nearest neighbour (the paper's and
    pytorch/examples') is computed at the input's resolution with four 2x2 kernels (see nets/reflectconv.py);
    bilinear interpolates at the output's resolution, then convolves."""

    def __init__(self, cin: int, cout: int, kernel: int, norm=None, mode: str = "nearest"):
        super().__init__(cin, cout, kernel, norm=norm)
        self.mode = mode

    def convolve(self, x):
        if self.mode == "nearest":
            return upsample_conv3x3(x, self.conv.weight, self.conv.bias)
        x = F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=False)
        return reflect_conv2d(x.contiguous(memory_format=torch.channels_last), self.conv.weight, self.conv.bias)


class ResidualBlock(nn.Module):
    """conv-norm-relu-conv-norm plus the identity (He et al.), without a ReLU after the sum (Gross & Wilber)."""

    def __init__(self, channels: int, make_norm):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, norm=make_norm(channels))
        self.conv2 = ConvLayer(channels, channels, 3, norm=make_norm(channels), relu=False)

    def forward(self, x, style=None):
        return x + self.conv2(self.conv1(x, style), style)


class TransformerNet(nn.Module):
    """Feed-forward style network. `forward(image, style=None)`: RGB [0, 1] in, RGB [0, 1] out, same size.

    `style` is None (style 0), or (N, n_styles) / (n_styles,) blend weights (see `style_vector`)."""

    def __init__(self, n_styles: int = 1, norm: str = "instance", arch: str = "full",
                 channels: tuple[int, int, int] | None = None, n_residual: int | None = None,
                 global_skip: bool = True, upsample: str = "nearest", downsample: str = "strided"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown transformer arch {arch!r}: choose {', '.join(ARCHS)}")
        if norm not in ("instance", "batch"):
            raise ValueError(f"norm must be 'instance' or 'batch', got {norm!r}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {upsample!r}")
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {', '.join(DOWNSAMPLES)}, got {downsample!r}")
        if norm == "batch" and n_styles != 1:
            raise ValueError("several styles in one network need instance norm (conditional instance norm)")
        c1, c2, c3 = channels or ARCHS[arch][0]
        n_residual = ARCHS[arch][1] if n_residual is None else n_residual
        self.config = {"n_styles": n_styles, "norm": norm, "arch": arch, "channels": [c1, c2, c3],
                       "n_residual": n_residual}
        if not global_skip:  # pytorch/examples' network: 0-255 in, the last conv's output is the image (0-255)
            self.config["global_skip"] = False
        if upsample != "nearest":  # files of nearest-neighbour networks stay as they were
            self.config["upsample"] = upsample
        if downsample != "strided":
            self.config["downsample"] = downsample
        self.global_skip = global_skip
        self.n_styles = n_styles

        def make_norm(c):
            return CondInstanceNorm(c, n_styles) if norm == "instance" else BatchNorm(c)

        blur = downsample == "blur"
        self.down = nn.ModuleList([ConvLayer(3, c1, 9, norm=make_norm(c1)),
                                   ConvLayer(c1, c2, 3, 2, norm=make_norm(c2), blur=blur),
                                   ConvLayer(c2, c3, 3, 2, norm=make_norm(c3), blur=blur)])
        self.residual = nn.ModuleList([ResidualBlock(c3, make_norm) for _ in range(n_residual)])
        self.up = nn.ModuleList([UpsampleConvLayer(c3, c2, 3, norm=make_norm(c2), mode=upsample),
                                 UpsampleConvLayer(c2, c1, 3, norm=make_norm(c1), mode=upsample),
                                 ConvLayer(c1, 3, 9, relu=False)])

    def with_styles(self, n_styles: int) -> "TransformerNet":
        """A copy with `n_styles` styles whose every style starts as this network's first one: the warm start of
        a multi-style network from a trained single-style one. The convolutions are shared by all styles
        (Dumoulin et al. learn a new style by its norm parameters alone), so they start trained."""
        return self.select_styles([0] * n_styles)

    def with_upsample(self, mode: str) -> "TransformerNet":
        """A copy that upsamples by `mode`, with this network's weights (the resampling has no parameters)."""
        net = TransformerNet(**{**self.config, "channels": tuple(self.config["channels"]), "upsample": mode})
        net.load_state_dict(self.state_dict())
        net.styles = list(getattr(self, "styles", []))
        return net.to(next(self.parameters()).device).train(self.training)

    def with_residual_blocks(self, n_residual: int) -> "TransformerNet":
        """A copy with `n_residual` residual blocks, from this network's trained ones: each of the last
        `n_residual - blocks` blocks becomes two copies of itself that add half its residual each (their last
        norm's scale and shift halved), a half step twice, so x + r(x) becomes x + r(x)/2 + r(x + r(x)/2)/2: equal to
        first order, and every block starts trained. Capacity where the painting's large-scale structure is made
        (the 1/4-resolution trunk), without retraining from scratch. Blocks added as the identity instead (their
        last norm at 0) barely learn: their scales stay near 0.001 after 250 steps of `starry` at Adam's 5e-4."""
        have = len(self.residual)
        if not have <= n_residual <= 2 * have:
            raise ValueError(f"the network has {have} residual blocks: it can grow to {have}-{2 * have} (each block "
                             f"split in two at most), not {n_residual}")
        config = {**self.config, "channels": tuple(self.config["channels"]), "n_residual": n_residual}
        net = TransformerNet(**config)
        kept = 2 * have - n_residual  # the first `kept` blocks stay whole, the others are split
        sources = list(range(kept)) + [k for k in range(kept, have) for _ in (0, 1)]
        trained, sd = self.state_dict(), {}
        for key in net.state_dict():
            if key.startswith("residual."):
                _, new, rest = key.split(".", 2)
                old = sources[int(new)]
                sd[key] = trained[f"residual.{old}.{rest}"].clone()
                if old >= kept and rest.startswith("conv2.norm."):
                    sd[key] *= 0.5
            else:
                sd[key] = trained[key]
        net.load_state_dict(sd)
        net.styles = list(getattr(self, "styles", []))
        return net.to(next(self.parameters()).device).train(self.training)

    def select_styles(self, indices: Sequence[int]) -> "TransformerNet":
        """A copy whose styles are this network's styles `indices`, in that order: `[k]` carves a one-style
        network out of a multi-style one, `[0] * n` starts n styles from one (`with_styles`). Only the norms'
        rows differ between styles; the convolutions are copied as they are."""
        indices = [int(k) for k in indices]
        if not indices or not all(0 <= k < self.n_styles for k in indices):
            raise IndexError(f"style indices {indices} out of range for {self.n_styles} styles")
        if self.config["norm"] != "instance" and len(indices) > 1:
            raise ValueError("several styles in one network need instance norm (conditional instance norm)")
        config = {**self.config, "n_styles": len(indices), "channels": tuple(self.config["channels"])}
        net = TransformerNet(**config)
        rows = torch.tensor(indices)
        sd = {}
        for key, value in self.state_dict().items():
            module = net.get_submodule(key.rsplit(".", 1)[0])
            sd[key] = value[rows].clone() if isinstance(module, CondInstanceNorm) else value
        net.load_state_dict(sd)
        names = list(getattr(self, "styles", []))
        net.styles = [names[k] for k in indices] if len(names) == self.n_styles else []
        return net.to(next(self.parameters()).device).train(self.training)

    def style_vector(self, style, batch: int = 1) -> torch.Tensor | None:
        """An index, a list of blend weights (normalised to sum 1) or a tensor -> (batch, n_styles)."""
        if style is None:
            return None
        if isinstance(style, int):
            if not 0 <= style < self.n_styles:
                raise IndexError(f"style index {style} out of range for {self.n_styles} styles")
            v = F.one_hot(torch.tensor(style), self.n_styles).float()
        else:
            v = torch.as_tensor(style, dtype=torch.float32)
            if v.dim() == 1:
                if v.numel() != self.n_styles:
                    raise ValueError(f"{v.numel()} blend weights for {self.n_styles} styles")
                v = v / v.sum()
        v = v.to(next(self.parameters()).device)
        return v.expand(batch, -1) if v.dim() == 1 else v

    def forward(self, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = -h % 4, -w % 4  # two stride-2 stages: pad to a multiple of 4, crop back at the end
        x = F.pad(image, (0, pw, 0, ph), mode="reflect") if ph or pw else image
        return self.body(x, style)[..., :h, :w]

    def body(self, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """The network proper, for H and W multiples of 4 (what ONNX export traces)."""
        # channels-last: oneDNN's native layout on CPU, ~1.2-1.6x faster convs than NCHW (bench_fast).
        x = image.contiguous(memory_format=torch.channels_last)
        if not self.global_skip:
            x = x * 255.0
        for layer in self.down:
            x = layer(x, style)
        for block in self.residual:
            x = block(x, style)
        for layer in self.up:
            x = layer(x, style)
        # The global skip: the network learns the change to the photo, in 8-bit levels (the paper's networks
        # output 0-255): at Adam's lr 1e-3 a change in [0, 1] units would move the output ~255x too fast.
        return image + x / 255.0 if self.global_skip else x / 255.0
