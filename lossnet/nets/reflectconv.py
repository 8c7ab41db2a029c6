"""Reflection-padded convolutions without the padded copy, and without the upsampled copy of a
resize-convolution. Each copy is a full pass over the activations, and at 1024x1024 the style network spent
~10 % of its time padding. Both functions equal the plain computation to float rounding (tests/test_fast.py)
and use the plain conv's parameters, so state dicts do not change. ONNX exports get the plain graph.

`reflect_conv2d`: a stride-1 conv with zero padding (done inside the conv kernel, no copy), after which only
the border rows and columns differ from reflection padding; they are recomputed from thin reflection-padded
strips of the input.

`upsample_conv3x3`: nearest-neighbour x2 upsampling followed by a reflection-padded 3x3 conv (the
resize-convolution of the style and super-resolution networks). After the upsampling, output pixel
(2i + a, 2j + b) sees input rows {i - 1, i} (a = 0) or {i, i + 1} (a = 1), and the same for columns: three
kernel taps fall on two input pixels. So the 3x3 kernel collapses into four 2x2 kernels, one per output phase
(a, b), applied to the input at its own resolution: 4/9 of the multiply-adds, and neither the upsampled copy
nor its padding is made. Reflection padding of the upsampled image by one pixel equals replicate padding of
the input (both repeat the border row).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Rows (and columns) of a 3x3 kernel that land on the first and second input pixel of each phase.
_PHASE_TAPS = ([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],   # phase 0: taps 0 | 1 + 2
               [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])   # phase 1: taps 0 + 1 | 2
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def pad(x: torch.Tensor, pads, mode: str = "reflect") -> torch.Tensor:
    """F.pad outside autocast: on CPU autocast runs reflection and replication padding in fp32, so a bf16
    activation would be padded into an fp32 copy and cast back by the next conv (two extra passes)."""
    with torch.autocast(x.device.type, enabled=False):
        return F.pad(x, pads, mode=mode)


class ReflectionPad2d(torch.nn.ReflectionPad2d):
    """nn.ReflectionPad2d that keeps its input's format under autocast (see `pad`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad(x, self.padding)


def inference_weights(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, make=None):
    """(weight, bias) for an inference pass over x: `make(weight, bias)` (e.g. the phase kernels) in the format
    autocast would cast them to, computed once and kept until the parameters change (their version counters).
    Autocast recasts every weight on every call, which costs a bf16 style network ~20 % of its time at 256².
    With autograd on, the parameters are used as they are (their gradients must reach them)."""
    if torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad):
        return make(weight, bias) if make else (weight, bias)
    kind = x.device.type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else weight.dtype
    key = (dtype, weight._version, weight.data_ptr(), None if bias is None else (bias._version, bias.data_ptr()))
    hit = getattr(weight, "_lossnet_inference", None)  # kept on the parameter itself: it goes when the net goes
    if hit is None or hit[0] != key:
        with torch.no_grad(), torch.autocast(kind, enabled=False):
            w, b = make(weight, bias) if make else (weight, bias)
            hit = (key, w.to(dtype), None if b is None else b.to(dtype))
        weight._lossnet_inference = hit
    return hit[1], hit[2]


def reflect_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv2d(reflection_pad(x, k // 2), weight, bias) for a stride-1, odd k x k `weight`."""
    weight, bias = inference_weights(x, weight, bias)
    p = weight.shape[-1] // 2
    # Training takes the padded copy: autograd would give each border strip's slice of x a full-size gradient
    # (zeros, copy, add: four extra passes over x), far more than the one pass the forward saves.
    # So does bf16 (autocast): its convs are fast enough that the four thin strip convs cost more than the copy.
    if (min(x.shape[-2:]) <= 2 * p or torch.onnx.is_in_onnx_export() or torch.is_autocast_enabled(x.device.type)
            or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))):
        return F.conv2d(pad(x, (p, p, p, p), "reflect"), weight, bias)
    out = F.conv2d(x, weight, bias, padding=p)
    # the output's first / last p rows (all columns), then first / last p columns (the rows between)
    out[..., :p, :] = F.conv2d(pad(x[..., :2 * p, :], (p, p, p, 0), "reflect"), weight, bias)
    out[..., -p:, :] = F.conv2d(pad(x[..., -2 * p:, :], (p, p, 0, p), "reflect"), weight, bias)
    out[..., p:-p, :p] = F.conv2d(pad(x[..., :, :2 * p], (p, 0, 0, 0), "reflect"), weight, bias)
    out[..., p:-p, -p:] = F.conv2d(pad(x[..., :, -2 * p:], (0, p, 0, 0), "reflect"), weight, bias)
    return out


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) -> (4 C_out, C_in, 2, 2): the collapsed kernels of the four phases, in PHASES order."""
    taps = weight.new_tensor(_PHASE_TAPS)
    return torch.cat([taps[a] @ weight @ taps[b].T for a, b in PHASES])


def upsample_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv2d(reflection_pad(nearest_upsample_x2(x), 1), weight, bias) for a 3x3 `weight`."""
    if torch.onnx.is_in_onnx_export():  # ONNX shape inference would lose the channel count of the interleave
        return F.conv2d(pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 1, 1, 1), "reflect"),
                        weight, bias)
    n, _, h, w = x.shape
    c = weight.shape[0]
    kernels, biases = inference_weights(x, weight, bias,
                                        lambda w_, b_: (phase_kernels(w_), None if b_ is None else b_.repeat(4)))
    y = F.conv2d(pad(x, (1, 1, 1, 1), "replicate"), kernels, biases)  # (n, 4c, h + 1, w + 1)
    return _Interleave.apply(y, c, h, w)


def _phase_window(y: torch.Tensor, k: int, c: int, h: int, w: int) -> torch.Tensor:
    """Phase k = (a, b) of the output is block k of y, shifted by (a, b): its window starts a row / column later."""
    a, b = PHASES[k]
    return y[:, k * c:(k + 1) * c, a:a + h, b:b + w]


class _Interleave(torch.autograd.Function):
    """y (n, 4c, h + 1, w + 1) -> out (n, c, 2h, 2w) with out[..., a::2, b::2] = phase (a, b) of y.

    Four strided copies each way (~1.5x faster than stack + reshape, two full copies). Written as a Function
    because autograd's own backward of the four slices of y would allocate and add four y-sized gradients."""

    @staticmethod
    def forward(ctx, y, c, h, w):
        ctx.shape, ctx.c, ctx.h, ctx.w = y.shape, c, h, w
        layout = torch.channels_last if y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        out = torch.empty((y.shape[0], c, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=layout)
        for k, (a, b) in enumerate(PHASES):
            out[..., a::2, b::2] = _phase_window(y, k, c, h, w)
        return out

    @staticmethod
    def backward(ctx, grad):
        c, h, w = ctx.c, ctx.h, ctx.w
        layout = torch.channels_last if grad.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        grad_y = grad.new_zeros(ctx.shape).contiguous(memory_format=layout)
        for k, (a, b) in enumerate(PHASES):
            _phase_window(grad_y, k, c, h, w).copy_(grad[..., a::2, b::2])
        return grad_y, None, None, None
