"""Every trained model kind in one registry: where models are, how they load, save, train, and run on files,
folders and videos.

    net = load("x4-pixel")                              # a bundled name, a model file or a run folder
    apply_to_path(net, "clip.mp4", "clip_x4.mp4")       # an image, a folder of images, a video or a folder of frames
    train_model(SRTask(cfg), cfg, "x4.safetensors")     # the model written at every checkpoint

A kind is the `Kind` its method's module defines as a module-level `KIND` (`lossnet/fast.py`: style,
`superres.py`: sr, `pix2pix.py`: pix2pix). `kinds()` finds every such module of the package, so a new trained
method is one module (docs/ARCHITECTURE.md, "Add a trained method"); `register` adds a kind defined elsewhere.

A model file says what it is: safetensors whose metadata holds `lossnet_kind` (the kind's `stored` name),
`lossnet_config` (what rebuilds the network, and how it was trained) and, for a bundled model,
`lossnet_description`. The bundled models are the files in lossnet/models/; a model's name is its file's stem
(x4-pixel is models/x4-pixel.safetensors): the name `lossnet models` lists and `--model` takes. A training run
given a folder as its output keeps its model in it as model.safetensors.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import LossnetError, suggest

MODELS_DIR = Path(__file__).parent / "models"
MODEL_FILE = "model.safetensors"  # a run folder's model
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


@dataclass(frozen=True, eq=False)
class Kind:
    """A trained model kind: what its files are called inside, how its networks are built, trained and applied."""
    name: str  # what `lossnet models` lists: style, sr, pix2pix
    stored: str  # the `lossnet_kind` its model files hold (older names kept, so every file ever written loads)
    title: str  # what its networks do, a few words ("super-resolution")
    description: str  # one line for `lossnet models`: the method, its paper, the command that applies it
    networks: tuple[type, ...]  # its generator classes: `save`, `apply_to_path` and export find the kind by them
    config: type  # its config dataclass: `option` fields are its training command's flags, `train` a TrainConfig
    task: Callable[[Any], Any]  # config -> its train.Task (the generator built, the data and options checked)
    build: Callable[[dict, dict, Path], nn.Module]  # (state dict, stored config, path) -> the network, ready to run
    apply: Callable[..., torch.Tensor]  # (network, images (N, 3, H, W) in [0, 1], **options) -> images
    graph: Callable[[nn.Module], Any] | None = None  # network -> lossnet.export.Graph (None: no ONNX export)
    half: bool = False  # store fp16 tensors unless told otherwise (read back as fp32)
    batch: bool = True  # same-sized images may run together (pix2pix: no, its norms see the whole batch)
    foreign: dict[str, Callable[[Path], nn.Module]] = field(default_factory=dict)  # suffix -> loader of another
    # project's model files (pytorch/examples' .pth style models), read as state dicts, never unpickled


def option(default=dataclasses.MISSING, help: str = "", **cli) -> Any:
    """A config field that is also a command-line option (cli.add_config_args makes the flag from the field's
    name, type and these): `help`; `flag` (default --field-name), `choices`, `metavar`, `minimum` (0 or 1),
    `repeat` (give the flag once per value), `required`; `path` (a file or folder: a model file keeps its name
    only). Declared here, next to the field, they are said once for the library and the command line."""
    return field(default=default, metadata={"help": help, **cli})


def loss_network_option() -> Any:
    return option("vgg16", "loss network", choices=("vgg16", "vgg19"))


def loss_weights_option() -> Any:
    return option(None, "loss network weights file in torchvision layout (.pth or .safetensors)", path=True)


def init_from_option() -> Any:
    """A warm start: the weights (and architecture) of a trained model of the same kind; the optimiser starts
    afresh. For when a run folder is gone, or a model is to be trained on at another setting."""
    return option(None, "start from this trained model's weights (bundled name or .safetensors; its architecture "
                        "is used), e.g. when a run folder is gone", metavar="MODEL")


_REGISTERED: list[Kind] = []


def register(kind: Kind) -> Kind:
    """Add a kind defined outside the lossnet package (a plug-in, a test); the package's own are found."""
    if all(k.name != kind.name for k in kinds()):
        _REGISTERED.append(kind)
    return kind


@functools.lru_cache(maxsize=1)
def _kind_modules() -> tuple[str, ...]:
    """The package's modules with a module-level `KIND = Kind(`, found by reading their text, so that listing
    them imports none of the others."""
    pattern = re.compile(r"^KIND = Kind\(", re.M)
    return tuple(f"lossnet.{p.stem}" for p in sorted(Path(__file__).parent.glob("*.py"))
                 if pattern.search(p.read_text(encoding="utf-8")))


def kinds() -> list[Kind]:
    """Every kind: the package's (in the order of their modules' names: style, pix2pix, sr), then the registered
    ones."""
    return [importlib.import_module(m).KIND for m in _kind_modules()] + _REGISTERED


def get(kind: Kind | str) -> Kind:
    """A kind by its name or its stored name."""
    if isinstance(kind, Kind):
        return kind
    for k in kinds():
        if kind in (k.name, k.stored):
            return k
    names = [k.name for k in kinds()]
    raise LossnetError(f"unknown model kind {kind!r}{suggest(str(kind), names)}: the kinds are {', '.join(names)}")


def kind_of(net: nn.Module) -> Kind:
    """The kind whose network `net` is."""
    for k in kinds():
        if isinstance(net, k.networks):
            return k
    raise LossnetError(f"a {type(net).__name__} is not the network of any model kind "
                       f"({', '.join(k.name for k in kinds())})")


def graph_of(net: nn.Module):
    """What `lossnet.export.export_onnx` traces for `net`: its kind's `lossnet.export.Graph`."""
    kind = kind_of(net)
    if kind.graph is None:
        raise LossnetError(f"cannot export a {kind.name} model to ONNX")
    return kind.graph(net)


# ----------------------------------------------------------------------------- files
def stored_metadata(path: Path) -> dict[str, str]:
    """A model file's safetensors metadata (its header only: no tensor is read)."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except Exception:  # noqa: BLE001 - not a safetensors file: the state-dict reader says why, in its words
        from .weights import load_state_dict
        load_state_dict(path)
        raise LossnetError(f"cannot read {path} as a model file") from None


@dataclass(frozen=True)
class Bundled:
    """A model that ships in lossnet/models/."""
    name: str
    path: Path
    kind: Kind
    config: dict
    description: str


def bundled(kind: Kind | str | None = None) -> dict[str, Bundled]:
    """The bundled models (of one kind), by name; each file's own metadata says its kind."""
    want = get(kind) if kind is not None else None
    by_stored = {k.stored: k for k in kinds()}
    found = {}
    for path in sorted(MODELS_DIR.glob("*.safetensors")):
        meta = stored_metadata(path)
        k = by_stored.get(meta.get("lossnet_kind"))
        if k is not None and (want is None or k is want):
            found[path.stem] = Bundled(path.stem, path, k, json.loads(meta.get("lossnet_config", "{}")),
                                       meta.get("lossnet_description", ""))
    return found


def model_path(spec: str | os.PathLike, kind: Kind | str | None = None) -> Path:
    """The file of a model given as a bundled name (of `kind`), a model file, or a run folder."""
    path = Path(spec)
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return path / MODEL_FILE
        raise LossnetError(f"run folder {path} has no {MODEL_FILE} (training not finished? the same training "
                           "command with --resume finishes it)")
    if path.is_file():
        return path
    names = bundled(kind)
    if str(spec) in names:
        return names[str(spec)].path
    what = f"{get(kind).name} " if kind is not None else ""
    raise LossnetError(f"no {what}model {str(spec)!r}: not a file, nor a bundled model{suggest(str(spec), names)}"
                       f" (bundled: {', '.join(names) or 'none'})")


def load(spec: str | os.PathLike | nn.Module, kind: Kind | str | None = None, device: str = "cpu") -> nn.Module:
    """A trained network, ready to apply: a bundled name, a model file (its metadata says its kind; with `kind`,
    another kind is refused), a run folder, another project's model file of a kind that reads it (by suffix),
    or a network already built."""
    from .weights import read_model
    want = get(kind) if kind is not None else None
    if isinstance(spec, nn.Module):
        found = kind_of(spec)
        if want is not None and found is not want:
            raise LossnetError(f"a {found.name} network is not a {want.name} model")
        return spec.to(device)
    path = model_path(spec, want)
    if path.suffix != ".safetensors":
        readers = [k for k in ([want] if want else kinds()) if path.suffix in k.foreign]
        if readers:
            return readers[0].foreign[path.suffix](path).to(device).eval()
        read_model(path, want.stored if want else "")  # the refusal, in read_model's words
    k = want or _kind_of_file(path)
    state_dict, config = read_model(path, k.stored)
    return k.build(state_dict, config, path).to(device)


def _kind_of_file(path: Path) -> Kind:
    stored = stored_metadata(path).get("lossnet_kind")
    found = next((k for k in kinds() if k.stored == stored), None)
    if found is None:
        raise LossnetError(f"{path} is {f'a {stored!r}' if stored else 'not a lossnet'} model: none of the kinds "
                           f"{', '.join(k.name for k in kinds())}")
    return found


def save(net: nn.Module, path: str | os.PathLike, config: dict, half: bool | None = None) -> Path:
    """`net` as a model file of its kind: safetensors with the kind and `config` (what rebuilds it) in the
    metadata; fp16 tensors with `half` (default: the kind's choice)."""
    from .weights import save_model
    kind = kind_of(net)
    return save_model(net, path, kind.stored, config, half=kind.half if half is None else half)


def set_description(path: str | os.PathLike, description: str) -> Path:
    """Give a model file the line `lossnet models` shows: its metadata is rewritten, its tensors copied as they
    are (same dtype, same bytes). For a model that is to ship in lossnet/models/."""
    from safetensors import safe_open

    from .weights import save_state_dict
    path = Path(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "lossnet_kind" not in meta:
        raise LossnetError(f"{path} is not a lossnet model")
    mode = path.stat().st_mode
    save_state_dict(tensors, path, {**meta, "lossnet_description": description})
    os.chmod(path, mode)  # a shipped file stays readable by everyone
    return path


# ----------------------------------------------------------------------------- training
def destination(output: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(model file, run folder) of a training run, checked before any work: `output` is a .safetensors file
    (its run folder `run_dir`, by default beside it: NAME_run), or a run folder that gets model.safetensors."""
    if not str(output).strip():  # Path("") is the current folder: an unset shell variable would train into it
        raise LossnetError("the output is empty: give a .safetensors file or a run folder")
    output = Path(output)
    if output.suffix == ".safetensors":
        model, run = output, Path(run_dir) if run_dir else output.with_name(output.stem + "_run")
        if not (output.parent if str(output.parent) else Path(".")).is_dir():
            raise LossnetError(f"output folder does not exist: {output.parent}")
    elif output.suffix:
        raise LossnetError(f"{output}: a model is written as .safetensors (or give a run folder, without a suffix)")
    else:
        model, run = output / MODEL_FILE, Path(run_dir) if run_dir else output
    if run.exists() and not run.is_dir():
        raise LossnetError(f"run folder {run} exists and is not a folder")
    blocked = next((p for p in run.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:  # missing folders above the run folder are made, like mkdir -p; a file cannot be
        raise LossnetError(f"cannot make the run folder {run}: {blocked} is a file")
    return model, run


def training_record(cfg) -> dict:
    """What a model file keeps of its training: every field of the method's config (files and folders by
    name only: a model does not carry its trainer's file system) and the loop's length, rate and seed."""
    record = {}
    for f in (f for f in dataclasses.fields(cfg) if f.name != "train"):
        value = getattr(cfg, f.name)
        if f.metadata.get("path") and value:
            value = Path(value).name if isinstance(value, (str, os.PathLike)) else [Path(v).name for v in value]
        record[f.name] = list(value) if isinstance(value, tuple) else value
    t = cfg.train
    return record | {"iters": t.iters, "lr": t.lr, "decay_from": t.decay_from, "seed": t.seed}


def train_model(task, cfg, output: str | os.PathLike, run_dir: str | os.PathLike | None = None,
                resume: bool = False, half: bool | None = None) -> Path:
    """Train `task` (built from `cfg`) on the generator loop in its run folder (log, samples, checkpoints; see
    `destination`), writing the model at every checkpoint and at the end, so a long run always has a usable
    model whose `training.steps` says the step it reached; returns the model's path. The file holds
    `task.model_config()` (what rebuilds the network) and `training_record(cfg)`."""
    from .train import train_to_file
    model, run_dir = destination(output, run_dir)
    net = task.generator  # the network itself (during training task.generator may be its DDP wrapper)
    kind_of(net)  # a network of no kind could not be loaded again: refused before the work
    meta = {**task.model_config(), "training": training_record(cfg)}
    cfg.train.meta = meta

    def write(step: int) -> Path:
        return save(net, model, {**meta, "training": {**meta["training"], "steps": step}}, half)
    return train_to_file(task, run_dir, cfg.train, resume, write) or model


# ----------------------------------------------------------------------------- applying
def is_video(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def frames_of(src: Path, temporal=None) -> bool:
    """Whether `src` is read as the frames of one sequence: a video, or with `temporal` a folder (a folder is
    otherwise a folder of images); `temporal` on one image is refused."""
    src = Path(src)
    if temporal is not None and not (src.is_dir() or is_video(src)):
        raise LossnetError(f"temporal blending needs a video or a folder of frames, not one image ({src})")
    return is_video(src) or (src.is_dir() and temporal is not None)


def check_output(src: Path, out: Path) -> None:
    """Said before anything is read or written: an image goes to an image file, a folder (of images or of
    frames) to a folder, a video to a video; an input is never written over."""
    from .io import IMAGE_SUFFIXES, SAVE_FORMATS, check_writable
    src, out = Path(src), Path(out)
    if out.exists() and src.exists() and os.path.samefile(out, src):
        raise LossnetError(f"the output {out} is the input {src}: refusing to write over it")
    if not src.is_dir() and not is_video(src):
        check_writable(out)
        return
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise LossnetError(f"output folder does not exist: {out.parent}")
    if src.is_dir():
        if out.suffix.lower() in IMAGE_SUFFIXES | set(SAVE_FORMATS) | VIDEO_SUFFIXES:
            raise LossnetError(f"{src} is a folder: the output must be a folder too, not {out}")
        if out.exists() and not out.is_dir():
            raise LossnetError(f"output {out} exists and is not a folder")
    elif out.suffix.lower() not in VIDEO_SUFFIXES:
        raise LossnetError(f"{src} is a video: the output needs a video suffix "
                           f"({', '.join(sorted(VIDEO_SUFFIXES))}), not {out}")
    elif out.is_dir():
        raise LossnetError(f"output {out} is a directory")


@dataclass(frozen=True)
class Applied:
    """What `apply_to_path` wrote: `str()` is the CLI's report."""
    path: Path
    what: str  # "image", "images", "video" or "frames"
    count: int
    size: tuple[int, int] | None = None  # an image's (width, height)
    fps: float | None = None  # a video's

    def __str__(self) -> str:
        if self.what == "image":
            return f"{self.path} ({self.size[0]}x{self.size[1]})"
        if self.what == "images":
            return f"{self.count} images to {self.path}/"
        rate = f" at {self.fps:g} fps" if self.fps else ""
        return f"{self.path}{'/' if self.what == 'frames' else ''} ({self.count} frames{rate})"


def _runner(model, options: dict) -> tuple[Callable[[torch.Tensor], torch.Tensor], bool]:
    """(images -> results, whether same-sized images may go through together)."""
    if not isinstance(model, nn.Module) and callable(model):
        return model, True
    net = model if isinstance(model, nn.Module) else load(model)
    kind = kind_of(net)
    return (lambda images: kind.apply(net, images, **options)), kind.batch


def apply_to_path(model, src: str | os.PathLike, out: str | os.PathLike, options: dict | None = None, *,
                  size: int | None = None, batch_size: int = 1, temporal=None, progress: bool = True,
                  desc: str = "apply") -> Applied:
    """Run a trained network (or its name or path, or any images -> images function) on an image (-> an image
    file), a folder of images (-> a folder of PNGs with their names), or a video or, with `temporal`, a folder
    of frames (-> a video with the same frame rate, count and audio, or a folder of frames;
    `lossnet.video.apply_frames`). `options` go to the kind's apply (a style's blend, tiles, precision);
    inputs are resized to longest side `size` when given; same-sized images run `batch_size` at a time.
    `temporal` (a `lossnet.temporal.TemporalConfig`) blends each frame's result with the previous one carried
    along the optical flow. Bad combinations are refused before anything is read or written, every input is
    decoded before the first output is, and no output is left half-written."""
    from .io import list_images, load_image, save_image
    src, out = Path(src), Path(out)
    frames = frames_of(src, temporal)
    check_output(src, out)
    run, batches = _runner(model, options or {})
    batch_size = batch_size if batches else 1
    if frames:
        from .video import apply_frames
        count, fps = apply_frames(run, src, out, size, batch_size, temporal, progress, desc)
        return Applied(out, "frames" if fps is None else "video", count, fps=fps)
    if not src.is_dir():
        result = run(load_image(src, size))
        save_image(result, out)
        return Applied(out, "image", 1, (result.shape[-1], result.shape[-2]))
    files = list_images(src)
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise LossnetError(f"{src} has several images named {twice[0]} (different suffixes): their results "
                           f"would be one file, {out / (twice[0] + '.png')}")
    images = [(p, load_image(p, size)) for p in files]  # decode all first: a bad file stops before any write
    from .progress import progress as bar_of
    out.mkdir(exist_ok=True)
    groups: dict[tuple, list] = {}
    for path, image in images:
        groups.setdefault(tuple(image.shape[-2:]), []).append((path, image))
    bar = bar_of(len(images), desc, enabled=progress and len(images) > 1, faster="fewer or smaller inputs")
    last = None
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i:i + batch_size]
            results = run(torch.cat([image for _, image in chunk]))
            for (path, _), result in zip(chunk, results.split(1)):
                save_image(result, out / f"{path.stem}.png")
            last = results
            bar.update(len(chunk))
    bar.close()
    return Applied(out, "images", len(images), (last.shape[-1], last.shape[-2]))
