"""Network definitions (no training, no I/O), and what every network shares."""
from torch import nn


def count_parameters(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, to print as f"{n:,}" and compare with a paper's or a reference's count."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
