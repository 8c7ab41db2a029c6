"""Regenerate docs/gallery/style/: 3 scikit-image photos x 3 public-domain paintings (Gatys, lossnet defaults).

    .venv/bin/python scripts/gallery_style.py   # needs ../shared/data/styles; ~10 min on 2 cores
The paintings are read from ../shared and never committed; only our outputs are.
"""
import sys
import time
from pathlib import Path

import torch

from lossnet.demo import side_by_side
from lossnet.io import bundled_photo, load_image, save_image
from lossnet.optimize import LoopConfig
from lossnet.style import StyleConfig, stylize

ROOT = Path(__file__).resolve().parents[1]
STYLES = ROOT.parent / "shared" / "data" / "styles"
OUT = ROOT / "docs" / "gallery" / "style"
SIZE = 192


def photo(name):
    return bundled_photo(name, SIZE)


def main():
    if not STYLES.is_dir():
        sys.exit(f"error: {STYLES} not found")
    contents = {n: photo(n) for n in ["astronaut", "chelsea", "coffee"]}
    styles = {n: load_image(STYLES / f"{n}.jpg", SIZE) for n in ["starry_night", "wave", "the_scream"]}
    rows = []  # no row of the paintings themselves: they are read from ../shared, never committed
    for cname, content in contents.items():
        row = [content]
        for sname, style in styles.items():
            t = time.time()
            cfg = StyleConfig(sizes=[96, SIZE], iters=[100, 60], loop=LoopConfig(progress=False))
            row.append(stylize(content, [style], cfg))
            print(f"{cname} x {sname}: {time.time() - t:.0f} s", flush=True)
        rows.append(side_by_side(row))
    width = max(r.shape[-1] for r in rows)
    grid = torch.cat([torch.nn.functional.pad(r, (0, width - r.shape[-1], 0, 4), value=1.0) for r in rows], -2)
    print("wrote", save_image(grid, OUT / "grid.jpg", quality=88))


if __name__ == "__main__":
    main()
