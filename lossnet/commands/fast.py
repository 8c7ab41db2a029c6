"""`lossnet train-style | models | export | eval-video`, and `stylize INPUT --model MODEL` (feed-forward style
transfer; `--temporal` for video)."""
from __future__ import annotations

import time
from pathlib import Path

from ..cli import (add_network_args, floats, names, nonneg, nonneg_int, positive, positive_int, report_training,
                   resolve_device, resolve_run, tile_side, unit_interval)
from ..errors import LossnetError

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
IMAGE_OUTPUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def is_frames(src) -> bool:
    """A video file or a folder (of frames or of photos), not one image."""
    src = Path(src)
    return src.is_dir() or src.suffix.lower() in VIDEO_SUFFIXES


def check_frames_output(src, out) -> None:
    """A video goes to a video, a folder to a folder."""
    src, out = Path(src), Path(out)
    if src.is_dir():
        if out.suffix.lower() in IMAGE_OUTPUT_SUFFIXES:
            raise LossnetError(f"{src} is a folder: -o must be a folder too, not {out}")
        if out.exists() and not out.is_dir():
            raise LossnetError(f"output {out} exists and is not a folder")
    elif out.suffix.lower() not in VIDEO_SUFFIXES:
        raise LossnetError(f"{src} is a video: -o needs a video suffix ({', '.join(sorted(VIDEO_SUFFIXES))})")


def temporal_config(args):
    """--temporal / --temporal-strength -> a lossnet.temporal.TemporalConfig, or None (frame by frame)."""
    if not args.temporal and args.temporal_strength is None:
        return None
    if not is_frames(args.content):
        raise LossnetError(f"--temporal needs a video or a folder of frames, not one image ({args.content})")
    from ..temporal import TemporalConfig
    return TemporalConfig() if args.temporal_strength is None else TemporalConfig(strength=args.temporal_strength)


def report_frames(out, frames: int, fps, start: float) -> None:
    what = f"{frames} frames at {fps:g} fps" if fps else f"{frames} frames"
    print(f"wrote {out}{'/' if Path(out).is_dir() else ''} ({what}) in {time.time() - start:.1f} s")


def cmd_train_style(args) -> None:
    from ..fast import FastStyleConfig, train_style
    from ..train import TrainConfig

    output = Path(args.output)
    run_dir = Path(args.run_dir) if args.run_dir else output.with_name(output.stem + "_run")
    if args.distill_weight and not args.teacher:
        raise LossnetError("--distill-weight needs --teacher MODEL")
    cfg = FastStyleConfig(
        styles=args.style, data=args.data, arch=args.arch, norm=args.norm, content_layers=args.content_layers,
        style_layers=args.style_layers, style_layer_weights=args.style_layer_weights,
        content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
        style_size=args.style_size, crop=args.crop, batch_size=args.batch_size, teacher=args.teacher,
        distill_weight=args.distill_weight if args.teacher else 0.0, network=args.network, weights=args.weights,
        init_from=args.init_from,
        train=TrainConfig(iters=args.iters, lr=args.lr, checkpoint_every=args.checkpoint_every,
                          sample_every=args.sample_every, seed=args.seed, device=resolve_device(args.device),
                          precision=args.precision, progress=not args.quiet, desc="train-style"))
    start = time.time()
    path = train_style(cfg, output, run_dir, resume=args.resume)
    report_training(path, start, run_dir)


def cmd_stylize_model(args) -> None:
    """`lossnet stylize INPUT --model MODEL`: an image, a folder of images, or a video (or a folder of frames,
    with --temporal)."""
    from .. import fast
    from ..io import check_writable, list_images, load_image, save_image

    if args.style:
        raise LossnetError("give --style (optimisation) or --model (feed-forward), not both")
    device, precision = resolve_run(args)
    net = fast.load_transformer(args.model, device)
    style = fast.style_weights(net, args.style_index, args.blend)
    src, out = Path(args.content), Path(args.output)
    opts = dict(tile=args.tile, overlap=args.overlap, preserve_colors=args.original_colors, precision=precision)
    temporal = temporal_config(args)
    start = time.time()
    if src.is_dir() and temporal is None:  # photos: any sizes, batched by size
        check_frames_output(src, out)
        files = list_images(src)
        images = [(p, load_image(p, args.size)) for p in files]  # decode all first: a bad file stops before any write
        out.mkdir(parents=True, exist_ok=True)
        written = fast.apply_many(net, images, out, style, args.batch_size, **opts)
        print(f"wrote {len(written)} images to {out}/ in {time.time() - start:.1f} s")
    elif is_frames(src):  # a video, or a folder of frames in order (--temporal)
        from ..video import stylize_video
        check_frames_output(src, out)
        frames, fps = stylize_video(net, src, out, style, args.size, args.batch_size, temporal,
                                    show_progress=not args.quiet, **opts)
        report_frames(out, frames, fps, start)
    else:
        check_writable(out)
        image = fast.apply(net, load_image(src, args.size), style, **opts)
        h, w = image.shape[-2:]
        save_image(image, out)
        print(f"wrote {out} ({w}x{h}) in {time.time() - start:.1f} s")


def cmd_eval_video(args) -> None:
    from ..temporal import video_warping_error

    error, floor, pairs = video_warping_error(args.original, args.stylised, args.flow_preset)
    width = max(len(str(args.original)), len(str(args.stylised)))
    print(f"warping error (Lai et al.: squared RGB error of each frame against the next one warped back by the "
          f"input's flow, non-occluded pixels, {pairs} pairs; lower is steadier)")
    print(f"  stylised  {str(args.stylised):<{width}}  {error:.5f}  ({error / floor:.2f}x the input's)"
          if floor > 0 else f"  stylised  {str(args.stylised):<{width}}  {error:.5f}")
    print(f"  input     {str(args.original):<{width}}  {floor:.5f}  (the floor: flow residuals, lighting, noise)")


def cmd_models(args) -> None:
    """Every bundled model of every kind: name, kind, file size, training budget, what it does."""
    from .. import fast, pix2pix, superres
    from ..weights import read_model

    rows = []
    for name, entry in fast.bundled_models().items():
        path = fast.MODELS_DIR / entry["file"]
        rows.append((name, f"style ({entry['arch']})", path, f"{entry.get('steps', '?')} steps",
                     f"{entry.get('description', '')} [{', '.join(entry['styles'])}]"))
    for name, path in superres.bundled_models().items():
        t = read_model(path, superres.KIND)[1].get("training", {})
        rows.append((name, f"super-resolution x{t.get('scale', '?')}", path,
                     f"{t.get('iters', '?')} steps of {t.get('crop', '?')} px", f"{t.get('loss', '?')} loss (Johnson et al.)"))
    for name, path in pix2pix.bundled_models().items():
        c = read_model(path, pix2pix.KIND)[1]
        t = c.get("training", {})
        rows.append((name, "pix2pix", path, f"{t.get('iters', '?')} steps of {t.get('crop_size', '?')} px",
                     f"{c.get('netG', '?')} ngf {c.get('ngf', '?')}, {t.get('data', '?')} {c.get('direction', '')}"))
    if not rows:
        print("no bundled models")
        return
    widths = [max(len(str(r[i])) for r in rows) for i in (0, 1, 3)]
    for name, kind, path, budget, what in rows:
        print(f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {path.stat().st_size / 1e6:4.1f} MB  "
              f"{budget:<{widths[2]}}  {what}")


def cmd_export(args) -> None:
    from ..export import export_onnx, graph_of, load_any

    net = load_any(args.model)
    path, difference = export_onnx(net, args.onnx)  # checked against torch; nothing is kept when they differ
    print(f"wrote {path} ({graph_of(net).kind} model; onnxruntime vs torch: max difference {difference:.1e})")


def add_stylize_args(p) -> None:
    """Feed-forward options on the existing `stylize` command (registered by commands/style.py)."""
    g = p.add_argument_group("feed-forward (--model)")
    g.add_argument("--model", help="a trained style network: bundled name (`lossnet models`) or .safetensors path; "
                                   "INPUT may then be an image, a folder or a video")
    g.add_argument("--style-index", type=int, help="which style of a multi-style model (default 0)")
    g.add_argument("--blend", type=floats, help="blend weights over a multi-style model's styles, e.g. 0.3,0.7")
    g.add_argument("--preserve-colors", dest="original_colors", action="store_true", help="keep the input's colours")
    g.add_argument("--batch-size", type=positive_int, default=4, help="images (or frames) per forward pass")
    g.add_argument("--tile", type=tile_side, default=768, help="tile side for large images (0: never tile)")
    g.add_argument("--overlap", type=nonneg_int, default=64, help="tile overlap in pixels, feather-blended")
    from ..temporal import TemporalConfig
    g = p.add_argument_group("video (a video file or a folder of frames; --model or --style)")
    g.add_argument("--temporal", action="store_true",
                   help="carry each result to the next frame along the optical flow (Ruder et al.): strokes stay on "
                        "the scene, occluded regions are painted fresh")
    g.add_argument("--temporal-strength", type=unit_interval, metavar="S",
                   help=f"share of the previous result where the flow is reliable, in [0, 1] (implies --temporal; "
                        f"default {TemporalConfig.strength}); with --style it scales the temporal loss term")


def register(sub) -> None:
    from ..fast import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
    from ..nets.transformer import ARCHS

    if "stylize" in sub.choices:
        add_stylize_args(sub.choices["stylize"])

    p = sub.add_parser("train-style", help="train a feed-forward style network (Johnson et al.)",
                       description="Train a TransformerNet on photo crops against the style objective; "
                                   "several --style make one conditional network (Dumoulin et al.).")
    p.add_argument("--style", action="append", required=True, help="style image (repeat for a multi-style network)")
    p.add_argument("--data", action="append", required=True, help="folder of training photos (repeatable, recursive)")
    p.add_argument("-o", "--output", required=True, help="model file, .safetensors")
    p.add_argument("--arch", default="full", choices=list(ARCHS), help="full (the paper) or lite (real time on CPU)")
    p.add_argument("--norm", default="instance", choices=["instance", "batch"])
    p.add_argument("--iters", type=positive_int, default=2000)
    p.add_argument("--batch-size", type=positive_int, default=4,
                   help="the global batch: under torchrun each process takes batch-size / processes of it (default 4)")
    p.add_argument("--crop", type=positive_int, default=256, help="training crop side (default 256)")
    p.add_argument("--lr", type=positive, default=1e-3)
    p.add_argument("--content-layers", type=names, default=list(DEFAULT_CONTENT_LAYERS))
    p.add_argument("--style-layers", type=names, default=list(DEFAULT_STYLE_LAYERS))
    p.add_argument("--style-layer-weights", type=floats)
    p.add_argument("--content-weight", type=nonneg, default=1.0)
    p.add_argument("--style-weight", type=nonneg, default=10.0)
    p.add_argument("--tv-weight", type=nonneg, default=1.0)
    p.add_argument("--style-size", type=positive_int, default=256, help="style image's longest side for its Grams")
    p.add_argument("--teacher", help="distil from this trained model's outputs (e.g. a full net for --arch lite)")
    p.add_argument("--distill-weight", type=nonneg, default=0.0)
    p.add_argument("--init-from", metavar="MODEL", help="start from this trained model's weights (bundled name or "
                   ".safetensors; its architecture is used) instead of a fresh network, e.g. when a run folder is gone")
    p.add_argument("--run-dir", help="log.csv, samples/ and checkpoint (default: OUTPUT's name + _run)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--checkpoint-every", type=positive_int, default=100)
    p.add_argument("--sample-every", type=int, default=100)
    p.add_argument("--quiet", action="store_true")
    add_network_args(p)
    p.set_defaults(func=cmd_train_style, device="auto")  # CUDA when present

    p = sub.add_parser("models", help="list the bundled models of every kind (style, super-resolution, pix2pix)")
    p.set_defaults(func=cmd_models)

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

    p = sub.add_parser("export", help="export a style, super-resolution or pix2pix model to ONNX (checked with onnxruntime)")
    p.add_argument("model", help="bundled name of any kind (`lossnet models`), model file, or pix2pix run folder")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.set_defaults(func=cmd_export)
