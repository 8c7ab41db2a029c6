"""lossnet: image synthesis and understanding with a pretrained CNN's features."""
from .nets.transformer import TransformerNet

__all__ = ["TransformerNet"]
