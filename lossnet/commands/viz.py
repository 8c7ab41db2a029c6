"""`lossnet classify IMAGE` and `lossnet viz METHOD ...`: looking inside an ImageNet classifier (CS231n lecture 12).

Every `viz` method writes one PNG figure (atomically) and prints `wrote PATH`. Feature inversion is
`lossnet invert` (lossnet.style), shared with the style commands.
"""
from __future__ import annotations

import argparse

from ..cli import image_side, nonneg, nonneg_int, positive, positive_int, unit_interval
from ..errors import LossnetError


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("classifier")
    g.add_argument("--model", default="efficientnet-lite0",
                   help="efficientnet-lite0 (offline, default), vgg16 or vgg19 (need ImageNet weights with their classifier)")
    g.add_argument("--weights", help="state dict file for --model (default: the installed / cached weights)")
    g.add_argument("--size", type=image_side,
                   help="side of the square input crop (default: the model's, 224); deepdream: longest side (384)")


def _start(args, write: bool = True):
    """Check the output can be written, then load the classifier: failures come before any work."""
    from ..classifier import load_classifier
    from ..io import check_writable

    if write:
        check_writable(args.output)
    return load_classifier(args.model, args.weights)


def _image(args, model, name: str = "image"):
    from ..io import load_image
    return model.prepare(load_image(getattr(args, name)), args.size)


def _class(model, x, target):
    """(index, name, probability) of `target` (a name or index; None: the top class) for the first image."""
    index = model.class_index(target) if target is not None else model.top(x, 1)[0][0][0]
    return index, model.classes[index], float(model(x).softmax(1)[0, index])


def _with_flags(loop, args):
    """A method's own pixel loop (its optimiser and description) with the steps, step size and progress of the flags."""
    from dataclasses import replace
    return replace(loop, iters=args.iters, lr=args.lr, progress=not args.quiet)


def _wrote(path) -> None:
    print(f"wrote {path}")


def cmd_classify(args) -> None:
    model = _start(args, write=False)
    for index, name, p in model.top(_image(args, model), args.top)[0]:
        print(f"{p:7.3f}  {name} ({index})")


def cmd_filters(args) -> None:
    from ..io import save_image
    from ..viz import filters
    _wrote(save_image(filters(_start(args)), args.output))


def cmd_activations(args) -> None:
    from ..io import save_image
    from ..viz import activation_grid, activations
    model = _start(args)
    model.layer(args.layer)
    _wrote(save_image(activation_grid(activations(model, _image(args, model), args.layer), args.count), args.output))


def cmd_saliency(args) -> None:
    from ..viz import saliency
    from ..viz.figures import overlay, panels, robust
    model = _start(args)
    x = _image(args, model)
    index, name, p = _class(model, x, args.target)
    heat = robust(saliency(model, x, index)[0])
    _wrote(panels([(f"{name} (p={p:.2f})", x), ("saliency", heat), ("overlay", overlay(x, heat))], args.output))


def cmd_guided(args) -> None:
    from ..viz import Neuron, guided_backprop
    from ..viz.figures import panels, robust, signed_image
    model = _start(args)
    x = _image(args, model)
    if (args.layer is None) != (args.channel is None):
        raise LossnetError("a neuron needs both --layer and --channel")
    if args.layer is not None:
        target, label = Neuron(args.layer, args.channel), f"{args.layer} channel {args.channel}"
    else:
        index, name, p = _class(model, x, args.target)
        target, label = index, f"{name} (p={p:.2f})"
    grad = guided_backprop(model, x, target)
    _wrote(panels([(label, x), ("guided backprop", signed_image(grad)),
                   ("guided saliency", robust(grad.abs().amax(1)[0]))], args.output))


def cmd_occlusion(args) -> None:
    from ..viz import occlusion
    from ..viz.figures import overlay, panels
    model = _start(args)
    x = _image(args, model)
    index, name, p = _class(model, x, args.target)
    drop = occlusion(model, x, index, args.patch, args.stride, args.fill, progress_bar=not args.quiet)[0]
    _wrote(panels([(f"{name} (p={p:.2f})", x), (f"drop in p, {args.patch}px patches", drop),
                   ("overlay", overlay(x, drop.clamp(min=0)))], args.output))


def cmd_class_model(args) -> None:
    import torch

    from ..io import save_image
    from ..viz import ClassModelConfig, class_model
    from ..viz.class_model import grey_noise
    model = _start(args)
    index = model.class_index(args.target)
    cfg = ClassModelConfig(size=args.size or model.input_size, l2_weight=args.l2_weight, jitter=args.jitter,
                           blur_every=args.blur_every, blur_sigma=args.blur_sigma,
                           clip_percentile=args.clip_percentile, seed=args.seed)
    cfg.loop = _with_flags(cfg.loop, args)
    image = class_model(model, index, cfg)
    with torch.no_grad():
        before, after = float(model(grey_noise(cfg.size, cfg.seed))[0, index]), float(model(image)[0, index])
    print(f"{model.classes[index]} logit {before:.2f} -> {after:.2f}")
    _wrote(save_image(image, args.output))


def cmd_fool(args) -> None:
    from ..viz import fooling
    from ..viz.figures import panels
    model = _start(args)
    x = _image(args, model)
    index = model.class_index(args.target)
    result = fooling(model, x, index, eps=args.eps / 255, iters=args.iters, progress=not args.quiet)
    before, after = model.top(x, 1)[0][0], model.top(result.images, 1)[0][0]
    verdict = "fooled" if bool(result.success[0]) else f"NOT fooled within {args.iters} steps"
    print(f"{verdict}: {before[1]} -> {after[1]} (p={after[2]:.2f}) in {result.steps} steps, "
          f"L-inf {float(result.linf[0]) * 255:.2f}/255, L2 {float(result.l2[0]):.3f}")
    change = (0.5 + 10 * (result.images - x)).clamp(0, 1)
    _wrote(panels([(f"{before[1]} (p={before[2]:.2f})", x), (f"{after[1]} (p={after[2]:.2f})", result.images),
                   ("change x10", change)], args.output))


def cmd_deepdream(args) -> None:
    from ..io import load_image, save_image
    from ..viz import DreamConfig, deepdream
    model = _start(args)
    model.layer(args.layer)
    cfg = DreamConfig(layer=args.layer, octaves=args.octaves, octave_scale=args.octave_scale, jitter=args.jitter,
                      seed=args.seed)
    cfg.loop = _with_flags(cfg.loop, args)
    _wrote(save_image(deepdream(model, load_image(args.image, args.size or 384), cfg), args.output))


def _thumbs(images, side: int = 64):
    import torch

    from ..io import resize
    return torch.cat([resize(im[None] if im.dim() == 3 else im, (side, side)) for im in images])


def cmd_neighbors(args) -> None:
    import torch

    from ..viz import load_folder, nearest_neighbors
    from ..viz.figures import image_rows
    model = _start(args)
    query = _image(args, model, "query")
    paths, images = load_folder(args.folder, model, args.size)
    found = nearest_neighbors(model, query, images, args.k)
    rows = []
    for space, (indices, distances) in found.items():
        shown = _thumbs(torch.cat([query, images[indices]]), 96)
        captions = ["query"] + [f"{paths[i].stem[:16]}\n{d:.3g}" for i, d in zip(indices.tolist(), distances.tolist())]
        rows.append((space, shown, captions))
    _wrote(image_rows(rows, args.output))


def cmd_embedding(args) -> None:
    from ..viz import embed, load_folder, penultimate_features
    from ..viz.figures import thumbnail_map
    model = _start(args)
    paths, images = load_folder(args.folder, model, args.size)
    points = embed(penultimate_features(model, images), args.method, args.seed)
    title = f"{args.method.upper()} of {model.name} {model.penultimate} ({len(paths)} images)"
    _wrote(thumbnail_map(points, _thumbs(images, 40), args.output, title))


def cmd_patches(args) -> None:
    from ..viz import load_folder, max_patches
    from ..viz.figures import image_rows
    model = _start(args)
    model.layer(args.layer)
    paths, images = load_folder(args.folder, model, args.size)
    found = max_patches(model, images, args.layer, args.channel, args.k)
    captions = [f"{paths[p.image].stem[:16]}\n{p.value:.3g}" for p in found]
    _wrote(image_rows([(f"{args.layer}:{args.channel}", _thumbs([p.pixels for p in found]), captions)], args.output))


def _method(vsub, name: str, func, help_text: str, inputs: tuple[str, ...] = ("image",)) -> argparse.ArgumentParser:
    p = vsub.add_parser(name, help=help_text, description=help_text)
    for arg in inputs:
        p.add_argument(arg)
    p.add_argument("-o", "--output", required=True, help="PNG figure to write")
    add_model_args(p)
    p.set_defaults(func=func)
    return p


def register(sub) -> None:
    p = sub.add_parser("classify", help="top ImageNet classes of an image",
                       description="Print the most probable ImageNet classes of IMAGE with their probabilities.")
    p.add_argument("image")
    p.add_argument("--top", type=positive_int, default=5)
    add_model_args(p)
    p.set_defaults(func=cmd_classify)

    viz = sub.add_parser("viz", help="visualise what a classifier sees (CS231n lecture 12)",
                         description="Each method writes one PNG figure; feature inversion is `lossnet invert`.")
    vsub = viz.add_subparsers(dest="method", metavar="METHOD", required=True)
    _method(vsub, "filters", cmd_filters, "the first layer's filters as a grid", ())
    p = _method(vsub, "activations", cmd_activations, "activation maps of one layer for an image")
    p.add_argument("--layer", default="stem", help="e.g. stem, blocks.0-15, head (vgg: relu3_3, ...)")
    p.add_argument("--count", type=positive_int, default=32, help="how many channels (the most active)")
    for name, func, text in [("saliency", cmd_saliency, "saliency map: max over channels of |d score / d pixel|"),
                             ("guided", cmd_guided, "guided backprop for a class or one intermediate neuron"),
                             ("occlusion", cmd_occlusion, "occlusion sensitivity: drop in the class probability")]:
        p = _method(vsub, name, func, text)
        p.add_argument("--target", help="class name or index (default: the top class)")
        if name == "guided":
            p.add_argument("--layer", help="intermediate layer of the neuron (with --channel)")
            p.add_argument("--channel", type=int, help="channel of the neuron; its strongest position is used")
        if name == "occlusion":
            p.add_argument("--patch", type=positive_int, default=16, help="side of the grey square (default 16)")
            p.add_argument("--stride", type=positive_int, default=8, help="step between squares (default 8)")
            p.add_argument("--fill", type=unit_interval, default=0.5, help="grey level of the square, in [0, 1] (default 0.5)")
            p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = _method(vsub, "class-model", cmd_class_model, "class visualisation: an image the model scores as CLASS", ("target",))
    p.add_argument("--iters", type=positive_int, default=200)
    p.add_argument("--lr", type=positive, default=0.02)
    p.add_argument("--l2-weight", type=nonneg, default=1.0)
    p.add_argument("--jitter", type=nonneg_int, default=16, help="pixels")
    p.add_argument("--blur-every", type=nonneg_int, default=10, help="steps between Gaussian blurs (0: never)")
    p.add_argument("--blur-sigma", type=positive, default=0.5)
    p.add_argument("--clip-percentile", type=nonneg, default=10.0, help="reset the %% of pixels nearest grey")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")

    p = _method(vsub, "fool", cmd_fool, "fooling image: a small change that makes the model see --target")
    p.add_argument("--target", required=True, help="class name or index to be seen")
    p.add_argument("--eps", type=nonneg, default=8.0, help="largest change per pixel, in 1/255 (default 8)")
    p.add_argument("--iters", type=positive_int, default=100)
    p.add_argument("--quiet", action="store_true")

    p = _method(vsub, "deepdream", cmd_deepdream, "DeepDream: amplify what a layer sees in an image")
    p.add_argument("--layer", default="blocks.8")
    p.add_argument("--iters", type=positive_int, default=10, help="steps per octave")
    p.add_argument("--lr", type=positive, default=0.01)
    p.add_argument("--octaves", type=positive_int, default=3)
    p.add_argument("--octave-scale", type=positive, default=1.4, help="size ratio between octaves (> 1)")
    p.add_argument("--jitter", type=nonneg_int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")

    p = _method(vsub, "neighbors", cmd_neighbors, "nearest neighbours of QUERY in FOLDER: pixels vs features",
                ("query", "folder"))
    p.add_argument("--k", type=positive_int, default=5)
    p = _method(vsub, "embedding", cmd_embedding, "PCA or t-SNE map of a folder's penultimate features", ("folder",))
    p.add_argument("--method", default="tsne", choices=["pca", "tsne"])
    p.add_argument("--seed", type=int, default=0)
    p = _method(vsub, "patches", cmd_patches, "maximally activating patches of one channel over a folder", ("folder",))
    p.add_argument("--layer", default="blocks.5")
    p.add_argument("--channel", type=int, default=0)
    p.add_argument("--k", type=positive_int, default=8)
