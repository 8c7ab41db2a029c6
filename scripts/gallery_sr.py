"""Crop picture for the README: bicubic | pixel loss | feature loss | HR (run from the repository root).

    python scripts/gallery_sr.py ../shared/data/sr/Set5/butterfly.png 64,64,128 outputs/butterfly_x4.png  (Set5 terms unknown: keep out of the repo)
    python scripts/gallery_sr.py skimage:astronaut 60,150,128 docs/gallery/sr/astronaut_x4.png     (scikit-image's public-domain photo)
    python scripts/gallery_sr.py skimage:astronaut 40,140,192 docs/gallery/sr/astronaut_x8.png 8 x8-pixel,x8-feature
"""
import sys

import torch
from PIL import ImageDraw

from lossnet.data import degrade, modcrop
from lossnet.io import bundled_photo, load_image, save_image, to_pil
from lossnet.superres import load_srnet, upscale


def main(path, box, out, scale="4", models="x4-pixel,x4-feature", zoom=2):
    y, x, size = (int(v) for v in box.split(","))
    scale = int(scale)
    hr = modcrop(bundled_photo(path[8:]) if path.startswith("skimage:") else load_image(path), scale)
    lr = degrade(hr, scale)
    columns = ([("bicubic", upscale(None, lr, scale))] + [(m, upscale(load_srnet(m, scale), lr)) for m in models.split(",")]
               + [("HR", hr)])
    crops = [torch.nn.functional.interpolate(im[..., y:y + size, x:x + size], scale_factor=zoom, mode="nearest")
             for _, im in columns]
    picture = to_pil(torch.cat(crops, -1)[0])
    draw = ImageDraw.Draw(picture)
    for i, (name, _) in enumerate(columns):
        draw.rectangle((i * size * zoom, 0, i * size * zoom + 8 * len(name) + 6, 14), fill=(0, 0, 0))
        draw.text((i * size * zoom + 3, 1), name, fill=(255, 255, 255))
    print(f"wrote {save_image(picture, out)}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
