"""`lossnet` command line: each subcommand parses its arguments, calls the library, and says what it wrote.

Bad input or usage exits with code 2 and one `error:` line on stderr; no output file is left behind.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import LossnetError
from .precision import add_precision_arg


# The spellings of the tools our users come from (jcjohnson/neural-style, pytorch/examples), and snake_case.
ANCHOR_SPELLINGS = {"style_image": "--style", "content_image": "the CONTENT argument", "output_image": "-o",
                    "num_iterations": "--iters", "image_size": "--size", "style_scale": "--style-scale",
                    "save_iter": "--snapshot-every", "print_iter": "--quiet", "gpu": "--device",
                    "backend": "--device", "epochs": "--iters", "dataset": "--data", "save_model_dir": "-o",
                    "cuda": "--device cuda", "style_size": "--style-size", "init_image": "--init"}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the option or command meant, and no prefix matching
    (`--iter 5` must not silently become `--iters 5`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _command_parser(self) -> "Parser":
        """The (sub)command parser the words of argv lead to: unrecognised options are reported by the top one."""
        parser = self
        for word in getattr(self, "argv", []):
            sub = parser._subparsers._group_actions[0] if parser._subparsers else None
            if isinstance(sub, argparse._SubParsersAction) and word in sub.choices:
                parser = sub.choices[word]
        return parser

    def suggestion(self, word: str) -> str:
        import difflib
        bare = word.lstrip("-")
        if bare in ANCHOR_SPELLINGS:
            return f" (did you mean {ANCHOR_SPELLINGS[bare]}?)"
        options = [o for o in self._command_parser()._option_string_actions if o.startswith("--")]
        dashed = "--" + bare.replace("_", "-")
        if dashed in options:
            return f" (did you mean {dashed}?)"
        close = difflib.get_close_matches(dashed, options, n=2, cutoff=0.75)
        return f" (did you mean {' or '.join(close)}?)" if close else ""

    def error(self, message):  # one line, not argparse's usage block
        import difflib
        import re
        if message.startswith("unrecognized arguments: "):
            words = message[len("unrecognized arguments: "):].split()
            hints = [self.suggestion(w) for w in words if w.startswith("-")]
            message += next((h for h in hints if h), "")
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(2)) or [c.strip() for c in choice.group(2).split(",")]
            close = difflib.get_close_matches(choice.group(1), options, n=2, cutoff=0.6)
            if close:
                message += f" (did you mean {' or '.join(close)}?)"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _bounded(convert, holds, must: str, name: str):
    """An argparse type: `convert(text)`, refused unless `holds(value)` ("must be MUST, got TEXT"). Every number
    option of every command goes through one of these, so NaN and infinity never pass where a number is meant."""
    def parse(text: str):
        value = convert(text)  # a ValueError: argparse's "invalid NAME value" (the studio: "expected a number")
        if not holds(value):
            raise argparse.ArgumentTypeError(f"must be {must}, got {text}")
        return value
    parse.__name__ = name  # argparse names the type in "invalid ... value" errors
    return parse


def _listed(element, must: str, name: str):
    """An argparse type for comma-separated values, each parsed and checked by the argparse type `element`."""
    def parse(text: str):
        parts = [v.strip() for v in text.split(",") if v.strip()]
        try:
            values = [element(v) for v in parts]
        except (argparse.ArgumentTypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected comma-separated {must}, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {must}, got {text!r}")
        return values
    parse.__name__ = name
    return parse


INF = float("inf")
finite = _bounded(float, lambda v: -INF < v < INF, "a finite number", "finite")
nonneg = _bounded(float, lambda v: 0 <= v < INF, ">= 0 and finite", "nonneg")
positive = _bounded(float, lambda v: 0 < v < INF, "> 0 and finite", "positive")
positive_int = _bounded(int, lambda v: v >= 1, ">= 1", "positive_int")
nonneg_int = _bounded(int, lambda v: v >= 0, ">= 0", "nonneg_int")
fraction = _bounded(float, lambda v: 0 <= v < 1, "in [0, 1)", "fraction")  # Adam's beta1
unit_interval = _bounded(float, lambda v: 0 <= v <= 1, "in [0, 1]", "unit_interval")  # a blend strength
# 0 (never tile) or a tile side of at least 32 pixels (smaller tiles are all overlap and padding)
tile_side = _bounded(int, lambda v: v == 0 or v >= 32, "0 (no tiles) or at least 32", "tile_side")
# A classifier's input side: ImageNet networks see 224 px; past 2048 px their activations alone take gigabytes.
image_side = _bounded(int, lambda v: 16 <= v <= 2048, "in [16, 2048]", "image_side")
floats = _listed(nonneg, "non-negative finite numbers", "floats")  # weights: of styles, of layers, of a blend
ints = _listed(positive_int, "positive integers", "ints")  # sizes and iteration counts


def add_tile_args(p, overlap: int, what: str = "") -> None:
    """--tile, --overlap and --max-memory: an image runs whole when it fits in memory, in tiles otherwise."""
    p.add_argument("--tile", type=tile_side, default=None,
                   help=f"{what}tile side (default: tiles only when the image does not fit in memory, as large as "
                        "fit; 0: never tile)")
    p.add_argument("--overlap", type=nonneg_int, default=overlap, help=f"{what}pixels of context around each tile, cut off again")
    p.add_argument("--max-memory", type=positive, metavar="GIB",
                   help="memory one pass may use, in GiB (default: half of what is available)")


def add_network_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("loss network")
    g.add_argument("--network", default="vgg16", choices=["vgg16", "vgg19"], help="loss network (default vgg16)")
    g.add_argument("--weights", help="weights file in torchvision layout (.pth or .safetensors)")
    g.add_argument("--pooling", default="max", choices=["max", "avg"])
    add_device_args(g)
    g.add_argument("--seed", type=int, default=0)


def add_device_args(p, default: str = "cpu") -> None:
    """--device and --precision, for every command that runs a network."""
    p.add_argument("--device", default=default, help=f"cpu, cuda, cuda:1, mps or auto (default {default})")
    add_precision_arg(p)


# ----------------------------------------------------------------------------- options from config dataclasses
def flag_of(f) -> str:
    """A config field's command-line flag: its `flag`, else --its-name (`n_layers_D` -> --n-layers-D)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _type_of(hint, meta: dict):
    """The argparse type of a config field: from its annotation (X | None is X) and its `minimum`."""
    import types
    import typing
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is not None:  # Sequence[...]: comma-separated values, unless repeated
        return None if meta.get("repeat") else {str: names, float: floats, int: ints}[typing.get_args(hint)[0]]
    if hint is int:
        return {1: positive_int, 0: nonneg_int}.get(meta.get("minimum"), int)
    if hint is float:
        return nonneg if meta.get("minimum") == 0 else finite
    return None


def add_config_args(p, config_type, title: str | None = None) -> None:
    """A flag for every `registry.option` field of a config dataclass: its name, type, default, choices and help
    come from the field (the one place they are said); a bool is a switch (--no-NAME when it defaults to on)."""
    import dataclasses
    import typing
    hints = typing.get_type_hints(config_type)
    g = p.add_argument_group(title) if title else p
    for f in dataclasses.fields(config_type):
        meta = f.metadata
        if "help" not in meta:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        default = None if default is dataclasses.MISSING else default
        kw = {"dest": f.name, "help": meta["help"]}
        if hints[f.name] is bool:
            g.add_argument(f"--no-{f.name.replace('_', '-')}" if default else flag_of(f), **kw,
                           action="store_false" if default else "store_true")
            continue
        kw.update(default=list(default) if isinstance(default, tuple) else default,
                  type=_type_of(hints[f.name], meta), required=meta.get("required", False))
        if meta.get("repeat"):
            kw.update(action="append", default=None)
        for key in ("choices", "metavar"):
            if key in meta:
                kw[key] = list(meta[key]) if key == "choices" else meta[key]
        g.add_argument(flag_of(f), **kw)


def config_from_args(config_type, args, **more):
    """The config dataclass from the parsed flags `add_config_args` made (and `more` fields, e.g. train)."""
    import dataclasses
    return config_type(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_type)
                          if "help" in f.metadata}, **more)


def add_train_args(p, defaults) -> None:
    """The generator loop's options (`train.TrainConfig`, with a method's `defaults`), the output and the run."""
    g = p.add_argument_group("training")
    g.add_argument("-o", "--output", required=True,
                   help="the model: a .safetensors file, or a run folder that gets model.safetensors")
    g.add_argument("--run-dir", help="log.csv, samples/ and checkpoints (default: beside a model file, its name + "
                                     "_run; a run folder itself)")
    g.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    g.add_argument("--iters", type=positive_int, default=defaults.iters, help="training steps")
    g.add_argument("--lr", type=positive, default=defaults.lr, help="Adam's learning rate")
    g.add_argument("--beta1", type=fraction, default=defaults.betas[0], help="Adam's beta1")
    g.add_argument("--decay-from", type=nonneg_int, default=defaults.decay_from,
                   help="from this step the learning rate falls linearly to 0 (default: constant; pix2pix: "
                        "from half the iterations)")
    g.add_argument("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every,
                   help="steps between checkpoints (and model files)")
    g.add_argument("--sample-every", type=nonneg_int, default=defaults.sample_every,
                   help="steps between sample images (0: at the end only)")
    g.add_argument("--half", action=argparse.BooleanOptionalAction, default=None,
                   help="store the model's tensors in fp16, half the size (default: style models yes, others no)")
    g.add_argument("--seed", type=int, default=defaults.seed)
    g.add_argument("--workers", type=nonneg_int, default=defaults.workers,
                   help=f"threads that prepare the next batches during a step (default {defaults.workers}; "
                        "a GPU run wants more)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_args(g, default="auto")  # CUDA when there is one


def train_config_from_args(args, defaults):
    """The TrainConfig of the flags `add_train_args` made."""
    import dataclasses
    return dataclasses.replace(defaults, iters=args.iters, lr=args.lr, betas=(args.beta1, defaults.betas[1]),
                               decay_from=args.decay_from, checkpoint_every=args.checkpoint_every,
                               sample_every=args.sample_every, seed=args.seed, workers=args.workers, device=resolve_device(args.device),
                               precision=args.precision, progress=not args.quiet)


def add_train_command(sub, name: str, kind, help: str, description: str | None = None):
    """The training command of a model kind (`lossnet.registry.Kind`): its config's options, then the loop's."""
    from .registry import get
    kind = get(kind)
    p = sub.add_parser(name, help=help, description=description)
    add_config_args(p, kind.config, f"{kind.title} ({kind.config.__name__})")
    add_train_args(p, _train_defaults(kind))
    p.set_defaults(func=cmd_train, kind=kind.name)
    return p


def _train_defaults(kind):
    import dataclasses
    return next(f for f in dataclasses.fields(kind.config) if f.name == "train").default_factory()


def cmd_train(args) -> None:
    """Any kind's training command: the config from the flags, the task, the generator loop."""
    from .registry import destination, get, train_model
    kind = get(args.kind)
    _, run_dir = destination(args.output, args.run_dir)  # a bad output fails before any data is read
    cfg = config_from_args(kind.config, args, train=train_config_from_args(args, _train_defaults(kind)))
    start = time.time()
    path = train_model(kind.task(cfg), cfg, args.output, args.run_dir, args.resume, args.half)
    report_training(path, start, run_dir)


def resolve_run(args):
    """(device, Precision) from --device / --precision (an error, exit 2, for bf16 where it is not supported)."""
    from .precision import resolve
    device = resolve_device(args.device)
    return device, resolve(args.precision, device)


class Default(list):
    """A list default, told apart from the same values given on the command line (`isinstance(v, Default)`)."""


def add_loop_args(p: argparse.ArgumentParser, iters: str, sizes: str) -> None:
    """The pixel loop's options. With several default `sizes` the run goes coarse to fine (each stage starts
    from the last, upsampled); `--size` scales those stages to end at it (lossnet.optimize.plan_stages)."""
    g = p.add_argument_group("optimisation")
    stages = ints(sizes)
    g.add_argument("--size", type=positive_int,
                   help=f"longest side of the output (default {stages[-1]})" + (
                       f"; reached coarse to fine from {round(stages[0] / stages[-1] * 100)}%% of it" if len(stages) > 1 else ""))
    g.add_argument("--scales", type=ints, default=Default(stages),
                   help=f"coarse-to-fine longest sides, e.g. 256,512,1024 (default {sizes}, or from --size)")
    g.add_argument("--iters", type=ints, default=Default(ints(iters)),
                   help=f"iterations, one value for every scale or one per scale (default {iters})")
    p.set_defaults(default_scales=stages, default_iters=ints(iters))
    g.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    g.add_argument("--lr", type=positive, help="step size (Adam default 0.02; L-BFGS 1)")
    g.add_argument("--snapshot-every", type=nonneg_int, default=0, help="save an intermediate image every N iterations")
    g.add_argument("--init", default=None, help="content, noise, or an image file")
    g.add_argument("--tv-weight", type=nonneg, default=None)
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        torch.empty(0, device=name)
    except (RuntimeError, AssertionError) as e:
        raise LossnetError(f"device {name!r} is not usable here: {str(e).splitlines()[0]}") from None
    return name


def report_training(path, start: float, run_dir) -> None:
    """A training command's last line; under torchrun only rank 0 says it (only rank 0 wrote anything)."""
    from .distributed import is_main_process
    if is_main_process():
        print(f"wrote {path} in {time.time() - start:.0f} s (log, samples and checkpoint in {run_dir}/)")


def report(path, image, start: float) -> None:
    h, w = image.shape[-2:]
    print(f"wrote {path} ({w}x{h}) in {time.time() - start:.1f} s")


def report_applied(applied, start: float, note: str = "") -> None:
    """The last line of a command that ran a model on an image, a folder or a video (`registry.Applied`)."""
    print(f"wrote {applied}{note} in {time.time() - start:.1f} s")


# Each module registers its subcommands; the library modules themselves know nothing of the CLI. `models` comes
# last: it adds a training command for every model kind that has none of its own yet.
COMMAND_MODULES = ["style", "superres", "pix2pix", "viz", "serve", "weights", "models"]


def build_parser() -> Parser:
    import importlib

    from importlib.metadata import PackageNotFoundError, version
    try:
        release = version("lossnet")
    except PackageNotFoundError:
        release = "unknown (not installed)"
    parser = Parser(prog="lossnet", description="Image synthesis and understanding with a pretrained CNN's features.")
    parser.add_argument("--version", action="version", version=f"lossnet {release}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"lossnet.commands.{name}").register(sub)
    _describe(sub)
    return parser


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _show_defaults(p: argparse.ArgumentParser) -> None:
    """Every option's help says its default (unless it already does, or it has none)."""
    for a in p._actions:
        if not a.option_strings or a.default in (None, False, argparse.SUPPRESS) or a.help == argparse.SUPPRESS:
            continue
        if isinstance(a, (argparse._HelpAction, argparse._VersionAction)) or "default" in (a.help or ""):
            continue
        a.help = f"{a.help} (default {_shown(a.default)})" if a.help else f"default {_shown(a.default)}"
        a.help = a.help.replace("%", "%%").replace("%%%%", "%%")


def _describe(sub) -> None:
    """Every command's --help opens with a description (its one-line help where it has no longer one) and
    shows every option's default."""
    for action in sub._choices_actions:
        p = sub.choices[action.dest]
        _show_defaults(p)
        p.description = p.description or (action.help[:1].upper() + action.help[1:] + "." if action.help else None)
        for nested in p._subparsers._group_actions if p._subparsers else []:
            if isinstance(nested, argparse._SubParsersAction):
                _describe(nested)


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"  # one line, not Python's file:line and the source line


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that `finally` blocks remove temp files as for Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b) or a.resolve() == b.resolve()
    except OSError:
        return False


def refuse_overwriting_inputs(args) -> None:
    """The output policy, for every command: `-o` never names one of the command's own inputs (a file or a
    folder given in any other argument), so no run can replace the user's photo, style or model."""
    out = getattr(args, "output", None)
    if not out:
        return
    for name, value in vars(args).items():
        if name in ("output", "run_dir") or callable(value):
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (str, os.PathLike)) and str(v) and Path(v).exists() and _same_file(Path(v), Path(out)):
                raise LossnetError(f"-o {out} is an input of this command ({v}): refusing to overwrite it; "
                                   "choose another output")


def _in_cli_words(error: LossnetError, parser: Parser) -> str:
    """The message of a library error; one that names a config field (ConfigError) names its flag instead."""
    from .errors import ConfigError
    if isinstance(error, ConfigError):
        for a in parser._command_parser()._actions:
            if a.dest == error.field and a.option_strings:
                return f"{a.option_strings[-1]}: {error.message}"
    return str(error)


def main(argv=None) -> int:
    import signal
    import warnings
    warnings.formatwarning = _warning_line
    from .weights import show_notices
    show_notices()
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        refuse_overwriting_inputs(args)
        args.func(args)
    except LossnetError as e:
        from .distributed import is_main_process
        if is_main_process():  # under torchrun every rank stops with the same error; rank 0 says it
            print(f"error: {_in_cli_words(e, parser)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lossnet models | head`: the reader has all it wanted; stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        return 141  # 128 + SIGPIPE, the shell's code for a command whose reader went away
    except OSError as e:  # a read-only folder, a full disk: one line, and atomic writes left nothing behind
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
