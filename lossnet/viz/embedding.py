"""2-D maps of penultimate features (scikit-learn): PCA keeps the largest variance directions, t-SNE
(van der Maaten & Hinton 2008) keeps neighbourhoods, so similar images land together."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import LossnetError

METHODS = ("pca", "tsne")


def embed(features: torch.Tensor, method: str = "tsne", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, D) features -> (N, 2) coordinates by PCA or t-SNE (perplexity capped below N, as t-SNE needs)."""
    x = features.detach().cpu().numpy().astype(np.float64)
    if len(x) < 3:
        raise LossnetError(f"an embedding needs at least 3 images, got {len(x)}")
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE
        x = (x - x.mean(0)) / (x.std(0) + 1e-8)
        return TSNE(n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), init="pca",
                    random_state=seed).fit_transform(x)
    raise LossnetError(f"unknown embedding {method!r}: choose {' or '.join(METHODS)}")
