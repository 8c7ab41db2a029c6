"""What the studio offers: each method is a CLI command, its uploads and the options a page may set.

The CLI's parser is the one source of truth. A method names its command's words and the option `dest`s it
exposes; their types, choices, defaults and help come from the parser's own actions, a submitted value is
checked by the action's own `type` function, and the job runs the command's argv through that same parser in
a worker process. What a page may *not* set is what reaches the filesystem (`--weights`, `--init` files, `-o`,
`--run-dir`), the device, and anything not listed. The studio's own defaults (`defaults`) keep a job under a
minute on 2 cores; they are shown as the default and the CLI default is listed beside them.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from functools import lru_cache

from .. import cli

# argparse `type` functions -> (JSON type, smallest allowed value); a value is checked by calling the function.
_TYPES = {int: ("integer", None), float: ("number", None), cli.positive_int: ("integer", 1),
          cli.nonneg_int: ("integer", 0), cli.positive: ("number", 0), cli.nonneg: ("number", 0),
          cli.finite: ("number", None), cli.fraction: ("number", 0), cli.unit_interval: ("number", 0),
          cli.tile_side: ("integer", 0), cli.image_side: ("integer", 16), cli.floats: ("numbers", None), cli.ints: ("integers", 1),
          cli.names: ("names", None), None: ("text", None), str: ("text", None)}


class BadRequest(ValueError):
    """A submission the studio refuses: the message is the one sentence the client sees (HTTP 400)."""


@dataclass(frozen=True)
class Upload:
    """A file field of the form and the CLI argument its stored path fills."""
    field: str
    dest: str  # the parser dest: a positional (`content`) or an option (`style`)
    help: str
    kind: str = "image"  # "image", or the model kind a .safetensors upload must hold (lossnet.weights.read_model)
    required: bool = True
    multiple: int = 1  # how many files the field takes at most
    instead_of: str | None = None  # a model upload stands in for this parameter (e.g. `model`)


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    command: tuple[str, ...]  # the CLI words, e.g. ("viz", "saliency")
    uploads: tuple[Upload, ...]
    params: tuple[str, ...]  # the exposed option dests, in page order
    defaults: dict = field(default_factory=dict)  # the studio's defaults (short jobs), by dest
    choices: dict = field(default_factory=dict)  # narrower choices than the parser's, by dest (e.g. init)
    fixed: tuple[str, ...] = ()  # argv the studio always adds (e.g. superres --method model)
    maximum: dict = field(default_factory=dict)  # upper bounds on costly numbers, by dest
    live_preview: bool = False  # a pixel-loop method: the page shows the iterate while it runs
    max_input_pixels: int | None = None  # tighter than the server's upload limit (super-resolution multiplies it)
    weights_over: dict = field(default_factory=dict)  # a numbers option the page draws as sliders, by dest:
    # "upload:FIELD" (one per file in FIELD) or "model" (one per style of the chosen multi-style model)
    helps: dict = field(default_factory=dict)  # the page's help where the parser's is another method's, by dest


def _bundled(kind: str) -> dict:
    """The bundled models of a kind (lossnet.registry: style, sr, pix2pix), read when the catalog is built."""
    from ..registry import bundled
    return bundled(kind)


def _universal(name: str, title: str) -> Method:
    """`stylize --method NAME` (wct, adain): the page's own `method` field names the studio's method."""
    return Method(name, title, ("stylize",),
                  (Upload("content", "content", "the photo to repaint: " + _IMAGE),
                   Upload("style", "style", "one to four paintings, blended by style_weights", multiple=4),
                   Upload("mask", "mask", "optional: a mask, the first painting where it is white, the second where "
                                          "it is black", required=False)),
                  ("alpha", "size", "style_weights", "original_colors", "style_scale", "precision"),
                  defaults={"size": 512}, fixed=("--method", name), maximum={"size": 2048},
                  weights_over={"style_weights": "upload:style"},
                  # the parser's --size help is the optimisation's (coarse to fine); one pass renders the size itself
                  helps={"size": "longest side of the output"})


_SIZE = {"size": 1024}
_ITERS = {"iters": 2000}
_IMAGE = "an image (PNG, JPEG, WebP, TIFF, BMP)"

METHODS = (
    Method("stylize", "Neural style (Gatys et al.)", ("stylize",),
           (Upload("content", "content", "the photo to repaint: " + _IMAGE),
            Upload("style", "style", "one to four paintings, blended by style_weights", multiple=4)),
           ("size", "iters", "style_weights", "original_colors", "content_weight", "style_weight", "tv_weight",
            "style_scale", "init", "optimizer", "seed", "precision"),
           defaults={"size": 256, "iters": 60}, choices={"init": ["content", "noise"]},
           maximum={**_SIZE, **_ITERS}, live_preview=True, weights_over={"style_weights": "upload:style"}),
    Method("fast-style", "Feed-forward style (Johnson et al.)", ("stylize",),
           (Upload("content", "content", "the photo to stylise: " + _IMAGE),
            Upload("model_file", "model", "a trained style model (.safetensors) instead of a bundled one",
                   kind="transformer", required=False, instead_of="model")),
           ("model", "size", "style_index", "blend", "original_colors", "precision"),
           defaults={"model": "starry", "size": 512}, maximum={"size": 2048}, weights_over={"blend": "model"}),
    *(_universal(name, title) for name, title in (("wct", "Any painting in one pass: WCT (Li et al.)"),
                                                  ("adain", "Any painting in one pass, fastest: AdaIN (Huang et al.)"))),
    Method("superres", "Super-resolution (Johnson et al.)", ("superres",),
           (Upload("input", "input", "a small image to upscale: " + _IMAGE),),
           ("model", "precision"), defaults={"model": "x4-feature"}, fixed=("--method", "model"),
           max_input_pixels=1_000_000),
    Method("pix2pix", "pix2pix (Isola et al.)", ("pix2pix", "apply"),
           (Upload("input", "input", "an input of the model's kind (facades: a label map): " + _IMAGE),),
           ("model", "seed", "precision"), defaults={"model": "facades-label2photo"}),
    Method("texture", "Texture synthesis", ("texture",),
           (Upload("style", "style", "the texture or painting to resynthesise: " + _IMAGE),),
           ("size", "width", "height", "iters", "seed", "precision"), defaults={"size": 256, "iters": 60},
           maximum={**_SIZE, **_ITERS, "width": 1024, "height": 1024}, live_preview=True),
    Method("saliency", "Saliency map", ("viz", "saliency"),
           (Upload("image", "image", "the image to explain: " + _IMAGE),), ("target",)),
    Method("guided", "Guided backprop", ("viz", "guided"),
           (Upload("image", "image", "the image to explain: " + _IMAGE),), ("target",)),
    Method("occlusion", "Occlusion sensitivity", ("viz", "occlusion"),
           (Upload("image", "image", "the image to explain: " + _IMAGE),), ("target", "patch", "stride", "fill"),
           defaults={"stride": 16}),
    Method("class-model", "Class model", ("viz", "class-model"), (), ("target", "iters", "lr", "jitter", "seed"),
           defaults={"target": "goldfish", "iters": 100}, maximum=_ITERS, live_preview=True),
    Method("deepdream", "DeepDream", ("viz", "deepdream"),
           (Upload("image", "image", "the image to dream on: " + _IMAGE),),
           ("layer", "iters", "octaves", "lr", "jitter", "seed", "size"),
           defaults={"size": 256}, maximum={"size": 1024, "iters": 200, "octaves": 8}, live_preview=True),
)

# Methods whose `model` parameter chooses among the bundled models of this kind.
_MODEL_CHOICES = {"fast-style": "style", "superres": "sr", "pix2pix": "pix2pix"}


def method(name: str) -> Method:
    for m in METHODS:
        if m.name == name:
            return m
    raise BadRequest(f"unknown method {name!r}: choose one of {', '.join(m.name for m in METHODS)}")


@lru_cache(maxsize=1)
def parser() -> argparse.ArgumentParser:
    return cli.build_parser()


def command_parser(m: Method) -> argparse.ArgumentParser:
    p = parser()
    for word in m.command:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[word]
    return p


def action(m: Method, dest: str) -> argparse.Action:
    for a in command_parser(m)._actions:
        if a.dest == dest:
            return a
    raise KeyError(f"{m.name}: the {' '.join(m.command)} command has no option {dest!r}")


def _choices(m: Method, dest: str, a: argparse.Action) -> list | None:
    if dest in m.choices:
        return list(m.choices[dest])
    if dest == "model" and m.name in _MODEL_CHOICES:
        return sorted(_bundled(_MODEL_CHOICES[m.name]))
    return list(a.choices) if a.choices else None


def describe(m: Method) -> dict:
    """The method as /api/methods lists it: uploads, then every parameter with type, default and help."""
    params = []
    for dest in m.params:
        a = action(m, dest)
        flag = next((o for o in a.option_strings if o.startswith("--")), None)
        if isinstance(a, argparse._StoreTrueAction):
            kind, minimum = "boolean", None
        else:
            kind, minimum = _TYPES.get(a.type, ("text", None))
        # the help without its "(default X)": the page shows the value, and the CLI's default when it differs
        text = m.helps.get(dest) or re.sub(r"\s*\(default [^)]*\)|\.?\s*Default \S+$", "",
                                           (a.help or "").replace("%%", "%"))
        row = {"name": dest, "flag": flag, "type": kind, "default": m.defaults.get(dest, a.default),
               "cli_default": a.default, "help": text}
        choices = _choices(m, dest, a)
        if choices:
            row["type"], row["choices"] = "choice", choices
        if minimum is not None:
            row["minimum"] = minimum
        if dest in m.maximum:
            row["maximum"] = m.maximum[dest]
        if dest in m.weights_over:
            row["weights_over"] = m.weights_over[dest]
        params.append(row)
    info = {"name": m.name, "title": m.title, "command": "lossnet " + " ".join(m.command),
            "uploads": [{"field": u.field, "help": u.help, "kind": u.kind, "required": u.required,
                         "multiple": u.multiple, "instead_of": u.instead_of} for u in m.uploads],
            "params": params, "live_preview": m.live_preview}
    if m.name == "fast-style":  # the page draws one blend slider per style of a multi-style model
        info["models"] = {name: {"styles": m.config.get("styles", []), "description": m.description}
                          for name, m in _bundled("style").items()}
    return info


def catalog() -> list[dict]:
    return [describe(m) for m in METHODS]


def _number_check(dest: str, value, m: Method) -> None:
    values = value if isinstance(value, list) else [value]
    if dest in m.maximum and any(v > m.maximum[dest] for v in values):
        raise BadRequest(f"parameter {dest}: at most {m.maximum[dest]} in the studio, got {value}")


def check_count(u: Upload, count: int) -> None:
    if count > u.multiple:
        raise BadRequest(f"{u.field!r} takes at most {u.multiple} file{'s' if u.multiple > 1 else ''}")


def _flag(a: argparse.Action) -> str | None:
    return next((o for o in a.option_strings if o.startswith("--")), None)


def argv_for(m: Method, fields: dict[str, str], files: dict[str, list[str]], output: str,
             models: dict[str, str] | None = None) -> list[str]:
    """The CLI argv of a submission, every value checked as the CLI would (errors name the parameter).

    `fields` are the form's text fields, `files` the stored paths of the validated uploads by field, `models`
    the `model` values the server knows beyond the bundled names (the gallery's uploads) and their files.
    Options go as `--flag=value` and positionals after `--`, so no value, whatever its text, can read as an
    option."""
    for name in fields:
        if name not in m.params:
            raise BadRequest(f"unknown parameter {name!r} for {m.name}: it takes "
                             f"{', '.join(m.params) or 'no parameters'}")
    options, positionals = [], {}
    replaced = {u.instead_of for u in m.uploads if u.instead_of and files.get(u.field)}
    for u in m.uploads:
        paths = files.get(u.field, [])
        if not paths:
            if u.required:
                raise BadRequest(f"{m.name} needs a file in {u.field!r} ({u.help})")
            continue
        check_count(u, len(paths))
        flag = _flag(action(m, u.dest))
        for path in paths:
            if flag:
                options.append(f"{flag}={path}")
            else:
                positionals[u.dest] = path
    values = {**m.defaults, **fields}
    for dest in m.params:
        if dest not in values or dest in replaced:
            continue
        a, raw = action(m, dest), values[dest]
        if isinstance(a, argparse._StoreTrueAction):
            text = str(raw).strip().lower()
            if text not in ("true", "false", "1", "0", "on", "off", "yes", "no", ""):
                raise BadRequest(f"parameter {dest}: expected true or false, got {raw!r}")
            if text in ("true", "1", "on", "yes"):
                options.append(_flag(a))
            continue
        text = str(raw).strip()
        if text == "":  # an empty form field: the CLI's own default
            if not a.option_strings:
                raise BadRequest(f"parameter {dest} is required for {m.name}")
            continue
        if dest == "model" and text in (models or {}):
            options.append(f"{_flag(a)}={models[text]}")
            continue
        try:
            value = a.type(text) if a.type else text
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            detail = str(e) if isinstance(e, argparse.ArgumentTypeError) else \
                f"expected {_TYPES.get(a.type, ('text',))[0]}, got {text!r}"
            raise BadRequest(f"parameter {dest}: {detail}") from None
        choices = _choices(m, dest, a)
        if choices and value not in choices:
            raise BadRequest(f"parameter {dest}: {text!r} is not one of {', '.join(map(str, choices))}")
        _number_check(dest, value, m)
        if a.option_strings:
            options.append(f"{_flag(a)}={text}")
        else:
            positionals[dest] = text
    order = [a.dest for a in command_parser(m)._actions if not a.option_strings and a.dest in positionals]
    return [*m.command, *options, *m.fixed, f"--output={output}", "--", *(positionals[d] for d in order)]
