"""`lossnet pix2pix train | apply | test` (image-to-image translation with a conditional GAN)."""
from __future__ import annotations

import time
from pathlib import Path

from ..cli import add_device_args, add_train_command, report_applied, resolve_run


def cmd_apply(args) -> None:
    from ..pix2pix import load_generator
    from ..registry import apply_to_path

    device, precision = resolve_run(args)
    net = load_generator(args.model, device)
    start = time.time()
    applied = apply_to_path(net, args.input, args.output, {"seed": args.seed, "precision": precision},
                            desc="pix2pix apply")
    report_applied(applied, start)


def cmd_test(args) -> None:
    from ..pix2pix import load_generator, test

    from ..registry import check_output

    out = Path(args.output)
    check_output(Path(args.data), out)  # a folder of pairs gives a folder of results
    device, precision = resolve_run(args)
    net = load_generator(args.model, device)
    result = test(net, args.data, out, args.direction, args.limit, precision=precision)
    print(f"{result['count']} images: mean L1 {result['l1']:.4f}, PSNR {result['psnr']:.2f} dB "
          f"(input as output: L1 {result['input_l1']:.4f}, PSNR {result['input_psnr']:.2f} dB)")
    print(f"wrote {out / 'index.html'} and {out / 'metrics.csv'}")


def register(sub) -> None:
    top = sub.add_parser("pix2pix", help="image-to-image translation (Isola et al.): train, apply, test")
    cmds = top.add_subparsers(dest="pix2pix_command", metavar="{train,apply,test}", required=True)

    add_train_command(cmds, "train", "pix2pix", help="train a U-Net generator with a PatchGAN discriminator (cGAN + L1)",
                      description="Train pix2pix on the generator loop: a U-Net (or ResNet) generator against a "
                                  "PatchGAN discriminator, cGAN + 100 x L1 (Isola et al.).")

    p = cmds.add_parser("apply", help="translate an image, a folder or a video (any size)")
    p.add_argument("input", help="image, folder of images, or video")
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
