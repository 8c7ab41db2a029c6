"""`lossnet models | apply | export`, and `lossnet train-KIND` for every model kind without a training command of
its own elsewhere (train-style, train-sr; pix2pix has `pix2pix train`): what `lossnet.registry` offers every kind."""
from __future__ import annotations

import argparse
import time

from ..cards import budget
from ..cli import add_device_args, add_train_command, cmd_train, positive_int, report_applied, resolve_run


def cmd_models(args) -> None:
    """Every model kind, with its bundled models: name, file size, training budget, what it does; or, with
    --card, one model's card."""
    from ..registry import bundled, kinds

    if args.card is not None:
        from ..cards import card
        print(card(args.card), end="")
        return
    models = bundled()
    for kind in kinds():
        print(f"{kind.name}: {kind.description}")
        rows = [m for m in models.values() if m.kind is kind]
        if not rows:
            print("  (none bundled)")
        widths = [max((len(s) for s in strings), default=0) for strings in
                  ([m.name for m in rows], [budget(m.config) for m in rows])]
        for m in rows:
            print(f"  {m.name:<{widths[0]}}  {m.path.stat().st_size / 1e6:4.1f} MB  {budget(m.config):<{widths[1]}}  "
                  f"{m.description}")


def cmd_apply(args) -> None:
    from ..registry import apply_to_path, load

    device, precision = resolve_run(args)
    net = load(args.model, device=device)
    start = time.time()
    applied = apply_to_path(net, args.input, args.output, {"precision": precision}, size=args.size,
                            batch_size=args.batch_size, progress=not args.quiet)
    report_applied(applied, start)


def cmd_export(args) -> None:
    from ..export import export_onnx
    from ..registry import graph_of, kind_of, load

    net = load(args.model)
    path, difference = export_onnx(graph_of(net), args.onnx)  # checked against torch; nothing is kept when they differ
    print(f"wrote {path} ({kind_of(net).title} model; onnxruntime vs torch: max difference {difference:.1e})")


def _trained_kinds(sub: argparse._SubParsersAction) -> set[str]:
    """The kinds that already have a training command among these commands (or theirs)."""
    found = set()
    for p in sub.choices.values():
        if p.get_default("func") is cmd_train:
            found.add(p.get_default("kind"))
        for nested in (a for a in p._actions if isinstance(a, argparse._SubParsersAction)):
            found |= _trained_kinds(nested)
    return found


def register(sub) -> None:
    from ..registry import kinds

    p = sub.add_parser("models", help="list every model kind and its bundled models (style, super-resolution, "
                                      "pix2pix), or print one model's card")
    p.add_argument("--card", metavar="MODEL", help="print this model's card: what it does, the commands that "
                                                   "rebuild and measure it, its limitations, the licences of its "
                                                   "inputs (a bundled name, a model file or a run folder)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("apply", help="run a trained model of any kind (its defaults) on an image, a folder or a video")
    p.add_argument("input", help="image, folder of images, or video")
    p.add_argument("--model", required=True, help="bundled name of any kind, model file, or run folder")
    p.add_argument("-o", "--output", required=True, help="output image, or a folder for a folder, a video for a video")
    p.add_argument("--size", type=positive_int, help="resize inputs to this longest side first")
    p.add_argument("--batch-size", type=positive_int, default=1, help="same-sized images per forward pass")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_args(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("export", help="export a style, super-resolution or pix2pix model to ONNX (checked with "
                                      "onnxruntime)")
    p.add_argument("model", help="bundled name of any kind (`lossnet models`), model file, or run folder")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)

    trained = _trained_kinds(sub)
    for kind in kinds():
        if kind.name not in trained:
            add_train_command(sub, f"train-{kind.name}", kind, help=f"train a {kind.title} network",
                              description=f"Train a {kind.title} network on the generator loop; {kind.description}.")
