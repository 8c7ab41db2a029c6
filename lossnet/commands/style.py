"""`lossnet stylize | texture | invert | demo | eval-video`: the optimisation-based methods on the pixel loop;
`stylize --model` runs a trained style network instead (lossnet.fast), and `stylize --method wct|adain` any
painting in one pass (lossnet.universal), on an image, a folder or a video."""
from __future__ import annotations

import time
from pathlib import Path

from ..cli import (Default, add_loop_args, add_network_args, add_tile_args, floats, names, nonneg,
                   positive, positive_int, report, report_applied, resolve_run, unit_interval)
from ..errors import LossnetError
from ..registry import Applied, apply_to_path, check_output, frames_of, is_video


def is_frames(src) -> bool:
    """The pixel loop reads a video, or a folder, as the frames of one sequence."""
    return Path(src).is_dir() or is_video(Path(src))


def temporal_config(args):
    """--temporal / --temporal-strength -> a lossnet.temporal.TemporalConfig, or None (frame by frame)."""
    if not args.temporal and args.temporal_strength is None:
        return None
    from ..temporal import TemporalConfig
    return TemporalConfig() if args.temporal_strength is None else TemporalConfig(strength=args.temporal_strength)


def style_config(args, init_default: str, tv_default: float, **overrides):
    """StyleConfig + LoopConfig from the shared arguments."""
    from ..io import MIN_SIDE, check_writable, load_image
    from ..optimize import LoopConfig, plan_stages
    from ..style import StyleConfig

    frames = getattr(args, "content", None) is not None and is_frames(args.content)
    if not frames:  # a video or a folder of frames is checked by registry.check_output
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

    if args.method != "gatys":
        return cmd_stylize_universal(args)
    refuse_given(args, UNIVERSAL_ONLY, "--method wct or adain")
    if args.model:
        return cmd_stylize_model(args)
    refuse_given(args, MODEL_ONLY, "--model (a trained style network), not of the optimisation")
    refuse_given(args, MODEL_OR_UNIVERSAL, "--model or of --method wct|adain, not of the optimisation")
    if not args.style:
        raise LossnetError("stylize needs --style IMAGE (optimisation) or --model MODEL (feed-forward)")
    blend = check_weights("--style-weights", args.style_weights or [1.0] * len(args.style), len(args.style))
    if args.style_layer_weights is not None:
        check_weights("--style-layer-weights", args.style_layer_weights, len(args.style_layers))
    temporal = temporal_config(args)
    frames_of(Path(args.content), temporal)  # refuses --temporal on one image
    if is_frames(args.content):
        check_output(Path(args.content), Path(args.output))
    cfg = style_config(args, "content", 1.0, content_layers=args.content_layers, style_layers=args.style_layers,
                       style_layer_weights=args.style_layer_weights, content_weight=args.content_weight,
                       style_weight=args.style_weight,
                       **({} if args.style_scale is None else {"style_scale": args.style_scale}),
                       original_colors=args.original_colors)
    start = time.time()
    styles = [load_image(s, max(cfg.sizes)) for s in args.style]
    if is_frames(args.content):  # every frame; with --temporal, Ruder et al.'s warped start and temporal term
        from ..temporal import gatys_frames
        from ..video import map_frames
        frames, fps = map_frames(args.content, args.output, gatys_frames(styles, cfg, temporal, blend),
                                 max(cfg.sizes), show_progress=not args.quiet)
        return report_applied(Applied(Path(args.output), "frames" if fps is None else "video", frames, fps=fps), start)
    content = load_image(args.content, max(cfg.sizes))
    image = stylize(content, styles, cfg, blend)
    report(save_image(image, args.output), image, start)


def cmd_stylize_model(args) -> None:
    """`lossnet stylize INPUT --model MODEL`: an image, a folder of images, or a video (or a folder of frames,
    with --temporal), through `registry.apply_to_path`."""
    from .. import fast

    if args.style:
        raise LossnetError("give --style (optimisation) or --model (feed-forward), not both")
    device, precision = resolve_run(args)
    net = fast.load_transformer(args.model, device)
    options = dict(style=fast.style_weights(net, args.style_index, args.blend), tile=args.tile,
                   overlap=args.overlap, max_memory=args.max_memory, original_colors=args.original_colors,
                   precision=precision)
    start = time.time()
    applied = apply_to_path(net, args.content, args.output, options, size=args.size, batch_size=args.batch_size,
                            temporal=temporal_config(args), progress=not args.quiet, desc="stylize")
    report_applied(applied, start)


def cmd_stylize_universal(args) -> None:
    """`lossnet stylize INPUT --style PAINTING --method wct|adain`: universal style transfer on trained decoders,
    on an image, a folder of images, or a video (or a folder of frames, with --temporal)."""
    from ..io import load_image
    from ..universal import UniversalConfig, UniversalStyle, load_decoders, painting_side

    if args.model:
        raise LossnetError(f"--method {args.method} takes paintings (--style), not a trained style network (--model)")
    if not args.style:
        raise LossnetError(f"--method {args.method} needs --style PAINTING")
    if args.network != "vgg16" or args.pooling != "max":
        raise LossnetError(f"--method {args.method} runs the decoders' own encoder (VGG16, max pooling): "
                           "--network and --pooling do not apply")
    refuse_given(args, NOT_UNIVERSAL, f"the optimisation (or of --model), not of --method {args.method}")
    temporal = temporal_config(args)
    frames_of(Path(args.content), temporal)  # refuses --temporal on one image
    check_output(Path(args.content), Path(args.output))
    device, precision = resolve_run(args)
    cfg = UniversalConfig(method=args.method, alpha=UniversalConfig.alpha if args.alpha is None else args.alpha,
                          style_weights=args.style_weights, levels=args.levels, original_colors=args.original_colors,
                          tile=args.tile, overlap=args.overlap, max_memory=args.max_memory, weights=args.weights,
                          precision=precision, device=device)
    decoders = load_decoders(args.decoders)
    side = painting_side(args.method, args.size, args.style_scale)
    styles = [load_image(s, side) for s in args.style]
    mask = load_image(args.mask).mean(1, keepdim=True) if args.mask is not None else None
    start = time.time()
    stylist = UniversalStyle(styles, cfg, decoders, mask)
    applied = apply_to_path(stylist, args.content, args.output, size=args.size, batch_size=args.batch_size,
                            temporal=temporal, progress=not args.quiet, desc="stylize")
    report_applied(applied, start)


def cmd_eval_video(args) -> None:
    from ..temporal import video_warping_error

    error, floor, pairs = video_warping_error(args.original, args.stylised, args.flow_preset)
    width = max(len(str(args.original)), len(str(args.stylised)))
    print(f"warping error (Lai et al.: squared RGB error of each frame against the next one warped back by the "
          f"input's flow, non-occluded pixels, {pairs} pairs; lower is steadier)")
    print(f"  stylised  {str(args.stylised):<{width}}  {error:.5f}  ({error / floor:.2f}x the input's)"
          if floor > 0 else f"  stylised  {str(args.stylised):<{width}}  {error:.5f}")
    print(f"  input     {str(args.original):<{width}}  {floor:.5f}  (the floor: flow residuals, lighting, noise)")


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


def add_feed_forward_args(p) -> None:
    g = p.add_argument_group("feed-forward (--model)")
    g.add_argument("--model", help="a trained style network: bundled name (`lossnet models`) or .safetensors path; "
                                   "CONTENT may then be an image, a folder or a video")
    g.add_argument("--style-index", type=int, help="which style of a multi-style model (default 0)")
    g.add_argument("--blend", type=floats, help="blend weights over a multi-style model's styles, e.g. 0.3,0.7")
    g.add_argument("--batch-size", type=positive_int, default=4, help="images (or frames) per forward pass")
    add_tile_args(g, overlap=64)
    from ..temporal import TemporalConfig
    g = p.add_argument_group("video (a video file or a folder of frames; --model or --style)")
    g.add_argument("--temporal", action="store_true",
                   help="carry each result to the next frame along the optical flow (Ruder et al.): strokes stay on "
                        "the scene, occluded regions are painted fresh")
    g.add_argument("--temporal-strength", type=unit_interval, metavar="S",
                   help=f"share of the previous result where the flow is reliable, in [0, 1] (implies --temporal; "
                        f"default {TemporalConfig.strength}); with --style it scales the temporal loss term")


# Options of one way of stylising that another has no use for: given, they are refused, not ignored.
NOT_UNIVERSAL = ("content_layers", "style_layers", "style_layer_weights", "content_weight", "style_weight", "scales",
                 "iters", "optimizer", "lr", "snapshot_every", "init", "tv_weight", "seed", "style_index", "blend")
UNIVERSAL_ONLY = ("alpha", "mask", "decoders", "levels")
MODEL_ONLY = ("style_index", "blend")
MODEL_OR_UNIVERSAL = ("batch_size", "tile", "overlap", "max_memory")


def refuse_given(args, dests, whose: str) -> None:
    """One error line for the first of `dests` given a value other than its default: it is an option of `whose`."""
    for dest in dests:
        if getattr(args, dest) != args.option_defaults[dest]:
            raise LossnetError(f"--{dest.replace('_', '-')} is an option of {whose}")


def add_universal_args(p) -> None:
    from ..universal import LEVELS, STYLE_SIDE
    g = p.add_argument_group("universal style transfer (--method wct or adain: any painting in one pass)")
    g.add_argument("--method", default="gatys", choices=["gatys", "wct", "adain"],
                   help="gatys: optimise the image (Gatys et al.); wct: whiten and colour the features at every "
                        "decoder's level, coarse to fine (Li et al. 2017); adain: match each channel's mean and "
                        "standard deviation at the deepest level, the fast path (Huang & Belongie 2017). wct and "
                        f"adain take an image, a folder or a video, at its own size or --size; paintings at "
                        f"--style-scale x {STYLE_SIDE} px (x --size when given; --style-scale is 0.75 for adain); "
                        "--style-weights blends them")
    g.add_argument("--alpha", type=unit_interval,
                   help="strength in [0, 1]: 0 is the photo through the decoders, 1 the full transform (default 1)")
    g.add_argument("--mask", help="a mask image: the first --style where it is white, the second where it is black")
    g.add_argument("--decoders", action="append",
                   help="decoder model files, run folders or a folder of them (repeatable; default: the bundled "
                        "decoders); train them with `lossnet train-decoder`")
    g.add_argument("--levels", type=names, help=f"levels to run, from {','.join(LEVELS)} (default: wct every "
                                                "decoder's, adain the deepest)")


def register(sub) -> None:
    import argparse

    from ..style import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS

    p = sub.add_parser("stylize", aliases=["stylise"], help="neural style transfer (Gatys et al.), a trained "
                                                           "style network (--model), or any painting in one pass "
                                                           "(--method wct|adain)",
                       description="Optimise an image to have CONTENT's features and the STYLEs' Gram matrices, "
                                   "run a trained feed-forward network (--model), or transfer any painting in one "
                                   "pass on trained decoders (--method wct|adain), on an image, a folder or a video.")
    p.add_argument("content", help="content image (a folder of frames or a video: every frame; with --model a "
                                   "folder of images too)")
    p.add_argument("--style", action="append", default=[], help="style image (repeat for several)")
    p.add_argument("--style-weights", type=floats, help="blend weights, one per --style, e.g. 0.7,0.3")
    p.add_argument("--style-scale", type=positive,
                   help="style image size relative to the output (default 1; 0.75 with --method adain)")
    p.add_argument("--original-colors", action="store_true",
                   help="keep the content's colours: luminance-only transfer (Gatys et al. 2016); with --model, the "
                        "result's luminance on the input's colours")
    p.add_argument("--preserve-colors", dest="original_colors", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--content-layers", type=names, default=list(GATYS_CONTENT_LAYERS))
    p.add_argument("--style-layers", type=names, default=list(GATYS_STYLE_LAYERS))
    p.add_argument("--style-layer-weights", type=floats, help="one weight per style layer")
    p.add_argument("--content-weight", type=nonneg, default=1.0)
    p.add_argument("--style-weight", type=nonneg, default=10.0)
    p.add_argument("-o", "--output", required=True)
    add_loop_args(p, "150,100", "256,512")  # coarse to fine: 512 px in about a minute on 2 cores (bf16)
    add_network_args(p)
    add_feed_forward_args(p)
    add_universal_args(p)
    p.set_defaults(func=cmd_stylize, option_defaults={dest: p.get_default(dest) for dest in
                                                      {*NOT_UNIVERSAL, *UNIVERSAL_ONLY, *MODEL_ONLY, *MODEL_OR_UNIVERSAL}})

    p = sub.add_parser("texture", help="texture synthesis: match a style image's Grams from noise")
    p.add_argument("style")
    p.add_argument("--style-layers", type=names, default=list(GATYS_STYLE_LAYERS))
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

    from ..temporal import FLOW_METHODS
    p = sub.add_parser("eval-video", help="warping error of a stylised video against its input (Lai et al.)",
                       description="Flicker, measured: the squared error between each stylised frame and the next "
                                   "one warped back by the input's optical flow (DIS), over non-occluded pixels, "
                                   "averaged over the frame pairs; also the input's own error, the floor.")
    p.add_argument("original", help="the input video (or folder of frames)")
    p.add_argument("stylised", help="its stylisation, same frame count")
    p.add_argument("--flow-preset", default="medium", choices=FLOW_METHODS,
                   help="DIS preset for the input's flow (default medium), or farneback: another method than the "
                        "DIS flow --temporal blends along, to check a stabilisation with a flow it did not use")
    p.set_defaults(func=cmd_eval_video)
