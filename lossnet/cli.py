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


def floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def ints(text: str) -> list[int]:
    values = floats(text)
    if any(v != int(v) or v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return [int(v) for v in values]


def names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def nonneg(text: str) -> float:
    v = float(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def positive(text: str) -> float:
    v = float(text)
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return v


def fraction(text: str) -> float:
    """A number in [0, 1) (Adam's beta1)."""
    v = float(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def unit_interval(text: str) -> float:
    """A number in [0, 1] (a blend strength)."""
    v = float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def tile_side(text: str) -> int:
    """0 (never tile) or a tile side of at least 32 pixels (smaller tiles are all overlap and padding)."""
    v = int(text)
    if v != 0 and v < 32:
        raise argparse.ArgumentTypeError(f"must be 0 (no tiles) or at least 32, got {text}")
    return v


def nonneg_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def add_network_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("loss network")
    g.add_argument("--network", default="vgg16", choices=["vgg16", "vgg19"], help="loss network (default vgg16)")
    g.add_argument("--weights", help="weights file in torchvision layout (.pth or .safetensors)")
    g.add_argument("--pooling", default="max", choices=["max", "avg"])
    add_device_args(g)
    g.add_argument("--seed", type=int, default=0)


def add_device_args(p) -> None:
    """--device and --precision, for every command that runs a network."""
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps or auto (default cpu)")
    add_precision_arg(p)


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


# Each module registers its subcommands; the library modules themselves know nothing of the CLI.
COMMAND_MODULES = ["style", "fast", "superres", "pix2pix", "viz", "serve", "weights"]


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


def main(argv=None) -> int:
    import signal
    import warnings
    warnings.formatwarning = _warning_line
    from .weights import show_notices
    show_notices()
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        refuse_overwriting_inputs(args)
        args.func(args)
    except LossnetError as e:
        from .distributed import is_main_process
        if is_main_process():  # under torchrun every rank stops with the same error; rank 0 says it
            print(f"error: {e}", file=sys.stderr)
        return 2
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
