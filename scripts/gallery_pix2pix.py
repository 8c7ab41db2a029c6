"""4 test rows for the README: labels | L1 only | cGAN + L1 | photo (run from the repository root).

    python scripts/gallery_pix2pix.py ../shared/data/pix2pix/facades/test RUN_L1 RUN_GAN outputs/facades_test.jpg  (research-use data: keep out of the repo) 1,20,40,60
"""
import sys

import torch

from lossnet.data import PairedImages
from lossnet.io import save_image
from lossnet.pix2pix import apply, load_generator


def main(data, l1_model, gan_model, out, indices="0,1,2,3"):
    ds = PairedImages(data, "BtoA", load_size=None, crop_size=None, flip=False)
    nets = [load_generator(l1_model), load_generator(gan_model)]
    rows = []
    for i in (int(v) for v in indices.split(",")):
        a, b = ds.sample(i)
        rows.append(torch.cat([a] + [apply(n, a[None])[0] for n in nets] + [b], -1))
    save_image(torch.cat(rows, -2)[None], out, quality=90)


if __name__ == "__main__":
    main(*sys.argv[1:6])
