"""`lossnet pix2pix train | apply | test` (image-to-image translation with a conditional GAN)."""
from __future__ import annotations

import time
from pathlib import Path

from ..cli import add_device_args, fraction, nonneg, positive, positive_int, report_training, resolve_device, resolve_run
from ..errors import LossnetError
from ..progress import progress


def cmd_train(args) -> None:
    from ..pix2pix import Pix2PixConfig, train_pix2pix
    from ..train import TrainConfig

    cfg = Pix2PixConfig(
        data=args.data, direction=args.direction, netG=args.netG, ngf=args.ngf, netD=args.netD, ndf=args.ndf,
        n_layers_D=args.n_layers_D, norm=args.norm, dropout=not args.no_dropout, gan_mode=args.gan_mode,
        lambda_l1=args.lambda_l1, load_size=args.load_size or None, crop_size=args.crop_size or None,
        flip=not args.no_flip, batch_size=args.batch_size, holdout=args.holdout,
        train=TrainConfig(iters=args.iters, lr=args.lr, betas=(args.beta1, 0.999), decay_from=args.decay_from,
                          checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, seed=args.seed,
                          device=resolve_device(args.device), precision=args.precision, progress=not args.quiet,
                          desc="pix2pix"))
    start = time.time()
    path = train_pix2pix(cfg, args.output, resume=args.resume, half=args.half)
    report_training(path, start, args.output)


def cmd_apply(args) -> None:
    from ..io import check_writable, list_images, load_image, save_image
    from ..pix2pix import apply, load_generator

    device, precision = resolve_run(args)
    net = load_generator(args.model, device)
    src, out = Path(args.input), Path(args.output)
    if src.is_dir():
        if out.suffix:
            raise LossnetError(f"{src} is a folder: -o must be a folder too, not {out}")
        if out.exists() and not out.is_dir():
            raise LossnetError(f"output {out} exists and is not a folder")
        jobs = [(p, out / f"{p.stem}.png") for p in list_images(src)]
    else:
        jobs = [(src, check_writable(out))]
    images = [(load_image(p), dst) for p, dst in jobs]  # decode everything first: a bad file stops before any write
    if src.is_dir():
        out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    bar = progress(len(images), "pix2pix apply", enabled=len(images) > 1, faster="fewer images")
    for image, dst in images:
        save_image(apply(net, image, seed=args.seed, precision=precision), dst)
        bar.update(1)
    bar.close()
    what = f"{len(images)} images to {out}/" if src.is_dir() else str(out)
    print(f"wrote {what} in {time.time() - start:.1f} s")


def cmd_test(args) -> None:
    from ..pix2pix import load_generator, test

    device, precision = resolve_run(args)
    net = load_generator(args.model, device)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise LossnetError(f"output {out} exists and is not a folder")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise LossnetError(f"folder does not exist: {out.parent}")
    result = test(net, args.data, out, args.direction, args.limit, precision=precision)
    print(f"{result['count']} images: mean L1 {result['l1']:.4f}, PSNR {result['psnr']:.2f} dB "
          f"(input as output: L1 {result['input_l1']:.4f}, PSNR {result['input_psnr']:.2f} dB)")
    print(f"wrote {out / 'index.html'} and {out / 'metrics.csv'}")


def register(sub) -> None:
    top = sub.add_parser("pix2pix", help="image-to-image translation (Isola et al.): train, apply, test")
    cmds = top.add_subparsers(dest="pix2pix_command", metavar="{train,apply,test}", required=True)

    p = cmds.add_parser("train", help="train a U-Net generator with a PatchGAN discriminator (cGAN + L1)")
    p.add_argument("--data", required=True, help="folder of A|B side-by-side images, or with folders A/ and B/")
    p.add_argument("-o", "--output", required=True, help="run folder: log.csv, samples/, checkpoint, model.safetensors")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"], help="facades labels->photo is BtoA")
    p.add_argument("--netG", default="unet_256", choices=["unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks"])
    p.add_argument("--ngf", type=positive_int, default=64)
    p.add_argument("--netD", default="basic", choices=["basic", "n_layers", "pixel"])
    p.add_argument("--ndf", type=positive_int, default=64)
    p.add_argument("--n-layers-D", type=positive_int, default=3)
    p.add_argument("--norm", default="batch", choices=["batch", "instance", "none"])
    p.add_argument("--no-dropout", action="store_true")
    p.add_argument("--gan-mode", default="vanilla", choices=["vanilla", "lsgan", "none"],
                   help="none: L1 only, no discriminator (the baseline)")
    p.add_argument("--lambda-l1", type=nonneg, default=100.0)
    p.add_argument("--load-size", type=int, default=286, help="resize to this square first (0: no resize)")
    p.add_argument("--crop-size", type=int, default=256, help="random crop side (0: no crop)")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="the global batch: under torchrun each process takes batch-size / processes of it (default 1)")
    p.add_argument("--holdout", type=int, default=0, help="hold out this many training pairs")
    p.add_argument("--iters", type=positive_int, default=2000)
    p.add_argument("--decay-from", type=int, help="linear lr decay to 0 from this step (default iters / 2)")
    p.add_argument("--lr", type=positive, default=2e-4)
    p.add_argument("--beta1", type=fraction, default=0.5)
    p.add_argument("--half", action="store_true", help="store the model's tensors in fp16 (half the size)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--checkpoint-every", type=positive_int, default=100)
    p.add_argument("--sample-every", type=int, default=100)
    p.add_argument("--quiet", action="store_true")
    add_device_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("apply", help="translate an image or a folder (any size)")
    p.add_argument("input")
    p.add_argument("--model", required=True, help="run folder, model .safetensors or bundled name")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=0, help="dropout noise seed")
    add_device_args(p)
    p.set_defaults(func=cmd_apply)

    p = cmds.add_parser("test", help="HTML page of input | output | target with L1 / PSNR")
    p.add_argument("--model", required=True, help="run folder, model .safetensors or bundled name")
    p.add_argument("--data", required=True, help="paired test folder")
    p.add_argument("-o", "--output", required=True, help="results folder (index.html, images/, metrics.csv)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], help="default: the model's training direction")
    p.add_argument("--limit", type=int, help="only the first N pairs")
    add_device_args(p)
    p.set_defaults(func=cmd_test)
