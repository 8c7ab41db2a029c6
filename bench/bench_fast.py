"""Feed-forward style transfer: speed, memory, and quality against Gatys on the same objective.

    python bench/bench_fast.py [--no-write]   # speed section: ms/image, FLOP bound, ONNX, Gatys, tiles, lite
    python bench/bench_fast.py quality [MODELS [SIZE]] [--photos N] [--iters N] [--styles K,K] [--split S] [--start N]
        # the network's objective vs Gatys from the photo and noise (--styles: those styles of a multi-style net)
    python bench/bench_fast.py paint [MODELS] [--sizes 256,512] [--photos N] [--split S] [--sheet FILE] [--gatys N]
        # painting distance and content distance (lossnet.metrics.PaintingScore), independent of any objective
    python bench/bench_fast.py lattice [MODELS] [--photos N] [--size S]
        # does the objective reward the output's 4-pixel lattice? it, filtered out, and seen off VGG16's grid
    python bench/bench_fast.py layers [MODEL]   # per-layer errors: the photo, the network, Gatys 200 it (one style)
    python bench/bench_fast.py amortization [MODEL] [--photos N] [--steps N]
        # the network fine-tuned on each held-out photo alone: what its architecture can reach for one photo

`main()` measures the speed section of BENCHMARKS.md (bench/run.py calls it; `--no-write` prints only); `quality`
prints rows for its quality table. Timings use 2 threads (BENCH_THREADS; the project's 2-core box);
each is the best of several runs after a warm-up (see `best_ms`), and the conv throughput is measured before
and after the networks, the better of the two setting the FLOP bound.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lossnet import export, fast, registry  # noqa: E402
from lossnet.nets.transformer import TransformerNet  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
DATA = Path(os.environ.get("LOSSNET_DATA", ROOT.parent / "shared" / "data"))
STYLES = DATA / "styles"
HELD_OUT = DATA / "photos" / "BSDS500" / "val"
CONTENT_PHOTOS = DATA / "content"  # neural-style's 8 example photos: never trained on, and not from BSDS500


def best_ms(fn, repeats: int = 5, warmup: int = 1) -> float:
    """The fastest of `repeats` runs. On a VM that shares its host the same conv can run at 89 or 151 GFLOP/s
    minutes apart, so medians swing with the neighbours; the best run is what the machine can do, and the
    throughput and the networks are both taken as their best."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def conv_flops(net: torch.nn.Module, hw: tuple[int, int]) -> float:
    """FLOPs (2 x multiply-adds) of every conv of the architecture for one image of size hw, as written: the
    3x3 conv after each x2 upsampling counts in full, although nets/reflectconv.py computes it with 4/9 of them."""
    total = 0.0

    def hook(layer, inp, out):  # a ConvLayer: its conv's output has the layer's output shape
        nonlocal total
        m = layer.conv
        total += 2 * out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] / m.groups
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(getattr(m, "conv", None), torch.nn.Conv2d)]
    with torch.no_grad():
        net(torch.rand(1, 3, *hw))
    for h in handles:
        h.remove()
    return total


def conv_throughput() -> float:
    """GFLOP/s of the machine on the network's typical layer (3x3 conv, 128 -> 128 channels, 64x64), in the
    channels-last layout the network runs in (oneDNN's fastest on CPU)."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.rand(1, 128, 64, 64).contiguous(memory_format=torch.channels_last)
    flops = 2 * 128 * 128 * 9 * 64 * 64
    with torch.inference_mode():
        ms = best_ms(lambda: conv(x), repeats=20, warmup=3)
    return flops / ms / 1e6


def peak_memory_tiled(arch: str = "full", size=(2160, 3840), max_memory: float = 1.0) -> tuple[float, float]:
    """(peak RSS in GB, seconds) of stylising a size[0] x size[1] image in tiles (`max_memory` GiB for the pass),
    in a fresh process (an untrained network of the same shape: weights change neither memory nor time)."""
    code = f"""
import resource, time, torch
torch.set_num_threads({THREADS})
from lossnet import fast
from lossnet.nets.transformer import TransformerNet
net = TransformerNet(arch={arch!r}).eval()
x = torch.rand(1, 3, {size[0]}, {size[1]})
t = time.time()
y = fast.apply(net, x, max_memory={max_memory})
print(time.time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    seconds, gb = map(float, out.stdout.split()[-2:])
    return gb, seconds


def gatys_iteration_ms(size: int = 256, iters: int = 5) -> float:
    """ms per L-BFGS iteration of Gatys on the feed-forward training objective at size x size."""
    from lossnet.optimize import LoopConfig, optimize_pixels
    from lossnet.procedural import make_style

    cfg = fast.FastStyleConfig(styles=[], data=[])
    net = fast.loss_network(cfg, quiet=True)
    content = torch.rand(1, 3, size, size)
    grams = fast.style_targets(net, [make_style("swirls", size)], cfg.style_layers)[0]
    with torch.no_grad():
        obj = fast.objective(cfg, net(content), grams)
    optimize_pixels(obj, net, content, LoopConfig(iters=1, progress=False))  # warm-up
    t = time.perf_counter()
    optimize_pixels(obj, net, content, LoopConfig(iters=iters, progress=False))
    return (time.perf_counter() - t) / iters * 1000


def speed_rows(model: TransformerNet, name: str, sizes=(256, 512, 1024)) -> list[str]:
    import tempfile
    rows = []
    onnx = Path(tempfile.mkdtemp()) / f"{name}.onnx"
    export.export_onnx(registry.graph_of(model), onnx)
    session = export.onnx_session(onnx, THREADS)
    for s in sizes:
        x = torch.rand(1, 3, s, s)
        repeats = 9 if s <= 256 else 5 if s <= 512 else 3
        with torch.inference_mode():
            eager = best_ms(lambda: model(x), repeats)
        ort = best_ms(lambda: export.run_onnx(session, x), repeats)
        gflop = conv_flops(model, (s, s)) / 1e9
        rows.append((name, s, gflop, eager, ort))
    return rows


HEADING = "Feed-forward style (lossnet.fast)"


def main(argv=None) -> None:
    """The speed section: ms per image against the FLOP bound, Gatys against one pass, tiles' peak memory."""
    from run import record

    argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(THREADS)
    before = conv_throughput()
    models = {"full": TransformerNet().eval(), "lite": TransformerNet(arch="lite").eval()}
    rows = [r for name, m in models.items() for r in speed_rows(m, name)]
    after = conv_throughput()
    throughput = max(before, after)
    lines = ["| net | size | GFLOPs | FLOP bound ms | torch eager ms | eager / bound | ONNX Runtime ms | ORT / bound "
             "| images/s (best) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s, gflop, eager, ort in rows:
        bound = gflop / throughput * 1000
        lines.append(f"| {name} | {s}x{s} | {gflop:.2f} | {bound:.0f} | {eager:.0f} | {eager / bound:.2f}x | "
                     f"{ort:.0f} | {ort / bound:.2f}x | {1000 / min(eager, ort):.1f} |")
    gatys = gatys_iteration_ms(256)
    eager, ort = next((r[3], r[4]) for r in rows if r[0] == "full" and r[1] == 256)
    gb, seconds = peak_memory_tiled("full")
    lines += ["", "| measurement | value |", "|---|---|",
              f"| Gatys at 256x256 on the training objective, ms per L-BFGS iteration | {gatys:.0f} |",
              f"| 300 Gatys iterations over one pass of the full net, torch eager | **{gatys * 300 / eager:.0f}x** |",
              f"| 300 Gatys iterations over one pass of the full net, ONNX Runtime | **{gatys * 300 / ort:.0f}x** |",
              f"| 3840x2160 through the full net in tiles (`--max-memory 1`), peak memory | {gb:.2f} GB |",
              f"| 3840x2160 through the full net in tiles (`--max-memory 1`), seconds | {seconds:.0f} |",
              "",
              f"Untrained networks (speed does not depend on weights), {THREADS} threads, the best of 3-9 runs; the "
              "FLOP bound is the architecture's conv FLOPs, every conv as written, at the measured conv throughput, "
              f"{throughput:.1f} GFLOP/s (3x3 128->128 at 64x64, channels-last; {before:.1f} before the networks, "
              f"{after:.1f} after). Eager torch runs each upsampling conv as four 2x2 phase convs (4/9 of its "
              "FLOPs) while ONNX has the plain convs; the goal is the full net within 1.5x of its bound, and 300 Gatys "
              "iterations are extrapolated from 5 (the paper, on a GPU: 636x)."]
    record(HEADING, "\n".join(lines), "bench_fast.py", argv, write="--no-write" not in argv)


# ----------------------------------------------------------------------------- quality vs Gatys
STARTS = ("photo", "noise")


def model_objective(name: str):
    """(network, FastStyleConfig, loss network, [target Grams of each style]): the objective a bundled model was
    trained on, read from its file, so that its outputs can be scored on it (`fast.objective_value`)."""
    from lossnet.weights import read_model

    net = fast.load_transformer(name)
    _, config = read_model(fast.model_path(name), fast.KIND)
    t = config["training"]
    if t.get("teacher") and not max(t["content_weight"], t["style_weight"], t["tv_weight"]):
        # pure distillation (no objective of its own): judge it by its teacher's objective
        t = read_model(fast.model_path(t["teacher"]), fast.KIND)[1]["training"]
    cfg = fast.FastStyleConfig(styles=[str(STYLES / s) for s in config["styles"]], data=[],
                               **{k: t[k] for k in ("content_layers", "style_layers", "style_layer_weights",
                                                    "content_weight", "style_weight", "tv_weight", "style_size")})
    loss_net = fast.loss_network(cfg, quiet=True)
    return net, cfg, loss_net, fast.style_targets(loss_net, fast.load_styles(cfg), cfg.style_layers)


def photo_set(photos: int, size: int, split: str = "val", start: int = 0) -> tuple[list[Path], list[torch.Tensor]]:
    """Photos `start` .. `start + photos` of a BSDS500 split (`val`: held out) or of `content`, longest side `size`:
    (files, images)."""
    from lossnet.io import bundled_photo, list_images, load_image

    if split == "bundled":  # scikit-image's, public domain / CC0: for pictures that are committed
        names = ["astronaut", "chelsea", "coffee"][start:start + photos]
        return [Path(f"{n}.png") for n in names], [bundled_photo(n, size) for n in names]
    folder = CONTENT_PHOTOS if split == "content" else HELD_OUT.parent / split
    if not folder.is_dir():
        raise SystemExit(f"bench_fast needs the photos in {folder} (../shared/data)")
    files = list_images(folder)[start:start + photos]
    return files, [load_image(f, size) for f in files]


def quality(model_names=("starry", "starry-lite"), photos: int = 5, size: int = 256,
            checkpoints=(25, 50, 100, 200), cache=ROOT / "runs" / "quality", styles=None, split: str = "val",
            start: int = 0, run: str | None = None) -> None:
    """The paper's claim: one forward pass reaches the objective Gatys reaches after ~50-100 L-BFGS iterations.

    Same loss network, layers and weights as training (read from the model file); Gatys (fp32) starts from the
    photo and, as in the paper's comparison, from noise. Photos: the first `photos` of BSDS500/val (never
    used for training), longest side `size` (the networks train on 256 px crops). Also the style term alone,
    relative to the photo's own (a check that does not depend on the weights: lower = more stylised). `styles`: the
    indices of a multi-style net's styles to measure (all by default). `split`: another BSDS500 split instead of
    `val` (`train`, `test`: the photos the models were trained on, to see how much they memorise); `start`: skip
    that many photos first (to compare training runs on photos other than the ones reported); `content`: the 8
    photos of ../shared/data/content instead (held out too, and not BSDS500-like: what the video clips are made of).
    `run`: the command that ran it, appended to each table row with the date, commit and CPU (bench/run.py)."""
    torch.set_num_threads(THREADS)
    cache.mkdir(parents=True, exist_ok=True)
    files, images = photo_set(photos, size, split, start)
    table = []
    for name in model_names:
        net, cfg, loss_net, targets = model_objective(name)
        for k, grams in enumerate(targets):
            if styles is not None and net.n_styles > 1 and k not in styles:
                continue
            style = fast.style_weights(net, k if net.n_styles > 1 else None)
            values, style_ratio = [], []
            for image in images:
                out = fast.apply(net, image, style, precision="fp32")
                v = fast.objective_value(cfg, loss_net, image, out, grams)
                photo_v = fast.objective_value(cfg, loss_net, image, image, grams)
                values.append(v["total"])
                style_ratio.append(v["style"] / photo_v["style"])
            ff = sum(values) / len(values)
            row = {"name": name if net.n_styles == 1 else f"{name} [{Path(cfg.styles[k]).name}]", "ff": ff,
                   "style_ratio": sum(style_ratio) / len(style_ratio)}
            for start in STARTS if checkpoints else ():
                curves = gatys_curves(cfg, loss_net, grams, Path(cfg.styles[k]).name, files, images,
                                      max(checkpoints), cache, size, start)
                mean_curve = [sum(curves[f.name][i] for f in files) / len(files) for i in range(max(checkpoints) + 1)]
                row[start] = {n: mean_curve[n] for n in (0, *checkpoints)}
                row[start + "_equal"] = next((i for i, v in enumerate(mean_curve) if v <= ff), None)
            table.append(row)
    source = {"val": "held-out BSDS500/val", "content": "held-out ../shared/data/content"}.get(split, f"BSDS500/{split}")
    print(f"Objective (content relu2_2 + style relu1_2..relu4_3 + TV, as trained) on {len(files)} {source} photos "
          f"at {size} px, mean; Gatys L-BFGS in fp32 on the same objective:\n")
    if not checkpoints:  # --iters 0: the networks alone, without the slow Gatys curves
        lines = ["| model | feed-forward | style term / photo's |", "|---|---|---|"]
        lines += [f"| {r['name']} | {r['ff']:.3f} | {r['style_ratio']:.2f} |" for r in table]
    else:
        lines = ["| model | feed-forward | style term / photo's | Gatys from the photo: 0 / "
                 + " / ".join(map(str, checkpoints)) + " it | reached at | Gatys from noise: 0 / "
                 + " / ".join(map(str, checkpoints)) + " it | reached at |", "|---|---|---|---|---|---|---|"]
        for r in table:
            cells = []
            for start in STARTS:
                equal = r[start + "_equal"]
                cells += [" / ".join(f"{r[start][n]:.2f}" for n in (0, *checkpoints)),
                          f"iteration {equal}" if equal is not None else f"> {max(checkpoints)}"]
            lines.append(f"| {r['name']} | {r['ff']:.3f} | {r['style_ratio']:.2f} | " + " | ".join(cells) + " |")
    if run:
        from run import stamp
        lines = [stamp("\n".join(lines), run)]
    print("\n".join(lines))


def gatys_curves(cfg, loss_net, grams, style_name: str, files, images, iters: int, cache: Path, size: int,
                 start: str = "photo") -> dict[str, list[float]]:
    """Per photo, the objective after 0..iters L-BFGS updates from the photo or from noise (seeded), cached:
    it is the slow part."""
    import hashlib
    from lossnet.optimize import LoopConfig, optimize_pixels

    fields = ("content_layers", "style_layers", "style_layer_weights", "content_weight", "style_weight",
              "tv_weight", "style_size")
    key = json.dumps([{k: getattr(cfg, k) for k in fields}, style_name, size, start, "fp32"],
                     sort_keys=True, default=list)
    path = cache / f"gatys_{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"
    curves = json.loads(path.read_text()) if path.is_file() else {}
    for f, image in zip(files, images):
        if len(curves.get(f.name, [])) <= iters:
            with torch.no_grad():
                obj = fast.objective(cfg, loss_net(image), grams)
            init = image if start == "photo" else torch.rand(image.shape, generator=torch.Generator().manual_seed(0))
            # the slow part (minutes per photo): the loop's progress lines and ETA say where it is
            loop = LoopConfig(iters=iters + 1, progress=True, precision="fp32", desc=f"gatys from the {start}, {f.name}")
            _, history = optimize_pixels(obj, loss_net, init, loop)
            curves[f.name] = [row["loss"] for row in history]  # [i]: the objective after i updates
            path.write_text(json.dumps(curves))
    return curves


def layers(name: str = "starry", photos: int = 2, size: int = 256, iters: int = 200) -> None:
    """Where a network falls short of Gatys: per held-out photo, the content error (relu2_2) and each style
    layer's Gram error (relative MSE, before the layer weights) of the photo, the network's output, and Gatys
    after `iters` L-BFGS iterations from the photo, on the objective the network was trained on."""
    from lossnet.objectives import gram_matrix, relative_mse
    from lossnet.optimize import LoopConfig, optimize_pixels

    torch.set_num_threads(THREADS)
    net, cfg, loss_net, targets = model_objective(name)
    grams = targets[0]
    print("| photo | image | content | " + " | ".join(cfg.style_layers) + " |\n|---|---|---|" + "---|" * len(grams))
    for f, image in zip(*photo_set(photos, size)):
        with torch.no_grad():
            want = loss_net(image)
            obj = fast.objective(cfg, want, grams)
        gatys, _ = optimize_pixels(obj, loss_net, image, LoopConfig(iters=iters, progress=False, precision="fp32"))
        for label, x in (("photo", image), (name, fast.apply(net, image, fast.style_weights(net, None), precision="fp32")),
                         (f"Gatys {iters} it", gatys)):
            with torch.no_grad():
                feats = loss_net(x)
                errors = [relative_mse(feats[k], want[k]).item() for k in cfg.content_layers]
                errors += [relative_mse(gram_matrix(feats[k]), grams[k]).item() for k in cfg.style_layers]
            print(f"| {f.name} | {label} | " + " | ".join(f"{e:.4f}" for e in errors) + " |")


def amortization(name: str = "starry", photos: int = 2, size: int = 256, steps: int = 200, every: int = 50,
                 lr: float = 1e-3, cache=ROOT / "runs" / "quality") -> None:
    """Is the gap to Gatys the architecture's or the amortisation's? Per held-out photo, a copy of the trained
    network is fine-tuned on that photo alone (Adam, the training objective, the precision training would use)
    and its objective on it is printed every `every` steps, beside Gatys from the photo and from noise at the same
    counts (L-BFGS iterations, from the `quality` cache when it has them). If one photo's network gets far below
    the shared network, the architecture can paint that result: what is missing is one set of weights that
    does it for every photo (capacity, training), not the generator's reach."""
    from lossnet.precision import resolve

    torch.set_num_threads(THREADS)
    shared, cfg, loss_net, targets = model_objective(name)
    grams, style = targets[0], fast.style_weights(shared, None)
    run = resolve("auto")
    files, images = photo_set(photos, size)
    marks = list(range(0, steps + 1, every))
    curves = {start: gatys_curves(cfg, loss_net, grams, Path(cfg.styles[0]).name, files, images, steps, cache, size,
                                  start) for start in STARTS}
    print(f"`{name}` fine-tuned on one held-out photo at a time ({size} px, Adam {lr}, {run.describe()}): its "
          f"objective on that photo after 0 / {' / '.join(map(str, marks[1:]))} steps, and Gatys' after as many "
          "L-BFGS iterations\n")
    print("| photo | " + " | ".join(f"{m} steps" for m in marks) + " |\n|---|" + "---|" * len(marks))
    for f, image in zip(files, images):
        net = fast.load_transformer(name).train()
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr)
        with torch.no_grad():
            obj = fast.objective(cfg, loss_net(image, cfg.content_layers), grams)
        row = []
        for step in range(steps + 1):
            if step in marks:
                out = fast.apply(net.eval(), image, style, precision="fp32")
                row.append(fast.objective_value(cfg, loss_net, image, out, grams)["total"])
                net.train()
            if step == steps:
                break
            with run.autocast():
                out = net(image, style)
                loss = sum(obj.parts(loss_net(out), out).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        print(f"| {f.name}: network | " + " | ".join(f"{v:.3f}" for v in row) + " |")
        for start in STARTS:
            label = "the photo" if start == "photo" else start
            print(f"| {f.name}: Gatys from {label} | " + " | ".join(f"{curves[start][f.name][m]:.3f}" for m in marks) + " |")


def paint(model_names=("starry",), sizes=(256, 512), photos: int = 8, split: str = "content",
          sheet: Path | None = None, gatys: int = 0) -> None:
    """Rank style networks trained on different objectives by one measure that none of them trained on
    (`lossnet.metrics.PaintingScore`): painting distance (1.0 = as far from the painting as the photo, lower is
    closer; the painting's best scale counts) and content distance (relu4_1 against the photo; 0 = the photo).
    `gatys`: also Gatys from the photo for that many L-BFGS iterations on the first model's objective, as a
    reference row. `sheet`: a JPEG of every model's output on the first 3 photos at the first size. With
    EfficientNet-Lite0's weights fetched, the painting distance in that network too (not VGG16's: no objective)."""
    from lossnet.classifier import lite0_wheel_file, load_classifier
    from lossnet.io import load_image, resize_longest, save_image
    from lossnet.metrics import PAINTING_SCALES, PaintingScore, lattice_contrast
    from lossnet.optimize import LoopConfig, optimize_pixels

    torch.set_num_threads(THREADS)
    rows, pictures, scores, stems, spreads = {}, {}, {}, {}, {}
    lite = load_classifier(quiet=True) if lite0_wheel_file() else None
    for size in sizes:
        files, images = photo_set(photos, size, split)
        pictures.setdefault("photo", images[:3])
        for name in model_names:
            net, cfg, loss_net, targets = model_objective(name)
            for k, grams in enumerate(targets):
                painting = Path(cfg.styles[k])
                if painting not in scores:
                    image = load_image(painting)
                    scores[painting] = [PaintingScore(image)] + ([PaintingScore.in_lite0(image, lite)] if lite else [])
                    spreads[painting] = colour_spread(resize_longest(image, 256))
                score, *lite_score = scores[painting]
                stem = stems.setdefault(name, _stem(name, stems.values()))
                label = stem if net.n_styles == 1 else f"{stem} [{painting.stem}]"
                outs = {}
                outs[label] = [fast.apply(net, im, fast.style_weights(net, k if net.n_styles > 1 else None),
                                          precision="fp32") for im in images]
                if gatys and name == model_names[0]:
                    loop = LoopConfig(iters=gatys, progress=False, precision="fp32")
                    with torch.no_grad():
                        objs = [fast.objective(cfg, loss_net(im), grams) for im in images]
                    outs[f"Gatys {gatys} it [{stem}'s objective]"] = [
                        optimize_pixels(o, loss_net, im, loop)[0] for o, im in zip(objs, images)]
                for lab, out in outs.items():
                    row = rows.setdefault(lab, {})
                    row[size] = (sum(score.painting_distance(o, im) for o, im in zip(out, images)) / len(images),
                                 sum(score.content_distance(o, im) for o, im in zip(out, images)) / len(images),
                                 sum(lattice_contrast(o) for o in out) / len(out),
                                 sum(colour_spread(o) for o in out) / len(out) / spreads[painting],
                                 *(sum(s.painting_distance(o, im) for o, im in zip(out, images)) / len(images)
                                   for s in lite_score))
                    if size == sizes[0]:
                        pictures[lab] = out[:3]
    source = {"val": "held-out BSDS500/val", "content": "held-out ../shared/data/content"}.get(split, split)
    print(f"Painting distance (Gram at relu1_1..relu4_1 against the painting at its best of "
          f"{'/'.join(map(str, PAINTING_SCALES))} px, over the photo's own; lower is closer) and content "
          f"distance (relu4_1 against the photo) on {photos} {source} photos, mean; lattice: the output's spectral "
          f"power at a 4-pixel period over its neighbourhood's (a photo ~1); colour: the output's RGB standard "
          f"deviation over the painting's (at 256 px; 1 = the painting's contrast)"
          + ("; Lite0: the painting distance in EfficientNet-Lite0 (blocks 0, 2, 4, 7)" if lite else "") + ":\n")
    columns = ["painting", "content", "lattice", "colour"] + ["Lite0"] * (lite is not None)
    print("| model | " + " | ".join(f"{c} {s} px" for s in sizes for c in columns) + " |")
    print("|---|" + "---|" * len(columns) * len(sizes))
    for lab, row in rows.items():
        print(f"| {lab} | " + " | ".join(f"{v:.3f}" for s in sizes for v in row[s]) + " |")
    if sheet:
        side = sizes[0]
        tiles = []
        for lab, outs in pictures.items():
            tiles.append(torch.cat([centred(o.clamp(0, 1), side) for o in outs], -1))
        save_image(torch.cat(tiles, -2), sheet)
        print(f"\nsheet: {sheet} (rows: {', '.join(pictures)})")


def colour_spread(image: torch.Tensor) -> float:
    """The mean over R, G, B of the image's standard deviation (clamped to [0, 1], as it is shown)."""
    return float(image.clamp(0, 1).std(dim=(0, 2, 3)).mean())


def without_lattice(image: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """`image` with its 4-pixel lattice filtered out: the spectrum zeroed within `radius` bins of every harmonic
    of a 4-pixel period (the lattice and its modulation by the picture), DC kept."""
    h, w = image.shape[-2:]
    keep = torch.ones(h, w, dtype=torch.float64)
    for ky in (0, h // 4, h // 2, -(h // 4)):
        for kx in (0, w // 4, w // 2, -(w // 4)):
            if ky or kx:
                rows = [(ky + d) % h for d in range(-radius, radius + 1)]
                cols = [(kx + d) % w for d in range(-radius, radius + 1)]
                keep[torch.tensor(rows)[:, None], torch.tensor(cols)[None]] = 0
    return torch.fft.ifft2(torch.fft.fft2(image.double()) * keep).real.float().clamp(0, 1)


def lattice(model_names=("starry",), photos: int = 4, size: int = 256, split: str = "content") -> None:
    """Whether a network's objective rewards the lattice it prints: each model's output scored on its own objective
    as it is, with the lattice filtered out (`without_lattice`), and seen 1-3 px off the loss network's pooling grid
    (cropped by 8 px at that offset, against the same crop at offset 0). A pattern that the objective rewards
    wherever it lies loses nothing off the grid; one tuned to VGG16's pooling grid loses what filtering loses."""
    from lossnet.metrics import lattice_contrast

    torch.set_num_threads(THREADS)
    _, images = photo_set(photos, size, split)
    print(f"Each model's objective (style / content terms, mean of {photos} photos at {size} px): its output, the "
          "output with its 4-pixel lattice filtered out, and the output seen 1, 2, 3 px off the loss network's grid "
          "(against the aligned crop of the same size):\n")
    print("| model | lattice | as is | lattice filtered | aligned crop | 1 px off | 2 px off | 3 px off |\n|---|" + "---|" * 7)
    for name in model_names:
        net, cfg, loss_net, targets = model_objective(name)
        rows = []
        for x in images:
            h, w = (d // 8 * 8 for d in x.shape[-2:])
            x = x[..., :h, :w]
            y = fast.apply(net, x, fast.style_weights(net, 0 if net.n_styles > 1 else None), precision="fp32").clamp(0, 1)

            def terms(photo, out):
                v = fast.objective_value(cfg, loss_net, photo, out, targets[0])
                return v["style"], v["content"]
            views = [terms(x, y), terms(x, without_lattice(y))]
            views += [terms(x[..., o:h - 8 + o, o:w - 8 + o], y[..., o:h - 8 + o, o:w - 8 + o]) for o in range(4)]
            rows.append((lattice_contrast(y), views))
        mean = [tuple(sum(r[1][i][j] for r in rows) / len(rows) for j in (0, 1)) for i in range(6)]
        print(f"| {_stem(name, [])} | {sum(r[0] for r in rows) / len(rows):.1f} | "
              + " | ".join(f"{st:.3f} / {co:.3f}" for st, co in mean) + " |")


def _stem(name: str, taken) -> str:
    """A model's label: its file's stem, or its run folder's name (with the folder above when two agree)."""
    path = Path(name)
    stem = path.parent.name if path.name == "model.safetensors" else path.stem
    return f"{path.parent.parent.name}/{stem}" if stem in taken else stem


def centred(image: torch.Tensor, side: int) -> torch.Tensor:
    """`image` centred on a side x side white square (sheets of photos of several shapes)."""
    h, w = image.shape[-2:]
    top, left = (side - h) // 2, (side - w) // 2
    return torch.nn.functional.pad(image, (left, side - w - left, top, side - h - top), value=1.0)


# ----------------------------------------------------------------------------- gallery
def gallery(out=ROOT / "docs" / "gallery" / "fast", size: int = 384) -> None:
    """Each bundled model on scikit-image's astronaut, chelsea and coffee (public domain / CC0), plus a blend
    strip of every multi-style model; JPEGs small enough to commit, and the page that shows them (README.md)."""
    from lossnet.io import bundled_photo, resize_longest, save_image

    torch.set_num_threads(THREADS)
    out.mkdir(parents=True, exist_ok=True)
    photos = {n: bundled_photo(n, size) for n in ("astronaut", "chelsea", "coffee")}
    lines = ["| model | " + " | ".join(photos) + " |", "|---|" + "---|" * len(photos)]
    lines.append("| (photo) | " + " | ".join(f"![{n}]({n}.jpg)" for n in photos) + " |")
    blends = []
    for n, p in photos.items():
        save_image(p, out / f"{n}.jpg", quality=88)
    for name in fast.bundled_models():
        net = fast.load_transformer(name)
        for k in range(net.n_styles):
            tag = name if net.n_styles == 1 else f"{name}_style{k}"
            cells = []
            for n, p in photos.items():
                save_image(fast.apply(net, p, fast.style_weights(net, k if net.n_styles > 1 else None)),
                           out / f"{tag}_{n}.jpg", quality=88)
                cells.append(f"![{tag} {n}]({tag}_{n}.jpg)")
            label = f"`{name}`" if net.n_styles == 1 else f"`{name}` --style-index {k} ({net.styles[k]})"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if net.n_styles > 1:
            p = photos["chelsea"]
            strip = [fast.apply(net, p, torch.tensor([1 - t, t] + [0.0] * (net.n_styles - 2))) for t in
                     (0.0, 0.25, 0.5, 0.75, 1.0)]
            save_image(torch.cat([resize_longest(s, 256) for s in strip], -1), out / f"{name}_blend.jpg", quality=88)
            blends.append(name)
    page = ["# Feed-forward style gallery (`lossnet stylize PHOTO --model NAME`)", "",
            f"Photos: scikit-image's astronaut (NASA, public domain), chelsea and coffee (CC0), {size} px. Each model's "
            "card (`lossnet models --card NAME`) says how it was trained and how it measures. Regenerate with "
            "`python bench/bench_fast.py gallery`.", "", *lines, ""]
    if blends:
        page += ["Blend strips of the first two styles (`--blend 1,0,...` to `--blend 0,1,...` in steps of 0.25): "
                 + ", ".join(f"`{n}`" for n in blends) + ".", ""]
        page += [line for n in blends for line in (f"![{n} blend]({n}_blend.jpg)", "")]
    (out / "README.md").write_text("\n".join(page))
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["gallery"]:
        gallery()
    elif sys.argv[1:2] == ["lattice"]:
        import argparse
        parser = argparse.ArgumentParser(prog="bench_fast.py lattice")
        parser.add_argument("models", nargs="?", default="starry", help="comma-separated names or paths")
        parser.add_argument("--photos", type=int, default=4)
        parser.add_argument("--size", type=int, default=256)
        a = parser.parse_args(sys.argv[2:])
        lattice(a.models.split(","), a.photos, a.size)
    elif sys.argv[1:2] == ["layers"]:
        layers(*sys.argv[2:3])
    elif sys.argv[1:2] == ["amortization"]:
        import argparse
        parser = argparse.ArgumentParser(prog="bench_fast.py amortization")
        parser.add_argument("model", nargs="?", default="starry")
        parser.add_argument("--photos", type=int, default=2, help="the first N held-out photos")
        parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps per photo (Gatys is cached to 200)")
        a = parser.parse_args(sys.argv[2:])
        amortization(a.model, photos=a.photos, steps=a.steps)
    elif sys.argv[1:2] == ["paint"]:
        import argparse
        parser = argparse.ArgumentParser(prog="bench_fast.py paint")
        parser.add_argument("models", nargs="?", default="starry", help="comma-separated names or paths")
        parser.add_argument("--sizes", default="256,512", help="longest sides of the photos, comma-separated")
        parser.add_argument("--photos", type=int, default=8)
        parser.add_argument("--split", default="content", choices=("val", "content", "bundled"),
                            help="held-out photos: BSDS500/val, ../shared/data/content, or scikit-image's (bundled: "
                                 "for sheets that are committed)")
        parser.add_argument("--sheet", type=Path, default=None, help="write a JPEG sheet of the outputs here")
        parser.add_argument("--gatys", type=int, default=0, help="a Gatys reference row: L-BFGS iterations")
        a = parser.parse_args(sys.argv[2:])
        paint(a.models.split(","), tuple(int(x) for x in a.sizes.split(",")), a.photos, a.split, a.sheet, a.gatys)
    elif sys.argv[1:2] == ["quality"]:
        import argparse
        from run import command
        parser = argparse.ArgumentParser(prog="bench_fast.py quality")
        parser.add_argument("models", nargs="?", default="starry,starry-lite", help="comma-separated names or paths")
        parser.add_argument("size", nargs="?", type=int, default=256)
        parser.add_argument("--photos", type=int, default=5, help="the first N held-out photos")
        parser.add_argument("--start", type=int, default=0, help="skip the first N photos")
        parser.add_argument("--iters", type=int, default=200,
                            help="Gatys L-BFGS iterations (checkpoints up to it); 0: the networks' objective alone")
        parser.add_argument("--styles", default=None, help="comma-separated style indices of a multi-style net")
        parser.add_argument("--split", default="val", choices=("val", "train", "test", "content"),
                            help="the BSDS500 split (val: held out; train, test: trained on), or content: the "
                                 "8 photos of ../shared/data/content (held out, not from BSDS500)")
        a = parser.parse_args(sys.argv[2:])
        quality(a.models.split(","), photos=a.photos, size=a.size,
                checkpoints=tuple(n for n in (25, 50, 100, 200, 400) if n < a.iters) + ((a.iters,) if a.iters else ()),
                styles=None if a.styles is None else [int(k) for k in a.styles.split(",")], split=a.split, start=a.start,
                run=command("bench_fast.py", sys.argv[1:]))
    else:
        main(sys.argv[1:])
