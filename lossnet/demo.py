"""`lossnet demo`: the main job on built-in defaults, offline, in a few minutes on a 2-core CPU.

The content photo comes with scikit-image (its bundled `astronaut`, public domain, NASA); the styles are
made by `lossnet.procedural`, so nothing here depends on files outside the installed packages.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .io import bundled_photo, save_image
from .optimize import LoopConfig
from .procedural import make_style
from .style import StyleConfig, stylize


def side_by_side(images: list[torch.Tensor], gap: int = 4) -> torch.Tensor:
    h = max(i.shape[-2] for i in images)
    padded = [torch.nn.functional.pad(i, (0, gap, 0, h - i.shape[-2]), value=1.0) for i in images]
    return torch.cat(padded, -1)[..., :-gap]


def run_demo(out: Path, quick: bool = False) -> list[Path]:
    from .weights import vgg_weights
    vgg_weights("vgg16", quiet=True)  # no weights: the one-line error comes before anything is written
    out.mkdir(parents=True, exist_ok=True)
    sizes, iters = ([64], [10]) if quick else ([128, 256], [120, 80])
    start = time.time()
    content = bundled_photo("astronaut", max(sizes))
    written = [save_image(content, out / "content.png")]
    row, styles = [content], []
    for name in ["swirls", "mosaic"]:
        style = make_style(name, max(sizes))
        styles.append(style)
        cfg = StyleConfig(sizes=sizes, iters=iters, loop=LoopConfig(desc=f"demo {name}"))
        t = time.time()
        image = stylize(content, [style], cfg)
        written += [save_image(style, out / f"style_{name}.png"), save_image(image, out / f"stylized_{name}.png")]
        print(f"stylized with {name} in {time.time() - t:.1f} s")
        row += [style, image]
    written.append(save_image(side_by_side(row), out / "summary.png"))
    written += universal_part(out, content, dict(zip(["swirls", "mosaic"], styles)))
    written += feed_forward_part(out, content)
    for path in written:
        print(f"wrote {path}")
    print(f"demo done in {time.time() - start:.1f} s; outputs in {out}/")
    return written


def universal_part(out: Path, content: torch.Tensor, styles: dict[str, torch.Tensor]) -> list[Path]:
    """The same paintings in one pass: WCT and AdaIN on the bundled decoders."""
    from . import registry
    from .universal import KIND, UniversalConfig, UniversalStyle

    if not registry.bundled(KIND):
        print("universal style: no bundled decoders")
        return []
    written = []
    for method in ("wct", "adain"):
        for name, style in styles.items():
            t = time.time()
            result = UniversalStyle([style], UniversalConfig(method=method))(content)
            print(f"{method} {name}: {content.shape[-1]}x{content.shape[-2]} in {time.time() - t:.1f} s")
            written.append(save_image(result, out / f"{method}_{name}.png"))
    return written


def feed_forward_part(out: Path, content: torch.Tensor) -> list[Path]:
    """Every bundled style model on the demo photo, and a blend strip for each multi-style one."""
    from .fast import apply, bundled_models, load_transformer

    models = bundled_models()
    if not models:
        print("fast style: no bundled models")
    written = []
    for name in models:
        net = load_transformer(name)
        t = time.time()
        result = apply(net, content)
        print(f"fast style {name}: {content.shape[-1]}x{content.shape[-2]} in {1000 * (time.time() - t):.0f} ms")
        written.append(save_image(result, out / f"fast_{name}.png"))
        if net.n_styles > 1:
            strip = [apply(net, content, torch.tensor([1 - k / 4, k / 4] + [0.0] * (net.n_styles - 2)))
                     for k in range(5)]
            written.append(save_image(torch.cat(strip, -1), out / f"fast_{name}_blend.png"))
    return written
