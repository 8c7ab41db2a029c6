"""lossnet: image synthesis and understanding with a pretrained CNN's features.

The core: `LossNetwork` (named taps on a frozen VGG), `objectives`, the pixel loop (`optimize_pixels`,
`LoopConfig`), the generator loop (`train`, `TrainConfig`) and the registry of trained model kinds
(`lossnet.registry`: `load`, `apply_to_path`, `train_model`, `bundled`). Each method's entry points and the
networks the papers name are here too; each method's module (`lossnet.style`, `.fast`, `.universal`, `.superres`, `.pix2pix`,
`.viz`) has the rest.
"""
from .features import LossNetwork
from .nets.patchgan import PatchDiscriminator
from .nets.srnet import SRNet
from .nets.transformer import TransformerNet
from .nets.unet import UnetGenerator
from .optimize import LoopConfig, optimize_pixels
from .precision import Precision
from .train import Task, TrainConfig, train
from . import registry  # the kinds of trained models: load, save, train, apply
from .registry import apply_to_path, train_model

from .style import StyleConfig, invert, stylize, texture  # noqa: E402  (methods on the core above)
from .fast import FastStyleConfig, load_transformer, train_style  # noqa: E402
from .universal import DecoderConfig, UniversalConfig, UniversalStyle, train_decoder  # noqa: E402
from .superres import SRConfig, load_srnet, train_sr, upscale  # noqa: E402
from .pix2pix import Pix2PixConfig, load_generator, train_pix2pix  # noqa: E402

__all__ = ["LossNetwork", "LoopConfig", "optimize_pixels", "Task", "TrainConfig", "train", "Precision",
           "registry", "apply_to_path", "train_model",
           "TransformerNet", "SRNet", "UnetGenerator", "PatchDiscriminator",
           "StyleConfig", "stylize", "texture", "invert",
           "FastStyleConfig", "train_style", "load_transformer",
           "UniversalConfig", "UniversalStyle", "DecoderConfig", "train_decoder",
           "SRConfig", "train_sr", "load_srnet", "upscale",
           "Pix2PixConfig", "train_pix2pix", "load_generator"]
