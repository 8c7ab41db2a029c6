"""Which number format the networks run in: `--precision auto|fp32|bf16|fp16`.

bf16 halves the bytes of every activation and runs convolutions faster than fp32: about 6x on CPUs with AMX
(Intel Sapphire Rapids and later), about 2x with AVX512-BF16 alone (BENCHMARKS.md, "fp32 and bf16"). Networks
run under `torch.autocast`: convolutions and matrix products in the low format, with everything that loses
accuracy there kept in fp32 by the code that computes it — parameters and optimiser state (autocast never
changes them), Gram matrices and losses (`objectives`), instance-norm statistics (`nets.transformer`), L-BFGS
history (the pixels stay fp32).

`auto` is bf16 on a CPU that has AMX-BF16 or AVX512-BF16 or a CUDA device that supports bf16, fp32 elsewhere.
`torch.backends.cpu.get_cpu_capability()` reports "AVX512" with or without AMX, so the CPU's flags are read
from /proc/cpuinfo.
"""
from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import dataclass

import torch

from .errors import LossnetError

CHOICES = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=None)
def cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, flags) of this machine's CPU, from the first processor in /proc/cpuinfo (Linux);
    elsewhere platform's name and no flags."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if "model name" in fields and "flags" in fields:
                    break
    except OSError:
        pass
    return fields.get("model name") or platform.processor() or platform.machine(), frozenset(fields.get("flags", "").split())


def cpu_bf16() -> str | None:
    """The CPU feature that makes bf16 fast here (e.g. "amx_bf16"), or None."""
    flags = cpu_info()[1]
    return next((f for f in CPU_BF16_FLAGS if f in flags), None)


def describe_cpu() -> str:
    """One line for benchmarks: the CPU model, its bf16 flags and its widest vector instructions (AVX-512 or AVX2),
    which set its fp32 speed: "AMD EPYC (avx512_bf16 avx512f)", "Intel Core (avx2; no AMX / AVX512-BF16)"."""
    model, flags = cpu_info()
    bf16 = [f for f in ("amx_bf16", "amx_tile", "avx512_bf16") if f in flags]
    vector = next(([f] for f in ("avx512f", "avx2") if f in flags), [])
    return f"{model} ({' '.join(bf16 + vector) if bf16 else '; '.join([*vector, 'no AMX / AVX512-BF16'])})"


@dataclass(frozen=True)
class Precision:
    """A resolved precision: `with p.autocast():` runs the networks in `p.dtype` on `p.device_type`."""
    name: str  # fp32, bf16 or fp16
    device_type: str  # cpu, cuda, ...
    reason: str = ""

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    @property
    def reduced(self) -> bool:
        return self.name != "fp32"

    def autocast(self):
        if not self.reduced:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        return f"precision: {self.name}" + (f" ({self.reason})" if self.reason else "")


FP32 = Precision("fp32", "cpu")


def _device_type(device: str | torch.device) -> str:
    return torch.device(device).type


def bf16_support(device: str | torch.device = "cpu") -> str | None:
    """Why bf16 is fast on `device` (a short phrase), or None where it is not."""
    kind = _device_type(device)
    if kind == "cpu":
        flag = cpu_bf16()
        return f"CPU has {flag.upper().replace('_', '-')}" if flag else None
    if kind == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(torch.device(device))} supports bf16"
    return None


_announced: set[str] = set()


def announce(p: Precision) -> Precision:
    """Say the precision in use in one stderr line, once per process (the loops call this when they start, after
    their inputs are checked, so a bad input still gets exactly one error line)."""
    if p.describe() not in _announced:
        _announced.add(p.describe())
        from .weights import notice
        notice(p.describe())
    return p


def resolve(name: str | Precision | None, device: str | torch.device = "cpu") -> Precision:
    """`--precision` -> a Precision for `device` (`announce` says it).

    An explicit bf16 where the hardware has no bf16 support, or fp16 off CUDA, is an error (exit 2 from the
    CLI): it would run, but slower than fp32, which nobody asks for."""
    if isinstance(name, Precision):
        return name
    name = name or "auto"
    kind = _device_type(device)
    if name not in CHOICES:
        raise LossnetError(f"unknown precision {name!r}: choose {', '.join(CHOICES)}")
    if name == "auto":
        why = bf16_support(device)
        p = Precision("bf16", kind, f"auto: {why}") if why else Precision("fp32", kind, f"auto: no fast bf16 on this {kind}")
    elif name == "bf16":
        why = bf16_support(device)
        if why is None:
            what = f"this CPU ({cpu_info()[0]}) has neither AMX-BF16 nor AVX512-BF16" if kind == "cpu" \
                else f"{kind} has no bf16 support here"
            raise LossnetError(f"--precision bf16: {what}; use --precision fp32 or auto")
        p = Precision("bf16", kind, why)
    elif name == "fp16":
        if kind != "cuda":
            raise LossnetError(f"--precision fp16 needs a CUDA device (this run is on {kind}): use bf16 or fp32")
        p = Precision("fp16", kind)
    else:
        p = Precision("fp32", kind)
    return p


def add_precision_arg(parser) -> None:
    parser.add_argument("--precision", default="auto", choices=CHOICES,
                        help="number format of the networks: auto (bf16 where the CPU has AMX or AVX512-BF16, "
                             "or on a bf16 GPU; fp32 elsewhere), fp32, bf16, fp16 (CUDA only). Default auto")
