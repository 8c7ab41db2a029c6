"""Visualising and understanding CNNs (CS231n lecture 12), on an ImageNet `lossnet.classifier.Classifier`.

Attributions share captum's calling convention, `fn(model, x, target, ...)`, x a batch (N, 3, H, W) in [0, 1]:
    saliency, guided_backprop, guided_saliency, occlusion
Optimisation methods are objectives on `lossnet.optimize.optimize_pixels`:
    class_model (class visualisation), fooling, deepdream, invert (feature inversion, from lossnet.style)
Looking at the network and a set of images:
    filters, activations, nearest_neighbors, embed (PCA / t-SNE), max_patches
"""
from ..style import invert
from .attribution import guided_backprop, guided_saliency, saliency
from .class_model import ClassModelConfig, class_model
from .common import Neuron, load_folder, penultimate_features, scores
from .deepdream import DreamConfig, deepdream
from .embedding import embed
from .fooling import Fooled, fooling
from .layers import activation_grid, activations, filters
from .neighbors import nearest_neighbors
from .occlusion import occlusion
from .patches import Patch, max_patches

__all__ = [
    "saliency", "guided_backprop", "guided_saliency", "occlusion", "class_model", "ClassModelConfig", "fooling",
    "Fooled", "deepdream", "DreamConfig", "invert", "filters", "activations", "activation_grid",
    "nearest_neighbors", "embed", "max_patches", "Patch", "Neuron", "scores", "load_folder", "penultimate_features",
]
