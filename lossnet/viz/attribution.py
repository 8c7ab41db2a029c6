"""Gradient attributions, captum's calling convention: `fn(model, x, target) -> map`.

  saliency        Simonyan, Vedaldi & Zisserman 2013, https://arxiv.org/abs/1312.6034: max over channels of
                  |d score / d x|, (N, H, W). Equals captum's Saliency(abs=True) reduced by max over channels.
  guided_backprop Springenberg et al. 2014, https://arxiv.org/abs/1412.6806: the gradient with every
                  rectifier passing back only positive gradients where its input was active, (N, 3, H, W).
  guided_saliency the saliency map of guided backprop, (N, H, W).

Rectifiers are recognised as ReLU and ReLU6 calls, whether they come from modules (nn.ReLU, nn.ReLU6) or
from functions (F.relu, torch.relu, x.relu(), F.relu6, F.hardtanh(x, 0, m)), in place or not: they are
intercepted while the model runs, so functional ReLUs are handled, not silently missed. On nn.ReLU models
this is exactly captum's GuidedBackprop (which hooks nn.ReLU modules only). ReLU6 = min(ReLU(x), 6) gets
captum's rule on its ReLU, with the gradient of the clip at 6 kept: positive gradients only, where
0 < x < 6. A model in which no rectifier runs is refused: its guided gradient would be the plain one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import LossnetError
from .common import Target, input_gradient


class _GuidedClip(torch.autograd.Function):
    """clamp(x, 0, upper) forward; backward passes positive gradients only, where 0 < x < upper."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, upper: float) -> torch.Tensor:
        ctx.save_for_backward((x > 0) & (x < upper))  # the mask, not x: in-place callers may overwrite x
        return x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (active,) = ctx.saved_tensors
        return grad.clamp(min=0) * active, None


_RELU = {torch.relu, F.relu, torch.Tensor.relu}
_RELU_INPLACE = {torch.relu_, F.relu_, torch.Tensor.relu_}
_HARDTANH = {F.hardtanh, F.hardtanh_}  # nn.ReLU6 calls F.hardtanh(x, 0, 6)


def _rectifier(func, args, kwargs) -> tuple[float, bool] | None:
    """(upper clip, in place?) when `func(*args, **kwargs)` is a ReLU or ReLU6, else None."""
    def arg(index, name, default):
        return kwargs.get(name, args[index] if len(args) > index else default)

    if func in _RELU:
        return math.inf, bool(arg(1, "inplace", False))
    if func in _RELU_INPLACE:
        return math.inf, True
    if func is F.relu6:
        return 6.0, bool(arg(1, "inplace", False))
    if func in _HARDTANH and arg(1, "min_val", -1.0) == 0:
        return float(arg(2, "max_val", 1.0)), func is F.hardtanh_ or bool(arg(3, "inplace", False))
    return None


class _GuidedRectifiers(TorchFunctionMode):
    """While active, every ReLU / ReLU6 call runs as `_GuidedClip`; counts how many it saw."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rectifier = _rectifier(func, args, kwargs)
        if rectifier is None:
            return func(*args, **kwargs)
        self.seen += 1
        upper, inplace = rectifier
        out = _GuidedClip.apply(args[0], upper)
        return args[0].copy_(out) if inplace else out


def saliency(model, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """(N, H, W): max over colour channels of |d score / d x|."""
    return input_gradient(model, x, target).abs().amax(1)


def guided_backprop(model, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """(N, 3, H, W): d score / d x with guided rectifiers (see the module docstring)."""
    mode = _GuidedRectifiers()
    with mode:
        grad = input_gradient(model, x, target)
    if mode.seen == 0:
        raise LossnetError("guided backprop needs ReLU or ReLU6 activations, and this model ran none "
                           "(its guided gradient would be the plain gradient: use saliency)")
    return grad


def guided_saliency(model, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """(N, H, W): max over colour channels of |guided backprop|."""
    return guided_backprop(model, x, target).abs().amax(1)
