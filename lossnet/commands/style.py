"""`lossnet stylize | texture | invert | demo`: the optimisation-based methods on the pixel loop."""
from __future__ import annotations

import time
from pathlib import Path

from ..cli import (Default, add_loop_args, add_network_args, floats, names, nonneg, positive, positive_int, report,
                   resolve_run)
from ..errors import LossnetError
from .fast import check_frames_output, is_frames, report_frames, temporal_config


def style_config(args, init_default: str, tv_default: float, **overrides):
    """StyleConfig + LoopConfig from the shared arguments."""
    from ..io import MIN_SIDE, check_writable, load_image
    from ..optimize import LoopConfig, plan_stages
    from ..style import StyleConfig

    frames = getattr(args, "content", None) is not None and is_frames(args.content)
    if not frames:  # a video or a folder of frames is checked by check_frames_output
        check_writable(args.output)
    sizes, plan = plan_stages(args.size, None if isinstance(args.scales, Default) else args.scales,
                              None if isinstance(args.iters, Default) else args.iters, args.default_scales, args.default_iters)
    if min(sizes) < MIN_SIDE:
        raise LossnetError(f"output size {min(sizes)} is too small: use at least {MIN_SIDE} pixels")
    init = args.init or init_default
    if init not in ("content", "noise"):
        load_image(init, max(sizes))  # a bad start image fails now, not after the network is loaded
    iters = plan if len(plan) > 1 else None
    device, precision = resolve_run(args)
    loop = LoopConfig(iters=plan[0], optimizer=args.optimizer, lr=args.lr, progress=not args.quiet,
                      faster="a smaller --size or fewer --iters",
                      snapshot_every=0 if frames else args.snapshot_every, snapshot_path=args.output, desc=args.command,
                      precision=precision)
    tv = args.tv_weight if args.tv_weight is not None else tv_default
    return StyleConfig(sizes=sizes, iters=iters, arch=args.network, weights=args.weights, pooling=args.pooling,
                       seed=args.seed, device=device, init=init,
                       tv_weight=tv, loop=loop, **overrides)


def cmd_stylize(args) -> None:
    from ..io import load_image, save_image
    from ..style import check_weights, stylize

    if getattr(args, "model", None):  # feed-forward: a trained style network (commands/fast.py)
        from .fast import cmd_stylize_model
        return cmd_stylize_model(args)
    if not args.style:
        raise LossnetError("stylize needs --style IMAGE (optimisation) or --model MODEL (feed-forward)")
    blend = check_weights("--style-weights", args.style_weights or [1.0] * len(args.style), len(args.style))
    if args.style_layer_weights is not None:
        check_weights("--style-layer-weights", args.style_layer_weights, len(args.style_layers))
    cfg = style_config(args, "content", 1.0, content_layers=args.content_layers, style_layers=args.style_layers,
                       style_layer_weights=args.style_layer_weights, content_weight=args.content_weight,
                       style_weight=args.style_weight, style_scale=args.style_scale,
                       original_colors=args.original_colors)
    start = time.time()
    styles = [load_image(s, max(cfg.sizes)) for s in args.style]
    if is_frames(args.content):  # every frame; with --temporal, Ruder et al.'s warped start and temporal term
        from ..temporal import gatys_frames
        from ..video import map_frames
        check_frames_output(args.content, args.output)
        frames, fps = map_frames(args.content, args.output, gatys_frames(styles, cfg, temporal_config(args), blend),
                                 max(cfg.sizes), show_progress=not args.quiet)
        return report_frames(args.output, frames, fps, start)
    temporal_config(args)  # --temporal on one image is an error
    content = load_image(args.content, max(cfg.sizes))
    image = stylize(content, styles, cfg, blend)
    report(save_image(image, args.output), image, start)


def cmd_texture(args) -> None:
    from ..io import MIN_SIDE, load_image, save_image
    from ..style import texture

    cfg = style_config(args, "noise", 0.1, style_layers=args.style_layers, style_weight=1.0)
    if min(args.width or MIN_SIDE, args.height or MIN_SIDE) < MIN_SIDE:
        raise LossnetError(f"--width and --height must be at least {MIN_SIDE} pixels")
    start = time.time()
    style = load_image(args.style, max(cfg.sizes))
    size = max(cfg.sizes)
    image = texture(style, (args.height or size, args.width or size), cfg)
    report(save_image(image, args.output), image, start)


def cmd_invert(args) -> None:
    from ..io import load_image, save_image
    from ..style import invert

    cfg = style_config(args, "noise", 0.05)
    start = time.time()
    image = invert(load_image(args.image, max(cfg.sizes)), args.layer, cfg)
    report(save_image(image, args.output), image, start)


def cmd_demo(args) -> None:
    from ..demo import run_demo
    run_demo(Path(args.output), quick=args.quick)


def register(sub) -> None:
    from ..style import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS

    p = sub.add_parser("stylize", aliases=["stylise"], help="neural style transfer (Gatys et al.)",
                       description="Optimise an image to have CONTENT's features and the STYLEs' Gram matrices.")
    p.add_argument("content", help="content image")
    p.add_argument("--style", action="append", default=[], help="style image (repeat for several)")
    p.add_argument("--style-weights", type=floats, help="blend weights, one per --style, e.g. 0.7,0.3")
    p.add_argument("--style-scale", type=positive, default=1.0, help="style image size relative to the output")
    p.add_argument("--original-colors", action="store_true", help="keep the content's colours (luminance-only transfer)")
    p.add_argument("--content-layers", type=names, default=list(DEFAULT_CONTENT_LAYERS))
    p.add_argument("--style-layers", type=names, default=list(DEFAULT_STYLE_LAYERS))
    p.add_argument("--style-layer-weights", type=floats, help="one weight per style layer")
    p.add_argument("--content-weight", type=nonneg, default=1.0)
    p.add_argument("--style-weight", type=nonneg, default=10.0)
    p.add_argument("-o", "--output", required=True)
    add_loop_args(p, "150,100", "256,512")  # coarse to fine: 512 px in about a minute on 2 cores (bf16)
    add_network_args(p)
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("texture", help="texture synthesis: match a style image's Grams from noise")
    p.add_argument("style")
    p.add_argument("--style-layers", type=names, default=list(DEFAULT_STYLE_LAYERS))
    p.add_argument("--width", type=positive_int)
    p.add_argument("--height", type=positive_int)
    p.add_argument("-o", "--output", required=True)
    add_loop_args(p, "300", "256")
    add_network_args(p)
    p.set_defaults(func=cmd_texture)

    p = sub.add_parser("invert", help="feature inversion: reconstruct an image from one layer's features")
    p.add_argument("image")
    p.add_argument("--layer", default="relu3_3")
    p.add_argument("-o", "--output", required=True)
    add_loop_args(p, "300", "256")
    add_network_args(p)
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("demo", help="the main job on built-in defaults, offline")
    p.add_argument("-o", "--output", default="outputs/demo", help="folder (default outputs/demo)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    p.set_defaults(func=cmd_demo)
