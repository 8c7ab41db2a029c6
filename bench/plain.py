"""Plain reference implementations, written from the papers with stock torch modules and no fast paths: what
lossnet's own code is checked against (speed in bench_big.py, correctness in reference_train).

* `PlainTransformerNet`: pytorch/examples' fast-neural-style network (Johnson et al. with instance norm,
  reflection padding and nearest-upsampling convs), its layer names too, so `lossnet.fast.examples_keys` maps
  its state dict onto lossnet's `TransformerNet(global_skip=False)`: 0-255 in, 0-255 out.
* `PlainVGG`: VGG16's `features` as one `nn.Sequential` in NCHW fp32, the taps read by index.
* `plain_objective`: Johnson et al.'s loss as lossnet defines its terms (relative squared errors; Gram divided by
  C*H*W; TV as the mean squared neighbour difference), computed directly.
* `reference_train`: Adam on that loss over the batches lossnet's trainer sees; `python bench/plain.py` runs it
  beside lossnet's trainer from the same start and prints both objectives at every step.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x):
        if self.upsample:
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x):
        return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))


class PlainTransformerNet(nn.Module):
    """pytorch/examples' TransformerNet: 0-255 in, the last conv's output (0-255) out."""

    def __init__(self, channels=(32, 64, 128), n_residual: int = 5):
        super().__init__()
        c1, c2, c3 = channels
        self.conv1, self.in1 = ConvLayer(3, c1, 9), nn.InstanceNorm2d(c1, affine=True)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, 2), nn.InstanceNorm2d(c2, affine=True)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, 2), nn.InstanceNorm2d(c3, affine=True)
        for i in range(n_residual):
            setattr(self, f"res{i + 1}", ResidualBlock(c3))
        self.n_residual = n_residual
        self.deconv1, self.in4 = ConvLayer(c3, c2, 3, upsample=True), nn.InstanceNorm2d(c2, affine=True)
        self.deconv2, self.in5 = ConvLayer(c2, c1, 3, upsample=True), nn.InstanceNorm2d(c1, affine=True)
        self.deconv3 = ConvLayer(c1, 3, 9)

    def forward(self, x):
        x = torch.relu(self.in1(self.conv1(x)))
        x = torch.relu(self.in2(self.conv2(x)))
        x = torch.relu(self.in3(self.conv3(x)))
        for i in range(self.n_residual):
            x = getattr(self, f"res{i + 1}")(x)
        x = torch.relu(self.in4(self.deconv1(x)))
        x = torch.relu(self.in5(self.deconv2(x)))
        return self.deconv3(x)


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class PlainVGG(nn.Module):
    """VGG16 `features` with lossnet's loss-network weights (the same file), taps by name."""

    def __init__(self, layers):
        super().__init__()
        from lossnet.nets.vgg import layer_index
        from lossnet.weights import vgg_weights

        weights = vgg_weights("vgg16", quiet=True)
        modules, cin = [], 3
        for v in VGG16:
            if v == "M":
                modules.append(nn.MaxPool2d(2, 2, ceil_mode=weights.ceil_mode))
            else:
                modules += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.index = {name: layer_index("vgg16", name) for name in layers}
        self.features = nn.Sequential(*modules[:max(self.index.values()) + 1])
        self.load_state_dict({k: v for k, v in weights.state_dict.items() if k in self.state_dict()})
        self.preprocess = weights.preprocess
        self.requires_grad_(False).eval()

    def forward(self, image):
        out, x = {}, self.preprocess(image)
        wanted = {i: name for name, i in self.index.items()}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def relative(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((x - target)^2) / mean(target^2), per image, averaged."""
    err = (x - target).pow(2).flatten(1).mean(1)
    return (err / (target.pow(2).flatten(1).mean(1) + 1e-8)).mean()


def plain_objective(vgg: PlainVGG, cfg, photos: torch.Tensor, output: torch.Tensor, style_grams: dict) -> dict:
    """{"content", "style", "tv"} of `output` for `photos`, weighted as `cfg` (a FastStyleConfig) says."""
    with torch.no_grad():
        want = vgg(photos)
    got = vgg(output)
    content = sum(relative(got[k], want[k]) for k in cfg.content_layers)
    weights = cfg.style_layer_weights or [1 / len(cfg.style_layers)] * len(cfg.style_layers)
    style = sum(w * relative(gram(got[k]), style_grams[k]) for w, k in zip(weights, cfg.style_layers))
    dy, dx = output[..., 1:, :] - output[..., :-1, :], output[..., :, 1:] - output[..., :, :-1]
    return {"content": cfg.content_weight * content, "style": cfg.style_weight * style,
            "tv": cfg.tv_weight * (dy.pow(2).mean() + dx.pow(2).mean())}


def reference_train(cfg, steps: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """Train from one start with lossnet's trainer and with the plain loop above, on the same batches, in fp32:
    (lossnet's objective per step, the plain loop's). The start: a seeded `PlainTransformerNet`, copied into
    lossnet's `TransformerNet(global_skip=False)`."""
    import dataclasses

    from lossnet import fast
    from lossnet.io import load_image
    from lossnet.nets.transformer import TransformerNet
    from lossnet.train import train

    torch.manual_seed(seed)
    plain = PlainTransformerNet()
    ours = TransformerNet(global_skip=False)
    ours.load_state_dict(fast.examples_keys(plain.state_dict()))
    cfg = dataclasses.replace(cfg, global_skip=False,
                              train=dataclasses.replace(cfg.train, iters=steps, precision="fp32", workers=0,
                                                        progress=False, checkpoint_every=0, sample_every=0, seed=seed))
    task = fast.FastStyleTask(cfg, generator=ours, quiet=True)
    import tempfile
    with tempfile.TemporaryDirectory() as run:
        lossnet_rows = train(task, run, cfg.train)
    vgg = PlainVGG(list(dict.fromkeys([*cfg.content_layers, *cfg.style_layers])))
    with torch.no_grad():
        style = load_image(cfg.styles[0], cfg.style_size)
        grams = {k: gram(v) for k, v in vgg(style).items()}
    opt = torch.optim.Adam(plain.parameters(), lr=cfg.train.lr, betas=cfg.train.betas)
    plain_rows = []
    for step in range(steps):
        photos = task.batch(step)["input"]
        output = plain(photos * 255) / 255
        terms = plain_objective(vgg, cfg, photos, output, grams)
        total = sum(terms.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        plain_rows.append(float(total.detach()))
    return [r["total"] for r in lossnet_rows], plain_rows


def main(argv=None) -> None:
    import argparse

    from lossnet.fast import FastStyleConfig

    p = argparse.ArgumentParser(prog="plain.py", description="lossnet's style trainer against the plain loop")
    p.add_argument("--style", default=str(ROOT.parent / "shared" / "data" / "styles" / "starry_night.jpg"))
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "photos" / "BSDS500" / "train"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--crop", type=int, default=128)
    a = p.parse_args(argv)
    cfg = FastStyleConfig(styles=[a.style], data=[a.data], crop=a.crop, style_weight=20.0)
    ours, plain = reference_train(cfg, a.steps)
    print("| step | lossnet | plain | difference |\n|---|---|---|---|")
    for step, (x, y) in enumerate(zip(ours, plain), 1):
        print(f"| {step} | {x:.4f} | {y:.4f} | {100 * (x - y) / y:+.2f} % |")


if __name__ == "__main__":
    main(sys.argv[1:])
