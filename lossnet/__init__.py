from .nets.transformer import TransformerNet  # noqa: F401  (lossnet.TransformerNet: feed-forward style)
