"""`lossnet train-sr`, `lossnet superres INPUT`, `lossnet eval-sr` (perceptual-loss super-resolution)."""
from __future__ import annotations

import time
from pathlib import Path

from ..cli import add_device_args, nonneg, nonneg_int, positive, positive_int, report_training, resolve_device, resolve_run, tile_side
from ..errors import LossnetError
from ..progress import progress


def cmd_train_sr(args) -> None:
    from ..superres import SRConfig, check_output, train_sr
    from ..train import TrainConfig

    output = check_output(Path(args.output))
    run_dir = Path(args.run_dir) if args.run_dir else output.with_name(output.stem + "_run")
    cfg = SRConfig(data=args.data, scale=args.scale, loss=args.loss, crop=args.crop, batch_size=args.batch_size,
                   sigma=args.sigma, content_layer=args.content_layer, content_weight=args.content_weight,
                   pixel_weight=args.pixel_weight, tv_weight=args.tv_weight, norm=args.norm,
                   network=args.network, weights=args.weights, init_from=args.init_from,
                   train=TrainConfig(iters=args.iters, lr=args.lr, checkpoint_every=args.checkpoint_every,
                                     sample_every=args.sample_every, seed=args.seed,
                                     device=resolve_device(args.device), precision=args.precision,
                                     progress=not args.quiet, desc="train-sr"))
    start = time.time()
    path = train_sr(cfg, output, run_dir, resume=args.resume)
    report_training(path, start, run_dir)


def _outputs(src: Path, out: Path) -> list[tuple[Path, Path]]:
    from ..io import check_writable, list_images

    if src.is_dir():
        if out.suffix:
            raise LossnetError(f"{src} is a folder: -o must be a folder too, not {out}")
        if out.exists() and not out.is_dir():
            raise LossnetError(f"output {out} exists and is not a folder")
        return [(p, out / f"{p.stem}.png") for p in list_images(src)]
    return [(src, check_writable(out))]


def cmd_superres(args) -> None:
    from ..io import load_image, save_image
    from ..superres import load_srnet, upscale

    if args.model and args.method == "bicubic":
        raise LossnetError("give --model MODEL or --method bicubic, not both")
    if not args.model and args.method != "bicubic":
        raise LossnetError("give --model MODEL (a trained SR network) or --method bicubic")
    device, precision = resolve_run(args)
    net = load_srnet(args.model, args.scale, device) if args.model else None
    scale = net.upscale if net is not None else (args.scale or 4)
    src, out = Path(args.input), Path(args.output)
    jobs = _outputs(src, out)
    images = [(load_image(p), dst) for p, dst in jobs]  # decode everything first: a bad file stops before any write
    if src.is_dir():
        out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    bar = progress(len(images), "superres", enabled=src.is_dir(), faster="smaller inputs")
    for image, dst in images:
        result = upscale(net, image, scale, tile=args.tile, overlap=args.overlap, precision=precision)
        save_image(result, dst)
        bar.update(1)
        if not src.is_dir():
            h, w = result.shape[-2:]
            print(f"wrote {dst} ({w}x{h}, x{scale}) in {time.time() - start:.1f} s")
    bar.close()
    if src.is_dir():
        print(f"wrote {len(images)} images (x{scale}) to {out}/ in {time.time() - start:.1f} s")


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
    header = "| method | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " |"
    how = (f"Gaussian blur sigma {args.sigma:g} + bicubic downsampling" if args.sigma > 0
           else "antialiased bicubic downsampling")
    print(f"x{args.scale}, Y channel, {args.scale}-pixel border cropped, LR = {how}\n")
    print(header)
    print("|---" * (len(sets) + 1) + "|")
    for name in models:
        cells = [f"{results[s][name]['psnr']:.2f} / {results[s][name]['ssim']:.4f}" for s in sets]
        print(f"| {name} | " + " | ".join(cells) + " |")


def register(sub) -> None:
    p = sub.add_parser("train-sr", help="train a super-resolution network (Johnson et al. perceptual loss)",
                       description="Train an SRNet on HR crops of photo folders, degraded by a Gaussian blur "
                                   "(sigma 1) and bicubic downsampling, with the feature (relu2_2) or pixel loss.")
    p.add_argument("--data", action="append", required=True, help="folder of HR photos (repeatable, recursive)")
    p.add_argument("-o", "--output", required=True, help="model file, .safetensors")
    p.add_argument("--scale", type=int, default=4, choices=[2, 4, 8, 16])
    p.add_argument("--loss", default="feature", choices=["feature", "pixel"])
    p.add_argument("--crop", type=positive_int, default=288, help="HR patch side (default 288, the paper's)")
    p.add_argument("--batch-size", type=positive_int, default=4,
                   help="the global batch: under torchrun each process takes batch-size / processes of it (default 4)")
    p.add_argument("--iters", type=positive_int, default=2000)
    p.add_argument("--lr", type=positive, default=1e-3)
    p.add_argument("--sigma", type=nonneg, default=1.0, help="Gaussian blur before downsampling (default 1.0)")
    p.add_argument("--content-layer", default="relu2_2")
    p.add_argument("--content-weight", type=nonneg, default=1.0)
    p.add_argument("--pixel-weight", type=nonneg, default=1.0)
    p.add_argument("--tv-weight", type=nonneg, default=0.0)
    p.add_argument("--norm", default="instance", choices=["instance", "batch", "none"])
    p.add_argument("--init-from", metavar="MODEL", help="start from this trained SR model's weights (bundled name or "
                   ".safetensors, same scale; its architecture is used), e.g. when a run folder is gone")
    p.add_argument("--run-dir", help="log.csv, samples/ and checkpoint (default: OUTPUT's name + _run)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--checkpoint-every", type=positive_int, default=100)
    p.add_argument("--sample-every", type=int, default=100)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--network", default="vgg16", choices=["vgg16", "vgg19"], help="loss network (default vgg16)")
    p.add_argument("--weights", help="loss network weights file in torchvision layout")
    add_device_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train_sr)

    p = sub.add_parser("superres", help="upscale an image or a folder with a trained SR network (or bicubic)")
    p.add_argument("input", help="image or folder of images")
    p.add_argument("-o", "--output", required=True, help="output image, or folder for a folder")
    p.add_argument("--model", help="SR model: bundled name (x4-feature, x4-pixel) or .safetensors path")
    p.add_argument("--method", default="model", choices=["model", "bicubic"])
    p.add_argument("--scale", type=int, choices=[2, 4, 8, 16], help="check the model's scale (bicubic: default 4)")
    p.add_argument("--tile", type=tile_side, default=256, help="LR tile side for large inputs (0: never tile)")
    p.add_argument("--overlap", type=nonneg_int, default=16, help="LR tile overlap, feather-blended")
    add_device_args(p)
    p.set_defaults(func=cmd_superres)

    p = sub.add_parser("eval-sr", help="PSNR / SSIM (Y channel) of bicubic and SR models on Set5 / Set14 ...")
    p.add_argument("--model", action="append", help="SR model (repeatable): bundled name or .safetensors path")
    p.add_argument("--data", action="append", required=True,
                   help="folder of HR images, or a folder of such sets (e.g. shared/data/sr)")
    p.add_argument("--scale", type=int, default=4, choices=[2, 4, 8, 16])
    p.add_argument("--sigma", type=nonneg, default=1.0, help="blur of the degradation (1.0: as in training; 0: plain antialiased bicubic)")
    p.add_argument("--save", help="also write every upscaled image to this folder")
    add_device_args(p)
    p.set_defaults(func=cmd_eval_sr)
