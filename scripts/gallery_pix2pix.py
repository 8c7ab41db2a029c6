"""pix2pix pictures for the README (run from the repository root).

    # 4 test rows: labels | L1 only | cGAN + L1 | photo. Research-use data: keep it out of the repository.
    python scripts/gallery_pix2pix.py test ../shared/data/pix2pix/facades/test RUN_L1 RUN_GAN outputs/facades_test.png 1,20,40,60
    # label maps the project draws itself (lossnet.procedural.facade_labels) -> the bundled model: committable.
    python scripts/gallery_pix2pix.py procedural docs/gallery/pix2pix/label2photo.jpg
"""
import sys

import torch

from lossnet.data import PairedImages
from lossnet.io import save_image
from lossnet.pix2pix import apply, load_generator
from lossnet.procedural import facade_labels


def test_rows(data, l1_model, gan_model, out, indices="0,1,2,3"):
    ds = PairedImages(data, "BtoA", load_size=None, crop_size=None, flip=False)
    nets = [load_generator(l1_model), load_generator(gan_model)]
    rows = []
    for i in (int(v) for v in indices.split(",")):
        a, b = ds.sample(i)
        rows.append(torch.cat([a] + [apply(n, a[None])[0] for n in nets] + [b], -1))
    print(f"wrote {save_image(torch.cat(rows, -2)[None], out, quality=90)}")


def procedural(out, model="facades-label2photo", seeds=(0, 1, 2)):
    net = load_generator(model)
    pairs = [torch.cat([lab, apply(net, lab)], -2) for lab in (facade_labels(256, s) for s in seeds)]
    print(f"wrote {save_image(torch.cat(pairs, -1), out, quality=90)}")


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("test", help="test rows: labels | L1 only | cGAN + L1 | photo")
    p.add_argument("data", help="paired test folder, e.g. ../shared/data/pix2pix/facades/test")
    p.add_argument("l1_model", help="the L1-only model (run folder, file or bundled name)")
    p.add_argument("gan_model", help="the cGAN + L1 model")
    p.add_argument("out", help="output image, e.g. outputs/facades_test.png")
    p.add_argument("indices", nargs="?", default="0,1,2,3", help="test pairs to show (default 0,1,2,3)")
    p = sub.add_parser("procedural", help="the bundled model on label maps lossnet draws itself")
    p.add_argument("out", help="output image, e.g. docs/gallery/pix2pix/label2photo.jpg")
    p.add_argument("--model", default="facades-label2photo", help="bundled name, model file or run folder")
    args = parser.parse_args(argv)
    from lossnet.errors import LossnetError
    try:
        if args.what == "test":
            test_rows(args.data, args.l1_model, args.gan_model, args.out, args.indices)
        else:
            procedural(args.out, args.model)
    except LossnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
