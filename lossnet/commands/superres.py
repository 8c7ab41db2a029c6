"""`lossnet superres INPUT`, `lossnet eval-sr` (perceptual-loss super-resolution; `lossnet train-sr` is the
kind's training command, commands/models.py)."""
from __future__ import annotations

import time
from pathlib import Path

from ..cli import add_device_args, add_tile_args, nonneg, report_applied, resolve_run
from ..errors import LossnetError


def cmd_superres(args) -> None:
    from ..registry import apply_to_path
    from ..superres import load_srnet, upscale

    if args.model and args.method == "bicubic":
        raise LossnetError("give --model MODEL or --method bicubic, not both")
    if not args.model and args.method != "bicubic":
        raise LossnetError("give --model MODEL (a trained SR network) or --method bicubic")
    device, precision = resolve_run(args)
    if args.model:
        model = load_srnet(args.model, args.scale, device)
        scale, options = model.upscale, dict(tile=args.tile, overlap=args.overlap, max_memory=args.max_memory,
                                              precision=precision)
    else:
        scale, options = args.scale or 4, {}
        model = lambda images: upscale(None, images, scale)  # noqa: E731 - bicubic, the baseline
    start = time.time()
    applied = apply_to_path(model, args.input, args.output, options, desc="superres")
    report_applied(applied, start, f" at x{scale}")


def cmd_eval_sr(args) -> None:
    from ..superres import evaluate, find_sets, load_srnet

    device, precision = resolve_run(args)
    models = {"bicubic": None}
    for spec in args.model or []:
        net = load_srnet(spec, args.scale, device)
        name = Path(spec).stem if Path(spec).is_file() else spec
        models[name] = net
    sets = {}
    for folder in args.data:
        sets.update(find_sets(folder))
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
    results = {}
    for set_name, files in sets.items():
        save = Path(args.save) / set_name if args.save else None
        if save:
            save.mkdir(exist_ok=True)
        results[set_name] = evaluate(models, files, args.scale, args.sigma, save, precision)
    header = "| method | " + " | ".join(f"{s} PSNR / SSIM / sharpness" for s in sets) + " |"
    how = (f"Gaussian blur sigma {args.sigma:g} + bicubic downsampling" if args.sigma > 0
           else "antialiased bicubic downsampling")
    print(f"x{args.scale}, Y channel, {args.scale}-pixel border cropped, LR = {how}; sharpness: gradient energy "
          "over the HR image's (1 = as sharp as HR)\n")
    print(header)
    print("|---" * (len(sets) + 1) + "|")
    for name in models:
        cells = [f"{results[s][name]['psnr']:.2f} / {results[s][name]['ssim']:.4f} / "
                 f"{results[s][name]['gradient_energy']:.2f}" for s in sets]
        print(f"| {name} | " + " | ".join(cells) + " |")


def register(sub) -> None:
    from ..superres import SCALES

    p = sub.add_parser("superres", help="upscale an image, a folder or a video with a trained SR network (or "
                                        "bicubic)")
    p.add_argument("input", help="image, folder of images, or video")
    p.add_argument("-o", "--output", required=True, help="output image, or a folder for a folder, a video for a video")
    p.add_argument("--model", help="SR model: bundled name (`lossnet models`) or .safetensors path")
    p.add_argument("--method", default="model", choices=["model", "bicubic"])
    p.add_argument("--scale", type=int, choices=SCALES, help="check the model's scale (bicubic: default 4)")
    add_tile_args(p, overlap=16, what="LR ")
    add_device_args(p)
    p.set_defaults(func=cmd_superres)

    p = sub.add_parser("eval-sr", help="PSNR / SSIM (Y channel) of bicubic and SR models on Set5 / Set14 ...")
    p.add_argument("--model", action="append", help="SR model (repeatable): bundled name or .safetensors path")
    p.add_argument("--data", action="append", required=True,
                   help="folder of HR images, or a folder of such sets (e.g. shared/data/sr)")
    p.add_argument("--scale", type=int, default=4, choices=SCALES)
    p.add_argument("--sigma", type=nonneg, default=1.0, help="blur of the degradation (1.0: as in training; 0: plain antialiased bicubic)")
    p.add_argument("--save", help="also write every upscaled image to this folder")
    add_device_args(p)
    p.set_defaults(func=cmd_eval_sr)
