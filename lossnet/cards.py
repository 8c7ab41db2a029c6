"""Model cards (Mitchell et al. 2019): what a model does, how it was trained, how well it does, where it falls
short, and the terms of what it learned from.

    print(card("starry"))                     # lossnet models --card starry
    print(card("runs/mine.safetensors"))      # any model file: what the file itself says
    for name in names(): ...                  # every bundled model, grouped by kind

A bundled model's card is its prose, lossnet/models/NAME.md (the sections in `SECTIONS`: its use, its training
data, the commands that rebuild it, its measured quality and speed with the commands that measure them, its
limitations, the licences of its inputs), followed by a "Model file" section written from the model file when
the card is printed: kind, network, styles, size and the record of its last training run, so what the file
says is never copied by hand and cannot drift. Any other model file gets the generated section and the
description stored in it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import registry
from .errors import LossnetError, suggest

# The sections every bundled model's card has, in this order (Hugging Face's model cards, shortened).
SECTIONS = ("Use", "Training data", "Training procedure", "Evaluation", "Limitations", "Licence")
GENERATED = "Model file"


def names() -> list[str]:
    """The bundled models, grouped by kind (in `registry.kinds()` order), by name within a kind."""
    order = {kind.name: i for i, kind in enumerate(registry.kinds())}
    models = registry.bundled()
    return sorted(models, key=lambda name: (order[models[name].kind.name], name))


def card_path(name: str) -> Path:
    """Where a bundled model's prose is: lossnet/models/NAME.md."""
    return registry.MODELS_DIR / f"{name}.md"


def card(spec: str | os.PathLike) -> str:
    """The model card of a bundled model (its name) or of a model file or run folder, as markdown."""
    models = registry.bundled()
    path = _model_file(spec, models)
    if _is_bundled(path, models) and card_path(path.stem).is_file():
        prose = card_path(path.stem).read_text(encoding="utf-8").rstrip()
    else:
        title = path.parent.name if path.name == registry.MODEL_FILE else path.stem  # a run folder: its name
        description = registry.stored_metadata(path).get("lossnet_description")
        prose = f"# {title}\n\n{description or 'No description is stored in this file.'}"
    return f"{prose}\n\n{model_file_section(path)}\n"


def _is_bundled(path: Path, models: dict) -> bool:
    return path.stem in models and path.resolve() == models[path.stem].path.resolve()


def _model_file(spec: str | os.PathLike, models: dict) -> Path:
    """The file of a bundled name, a model file or a run folder; an unknown name is said with the closest ones."""
    text = str(spec)
    if (text and Path(spec).exists()) or text in models:  # "" is not the current folder here
        return registry.model_path(spec)
    if os.sep in text or Path(text).suffix:
        raise LossnetError(f"no model file or run folder {text}")
    raise LossnetError(f"no bundled model {text!r}{suggest(text, models)}: the bundled models are "
                       f"{', '.join(names())}; a model file or run folder works too")


def budget(config: dict) -> str:
    """A model's last training run, as its file records it: steps reached, crop side, warm start. A warm start
    from a file is shown by the file's name: the folder it had on the training machine means nothing here."""
    t = config.get("training", {})
    crop = t.get("crop", t.get("crop_size"))
    return (f"{t.get('steps', t.get('iters', '?'))} steps" + (f" of {crop} px" if crop else "")
            + (f" from {Path(t['init_from']).name}" if t.get("init_from") else ""))


def model_file_section(path: str | os.PathLike) -> str:
    """The "Model file" section: what the file at `path` says of itself (its metadata, and the network it
    builds)."""
    from .nets import count_parameters
    path = Path(path)
    net = registry.load(path)  # built by the kind the file names: a file of no kind is refused here
    kind, meta = registry.kind_of(net), registry.stored_metadata(path)
    config = json.loads(meta.get("lossnet_config", "{}"))
    shown = f"lossnet/models/{path.name}" if _is_bundled(path, registry.bundled()) else str(path)
    lines = [f"## {GENERATED}", "",
             f"Read from `{shown}` when this card was printed.", "",
             f"- **file**: {path.stat().st_size / 1e6:.1f} MB, {count_parameters(net):,} parameters stored as "
             f"{' and '.join(_stored_types(path))}",
             f"- **kind**: {kind.name}, {kind.description}"]
    if meta.get("lossnet_description"):
        lines.append(f"- **description**: {meta['lossnet_description']}")
    network = {k: v for k, v in config.items() if k not in ("training", "styles")}
    if network:
        lines.append(f"- **network**: {_fields(network)}")
    if config.get("styles"):
        lines.append("- **styles** (`--style-index`): "
                     + ", ".join(f"{i} {Path(s).name}" for i, s in enumerate(config["styles"])))
    if config.get("training"):
        lines.append(f"- **last training run**: {budget(config)}")
        lines.append(f"- **its record**: {_fields(config['training'])}")
    return "\n".join(lines)


def _stored_types(path: Path) -> list[str]:
    """The types the file's floating-point tensors are stored in (fp16 files are read back as fp32)."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        stored = {f.get_slice(k).get_dtype() for k in f.keys()}
    float_types = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F64": "fp64"}
    return sorted(float_types[t] for t in stored if t in float_types)


def _fields(values: dict) -> str:
    """`key value; ...` of a config or training record: lists comma-separated, a warm-start file by its name."""
    def shown(key, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(map(str, value)) or "none"
        if key == "init_from" and value:
            return Path(value).name
        return "none" if value is None else str(value)
    return "; ".join(f"{key} {shown(key, value)}" for key, value in values.items())
