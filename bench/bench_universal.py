"""Universal style transfer (lossnet.universal): what the decoders give back, speed and quality against Gatys.

    python bench/bench_universal.py reconstruct --decoders DIR... [--photos 8] [--size 512] [--sheet FILE.jpg]
        # per level: PSNR / SSIM of each decoder alone (encode -> decode) and of the WCT chain at alpha 0
    python bench/bench_universal.py speed --decoders DIR... [--size 512] [--painting FILE] [--gatys-iters N]
        # a photo with a painting not seen before (its statistics computed in the time): WCT, AdaIN, Gatys' default
    python bench/bench_universal.py quality --decoders DIR... [--photos K] [--size S] [--gatys-iters N] [--sheet F.jpg]
        # PaintingScore of WCT and AdaIN against Gatys' default on photos x held-out paintings

`--decoders` takes decoder files, run folders (`lossnet train-decoder -o FOLDER`) or folders of decoder files; a
run folder with no model yet is skipped, so `--decoders ~/lossnet-runs/decoder-relu*_1` measures the levels that
exist. Each subcommand writes its own section of BENCHMARKS.md through bench/run.py's `record` (`--no-write`:
print only). Not in run.py's list: every part needs trained decoders, and Gatys takes minutes per image.

Gatys is the CLI's: `lossnet stylize PHOTO --style PAINTING --size S` run in this process, so its defaults (layers,
weights, coarse-to-fine stages and iterations, precision) are the parser's. `--gatys-iters N` runs N iterations at
each stage instead; `speed` then extrapolates to the default counts from each stage's time per iteration (the
rows say so), `quality` compares against that shorter result (its rows say so too). `quality` keeps Gatys'
results in runs/bench/universal-gatys/ (delete it to run them again), so only the universal methods run again
after the decoders change. Timings use one thread (BENCH_THREADS), each method in a fresh process (its peak RSS
is the process's).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_fast import CONTENT_PHOTOS, STYLES, centred  # noqa: E402
from lossnet import registry  # noqa: E402
from lossnet.errors import LossnetError  # noqa: E402
from lossnet.io import list_images, load_image, resize_longest, save_image  # noqa: E402
from lossnet.universal import (KIND, LEVELS, UniversalConfig, UniversalStyle, choose_levels, load_decoder,  # noqa: E402
                               painting_side)

THREADS = int(os.environ.get("BENCH_THREADS", "1"))
# Paintings kept out of the decoders' training (~/decoder-paintings holds the other eight of ../shared/data/styles)
HELD_OUT_PAINTINGS = ("starry_night.jpg", "the_scream.jpg", "wave.jpg", "composition_vii.jpg")
LABELS = {"wct": "WCT", "adain": "AdaIN"}
GATYS_CACHE = ROOT / "runs" / "bench" / "universal-gatys"


def method_levels(spec: str) -> str:
    """--also's METHOD:LEVELS, checked before Gatys' minutes."""
    method, _, levels = spec.partition(":")
    if method not in LABELS or not levels or not set(levels.split(",")) <= set(LEVELS):
        raise argparse.ArgumentTypeError(f"{spec!r}: METHOD:LEVELS, METHOD wct or adain, LEVELS of {', '.join(LEVELS)}"
                                         ", e.g. adain:relu4_1,relu1_1")
    return spec


# ----------------------------------------------------------------------------- decoders and images
def decoder_files(specs) -> list[Path]:
    """The decoder model files of `specs` (files, run folders, folders of decoder files), skipping, with a line
    that says so, a folder that holds none yet (a run that has not written its first checkpoint)."""
    files = []
    for spec in map(Path, specs):
        if spec.is_file():
            files.append(spec)
        elif (spec / registry.MODEL_FILE).is_file():
            files.append(spec / registry.MODEL_FILE)
        elif spec.is_dir():
            found = [p for p in sorted(spec.glob("*.safetensors"))
                     if registry.stored_metadata(p).get("lossnet_kind") == KIND.stored]
            if not found:
                print(f"(skipped {spec}: no decoder in it yet)")
            files += found
        else:
            raise LossnetError(f"no decoder file or folder {spec}")
    return files


def load_decoders(specs) -> tuple[dict, list[Path], dict[str, str]]:
    """({level: decoder}, their files, {level: "FILE (step S of N)"}) from `specs`; two decoders of one level are
    refused."""
    decoders, files, described = {}, decoder_files(specs), {}
    for path in files:
        decoder = load_decoder(path)
        if decoder.level in decoders:
            raise LossnetError(f"two decoders for {decoder.level}: {described[decoder.level]} and {path}")
        training = json.loads(registry.stored_metadata(path).get("lossnet_config", "{}")).get("training", {})
        steps = f" (step {training['steps']} of {training['iters']})" if "steps" in training else ""
        decoders[decoder.level], described[decoder.level] = decoder, f"{shown(path)}{steps}"
    if not decoders:
        raise LossnetError("no decoders in " + " ".join(map(str, specs)))
    return decoders, files, described


def shown(path: Path) -> str:
    """A path as the notes show it: under the home folder as ~/..."""
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def content_photos(count: int) -> list[Path]:
    """The first `count` of ../shared/data/content's 8 photos: never trained on by any lossnet model."""
    if not CONTENT_PHOTOS.is_dir():
        raise SystemExit(f"bench_universal needs the photos in {CONTENT_PHOTOS} (../shared/data)")
    return list_images(CONTENT_PHOTOS)[:count]


def paintings(names: str) -> list[Path]:
    files = [STYLES / n for n in names.split(",")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise LossnetError(f"no painting {missing[0]}")
    return files


def eight_bit(image: torch.Tensor) -> torch.Tensor:
    """What a saved image holds: [0, 1] rounded to 256 levels."""
    return (image.double().clamp(0, 1) * 255).round() / 255


def sheet(rows: list[list[torch.Tensor]], cell: int, path: Path) -> None:
    """A JPEG grid: each image fitted into a cell x cell white square."""
    save_image(torch.cat([torch.cat([centred(resize_longest(im.clamp(0, 1), cell), cell) for im in row], -1)
                          for row in rows], -2), path, quality=90)
    print(f"sheet: {path} ({len(rows)} rows)")


def levels_label(levels) -> str:
    return levels[0] if len(levels) == 1 else f"{levels[0]} .. {levels[-1]}"


# ----------------------------------------------------------------------------- the methods as the CLI runs them
def gatys_plan(size: int) -> list[tuple[int, int]]:
    """(longest side, iterations) of each coarse-to-fine stage of `lossnet stylize --size SIZE`, from its parser."""
    from lossnet.cli import build_parser
    from lossnet.optimize import plan_stages

    args = build_parser().parse_args(["stylize", "photo", "--style", "painting", "--size", str(size), "-o", "out.png"])
    return list(zip(*plan_stages(args.size, None, None, args.default_scales, args.default_iters)))


def describe_plan(plan) -> str:
    return " + ".join(f"{iters} it at {side} px" for side, iters in plan)


def run_cli(argv: list[str]) -> None:
    """`lossnet ARGV` in this process, its lines kept back unless it fails."""
    from lossnet import cli

    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        code = cli.main(argv)
    if code:
        raise SystemExit(f"lossnet {' '.join(argv)} failed:\n{said.getvalue()[-2000:]}")


def stylize_cli(photo: Path, painting: Path, size: int, extra: list[str], output: Path) -> torch.Tensor:
    """`lossnet stylize PHOTO --style PAINTING --size SIZE EXTRA -o OUTPUT --quiet`, the result read back."""
    run_cli(["stylize", str(photo), "--style", str(painting), "--size", str(size), *extra, "-o", str(output),
             "--quiet"])
    return load_image(output)


def gatys_seconds(photo: Path, painting: Path, size: int, iters: int | None) -> dict:
    """Gatys as `lossnet stylize PHOTO --style PAINTING --size SIZE` runs it (with `--iters ITERS` when given):
    {"seconds": the run, "default_seconds": the run at the default iterations, extrapolated when `iters` is
    given from each stage's time per iteration after its first}."""
    from lossnet import progress

    stages: dict[str, list[float]] = {}  # each stage's bar: the time each iteration ended

    def watch(desc, n, total, terms, image):
        if n is not None:
            stages.setdefault(desc, []).append(time.perf_counter())
    progress.observe(watch)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["stylize", str(photo), "--style", str(painting), "--size", str(size), "-o", f"{tmp}/gatys.png",
                    "--quiet", *(["--iters", str(iters)] if iters else [])]
            start = time.perf_counter()
            run_cli(argv)
            seconds = time.perf_counter() - start
    finally:
        progress.observe(None)
    if not iters:
        return {"seconds": seconds, "default_seconds": seconds}
    plan = gatys_plan(size)
    if len(stages) != len(plan):
        raise SystemExit(f"expected Gatys' stages {describe_plan(plan)}, saw the bars {list(stages)}")
    per_iteration = [(t[-1] - t[0]) / (len(t) - 1) for t in stages.values()]  # the first one warms up
    extra = sum((default - len(t)) * s for (_, default), t, s in zip(plan, stages.values(), per_iteration))
    return {"seconds": seconds, "default_seconds": seconds + extra}


def gatys_label(size: int, iters: int | None) -> str:
    plan = gatys_plan(size)
    if not iters:
        return f"Gatys, the CLI's default ({describe_plan(plan)})"
    return (f"Gatys, {iters} it per stage ({describe_plan([(s, iters) for s, _ in plan])}; the default is "
            f"{describe_plan(plan)})")


# ----------------------------------------------------------------------------- reconstruct
def reconstruct(a) -> None:
    """Each decoder alone and the WCT chain at alpha 0 on the held-out photos: PSNR / SSIM against the photo."""
    from lossnet.metrics import psnr, ssim
    from lossnet.precision import resolve
    from run import conditions, record

    torch.set_num_threads(THREADS)
    decoders, _, described = load_decoders(a.decoders)
    levels = choose_levels(decoders, "wct", None)[::-1]  # fine to coarse, as the sheet's columns
    runs = {level: ([level], f"{level} decoder alone") for level in levels}
    if len(levels) > 1:
        runs["chain"] = (levels, f"WCT chain {levels_label(levels[::-1])} at alpha 0")
    scores = {key: [] for key in runs}
    files, rows = content_photos(a.photos), []
    for f in files:
        photo = load_image(f, a.size)
        row = [photo]
        for key, (chain, _) in runs.items():
            stylist = UniversalStyle([], UniversalConfig(levels=chain, precision=a.precision), decoders)
            start = time.perf_counter()
            out = stylist(photo)
            seconds = time.perf_counter() - start
            x, y = eight_bit(out), eight_bit(photo)
            scores[key].append((psnr(x, y), ssim(x, y), seconds))
            row.append(out)
        rows.append(row)
        print(f"{f.name}: " + ", ".join(f"{k} {s[-1][0]:.2f} dB" for k, s in scores.items()), flush=True)
    lines = ["| decoders | PSNR dB, mean | PSNR dB, worst photo | SSIM, mean | s per image, fastest |",
             "|---|---|---|---|---|"]
    for key, (_, label) in runs.items():
        p, s, t = zip(*scores[key])
        lines.append(f"| {label} | {sum(p) / len(p):.2f} | {min(p):.2f} | {sum(s) / len(s):.4f} | {min(t):.2f} |")
    lines += ["", f"{len(files)} photo{'s' * (len(files) != 1)} of ../shared/data/content (never trained on) at "
              f"{a.size} px, encoded by the frozen VGG16 and decoded ({resolve(a.precision).describe()}); PSNR and "
              "SSIM on RGB, both images rounded to 8 bits. The chain is `stylize --method wct --alpha 0`: each "
              "level's result is the next one's input, so its losses add up. Decoders: "
              + "; ".join(f"{lv} {described[lv]}" for lv in levels) + f". {conditions()}."]
    if a.sheet:
        sheet(rows, a.cell or a.size, a.sheet)
        lines[-1] += f" Sheet (photo | {' | '.join(label for _, label in runs.values())}): {a.sheet.name}."
    record("Universal style: reconstruction (lossnet.universal)", "\n".join(lines), "bench_universal.py",
           a.argv, write=not a.no_write)


# ----------------------------------------------------------------------------- speed
def one_run(spec: dict) -> dict:
    """One method in this (fresh) process: {"best": s, "first": s, "peak_mb": peak RSS}."""
    torch.set_num_threads(THREADS)
    photo, painting, size = Path(spec["photo"]), Path(spec["painting"]), spec["size"]
    if spec["method"] == "gatys":
        timed = gatys_seconds(photo, painting, size, spec["gatys_iters"])
        result = {"best": timed["default_seconds"], "first": timed["seconds"]}
    else:
        decoders, _, _ = load_decoders(spec["decoders"])
        times = []
        for _ in range(spec["repeats"]):  # each time from the files: the painting's statistics are part of it
            start = time.perf_counter()
            stylist = UniversalStyle([load_image(painting, painting_side(spec["method"], size))],
                                     UniversalConfig(method=spec["method"]), decoders)
            stylist(load_image(photo, size))
            times.append(time.perf_counter() - start)
        result = {"best": min(times), "first": times[0]}
    return result | {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_fresh_process(spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "LOSSNET_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "one", json.dumps(spec)], capture_output=True, text=True,
                         cwd=ROOT, env=env)
    if out.returncode:
        raise SystemExit(f"{spec['method']} failed:\n{out.stderr[-2000:]}{out.stdout[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(a) -> None:
    """Seconds from a photo and a painting never seen before to the stylised photo, against Gatys' default."""
    from lossnet.precision import resolve
    from run import conditions, record

    if a.gatys_iters == 1:
        raise LossnetError("--gatys-iters: at least 2, to time an iteration after the first")
    decoders, files, described = load_decoders(a.decoders)
    photo, painting = content_photos(1)[0] if a.photo is None else a.photo, paintings(a.painting)[0]
    base = {"photo": str(photo), "painting": str(painting), "size": a.size, "decoders": [str(f) for f in files],
            "repeats": a.repeats, "gatys_iters": a.gatys_iters}
    rows = {}
    for method in ("wct", "adain", "gatys"):
        rows[method] = in_fresh_process(base | {"method": method})
        print(f"{method}: {rows[method]}", flush=True)
    h, w = load_image(photo, a.size).shape[-2:]
    gatys_s = rows["gatys"]["best"]
    lines = [f"| method | levels | seconds, best of {a.repeats} | first run s | peak RSS MB | Gatys' seconds / these |",
             "|---|---|---|---|---|---|"]
    for method in ("wct", "adain"):
        r = rows[method]
        lines.append(f"| {method.upper() if method == 'wct' else 'AdaIN'} | "
                     f"{levels_label(choose_levels(decoders, method, None))} | **{r['best']:.2f}** | "
                     f"{r['first']:.2f} | {r['peak_mb']:.0f} | **{gatys_s / r['best']:.0f}x** |")
    g = rows["gatys"]
    timed = (f"{gatys_s:.0f} (extrapolated from {g['first']:.0f} s of {a.gatys_iters} it per stage)"
             if a.gatys_iters else f"{gatys_s:.0f}")
    lines.append(f"| {gatys_label(a.size, None)} | - | {timed} | - | {g['peak_mb']:.0f} | 1x |")
    lines += ["", f"{photo.name} at {w}x{h} with {painting.name} (a painting the decoders never saw) on "
              f"{THREADS} thread{'s' * (THREADS != 1)}, {resolve('auto').describe()} as every method's default; "
              "each method in a fresh process. WCT and AdaIN: from the two files to the stylised image, the "
              f"painting read at `lossnet stylize`'s size for the method (WCT {painting_side('wct', a.size)} px, "
              f"AdaIN {painting_side('adain', a.size)} px) and its statistics included (decoders already loaded; "
              "the first run also reads the encoder's weights). Gatys: `lossnet stylize` with its defaults, one run"
              + (", its default iteration counts extrapolated from each stage's time per iteration" if a.gatys_iters
                 else "") + ". Decoders: " + "; ".join(f"{lv} {d}" for lv, d in described.items())
              + f". {conditions()}."]
    record("Universal style: speed (lossnet.universal)", "\n".join(lines), "bench_universal.py", a.argv,
           write=not a.no_write)


# ----------------------------------------------------------------------------- quality
def quality(a) -> None:
    """PaintingScore of WCT, AdaIN and Gatys on photos x held-out paintings, and the ratios to Gatys'."""
    from lossnet.classifier import lite0_wheel_file, load_classifier
    from lossnet.features import LossNetwork
    from lossnet.metrics import PAINTING_LAYERS, PaintingScore
    from run import conditions, record

    torch.set_num_threads(THREADS)
    _, used, described = load_decoders(a.decoders)  # refuses bad decoders before Gatys' minutes
    decoder_args = [w for f in used for w in ("--decoders", str(f))]
    files, works = content_photos(a.photos), paintings(a.paintings)
    net = LossNetwork(list(PAINTING_LAYERS), quiet=True)
    scores = {p: PaintingScore(load_image(p), net) for p in works}
    # the same measure in EfficientNet-Lite0, which none of the three methods optimises (Gatys optimises VGG16's
    # Grams at four of the five layers above, WCT matches its covariances there)
    lite = load_classifier(quiet=True) if lite0_wheel_file() else None
    lite_scores = {p: PaintingScore.in_lite0(load_image(p), lite) for p in works} if lite else {}
    methods = {"gatys": gatys_label(a.size, a.gatys_iters), **LABELS,
               **{spec: f"{LABELS[spec.split(':')[0]]} at {spec.split(':')[1]}" for spec in a.also}}
    results = {m: {} for m in methods}  # method -> (photo, painting) -> (painting distance, content distance)
    rows = []
    GATYS_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            photo = load_image(f, a.size)
            for p in works:
                cached = GATYS_CACHE / f"{f.stem}-{p.stem}-{a.size}px-{a.gatys_iters or 'default'}.png"
                outs = {"gatys": load_image(cached) if cached.is_file() else None}
                if outs["gatys"] is None:
                    outs["gatys"] = stylize_cli(f, p, a.size, ["--iters", str(a.gatys_iters)] if a.gatys_iters else [],
                                                cached)
                for m in list(methods)[1:]:  # "wct", "adain", then any "METHOD:LEVELS" of --also
                    method, _, levels = m.partition(":")
                    outs[m] = stylize_cli(f, p, a.size, ["--method", method, *decoder_args,
                                                         *(["--levels", levels] if levels else [])],
                                          Path(tmp) / "out.png")
                for m, out in outs.items():
                    results[m][f.name, p.name] = (scores[p].painting_distance(out, photo),
                                                  scores[p].content_distance(out, photo),
                                                  *((lite_scores[p].painting_distance(out, photo),
                                                     lite_scores[p].content_distance(out, photo)) if lite else ()))
                rows.append([photo, resize_longest(load_image(p), a.size), *outs.values()])
                print(f"{f.name} x {p.name}: " + ", ".join(f"{m} {results[m][f.name, p.name][0]:.3f} / "
                                                            f"{results[m][f.name, p.name][1]:.3f}" for m in methods),
                      flush=True)

    def mean(m, which, painting=None):
        values = [v[which] for (_, pn), v in results[m].items() if painting is None or pn == painting]
        return sum(values) / len(values)
    lines = ["| method | painting distance | / Gatys' (goal <= 2) | content distance | / Gatys' (goal <= 1.5) |"
             + (" in EfficientNet-Lite0: painting distance | / Gatys' | content distance | / Gatys' |" if lite else ""),
             "|---|---|---|---|---|" + ("---|---|---|---|" if lite else "")]
    for m, label in methods.items():
        pd, cd = mean(m, 0), mean(m, 1)
        lines.append(f"| {label} | {pd:.3f} | **{pd / mean('gatys', 0):.2f}** | {cd:.3f} | "
                     f"**{cd / mean('gatys', 1):.2f}** |"
                     + "".join(f" {mean(m, k):.3f} | {mean(m, k) / mean('gatys', k):.2f} |" for k in (2, 3) if lite))
    names = " / ".join(["Gatys", *list(methods.values())[1:]])
    lines += ["", f"| painting | painting distance: {names} | content distance: {names} |",
              "|---|---|---|"]
    for p in works:
        lines.append(f"| {p.name} | " + " / ".join(f"{mean(m, 0, p.name):.3f}" for m in methods) + " | "
                     + " / ".join(f"{mean(m, 1, p.name):.3f}" for m in methods) + " |")
    lines += ["", f"{len(files)} photo{'s' * (len(files) != 1)} of ../shared/data/content x {len(works)} "
              f"painting{'s' * (len(works) != 1)} the decoders never saw, "
              f"at {a.size} px, each method as `lossnet stylize --size {a.size}` runs it (its defaults; WCT on every "
              "decoder's level, AdaIN on the deepest). Painting distance (`lossnet.metrics.PaintingScore`: Gram "
              "distance at relu1_1..relu4_1 to the painting at its best scale, over the photo's own; 1.0 is the "
              "photo, lower is closer) and content distance (relu4_1 against the photo; 0 is the photo), means "
              "over all pairs"
              + ("; in EfficientNet-Lite0 the same two measures at its blocks 0, 2, 4 and 7 (1/2 to 1/16 of the "
                 "image; content at 7), a network none of the methods optimises" if lite else "")
              + ". Decoders: " + "; ".join(f"{lv} {d}" for lv, d in described.items())
              + f". {conditions()}."]
    if a.sheet:
        sheet(rows, a.cell, a.sheet)
        lines[-1] += (f" Sheet (rows photos x paintings; photo | painting | {names.replace(' / ', ' | ')}): "
                      f"{a.sheet.name}.")
    record("Universal style: quality against Gatys (lossnet.universal)", "\n".join(lines), "bench_universal.py",
           a.argv, write=not a.no_write)


# ----------------------------------------------------------------------------- command line
def main(argv=None) -> None:
    from lossnet.cli import positive_int

    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("LOSSNET_OFFLINE", "1")
    if argv[:1] == ["one"]:  # a child of `speed`: one method, its result as the last line
        print(json.dumps(one_run(json.loads(argv[1]))))
        return
    parser = argparse.ArgumentParser(prog="bench_universal.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    parts = {}
    for name, fn, help_ in (("reconstruct", reconstruct, "each decoder alone and the WCT chain at alpha 0"),
                            ("speed", speed, "a photo and a new painting: WCT, AdaIN, Gatys' default"),
                            ("quality", quality, "PaintingScore of WCT and AdaIN against Gatys")):
        p = parts[name] = sub.add_parser(name, help=help_)
        p.set_defaults(run=fn)
        p.add_argument("--decoders", nargs="+", required=True, type=Path,
                       help="decoder files, run folders or folders of decoder files")
        p.add_argument("--size", type=positive_int, default=512, help="the photos' longest side")
        p.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    p = parts["reconstruct"]
    p.add_argument("--photos", type=positive_int, default=8, help="the first N of ../shared/data/content")
    p.add_argument("--precision", default=UniversalConfig.precision, help="auto, fp32 or bf16")
    p.add_argument("--sheet", type=Path, help="a JPEG: photo | each level's reconstruction | the chain, per photo")
    p.add_argument("--cell", type=positive_int, help="the sheet's cell side (default --size)")
    p = parts["speed"]
    p.add_argument("--photo", type=Path, help="default: the first of ../shared/data/content")
    p.add_argument("--painting", default=HELD_OUT_PAINTINGS[0], help="a file name in ../shared/data/styles")
    p.add_argument("--repeats", type=positive_int, default=3, help="WCT and AdaIN: the best of this many")
    p.add_argument("--gatys-iters", type=positive_int, help="time N (>= 2) iterations per stage, extrapolate")
    p = parts["quality"]
    p.add_argument("--photos", type=positive_int, default=8, help="the first K of ../shared/data/content")
    p.add_argument("--paintings", default=",".join(HELD_OUT_PAINTINGS), help="file names in ../shared/data/styles")
    p.add_argument("--gatys-iters", type=positive_int, help="Gatys with N iterations per stage instead of the default")
    p.add_argument("--sheet", type=Path, help="a JPEG: rows photos x paintings; photo | painting | Gatys | WCT | AdaIN"
                                              " | each --also")
    p.add_argument("--also", action="append", default=[], type=method_levels, metavar="METHOD:LEVELS",
                   help="one more row: a method on other levels, e.g. adain:relu4_1,relu1_1 (repeatable)")
    p.add_argument("--cell", type=positive_int, default=256, help="the sheet's cell side")
    a = parser.parse_args(argv)
    a.argv = argv
    try:
        a.run(a)
    except LossnetError as e:  # bad input: one line, exit 2, as the CLI
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
