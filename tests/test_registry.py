"""The registry of trained model kinds (lossnet.registry): bundled models read from their own files, one loader,
one trainer, one way to run a model on an image, a folder or a video, and a fourth kind that is one module."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import pytest
import torch

from conftest import files_in
from lossnet import registry
from lossnet.cli import main
from lossnet.commands.models import budget
from lossnet.data import StepBatches, photo_crops
from lossnet.errors import LossnetError
from lossnet.features import build_matching
from lossnet.io import load_image, save_image
from lossnet.registry import Kind, option
from lossnet.train import Task, TrainConfig, seeded


# --- a fourth trained method, written as its own module would be (docs/ARCHITECTURE.md, "Add a trained method")
class Negative(torch.nn.Module):
    """A 1x1 convolution that learns the colour negative, 1 - x."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)


@dataclass
class NegativeConfig:
    data: Sequence[str] = option((), "folder of photos (repeatable)", repeat=True, required=True, path=True)
    crop: int = option(16, "training crop side", minimum=1)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(iters=20, lr=0.05, desc="train-negative"))


class NegativeTask(Task):
    def __init__(self, cfg: NegativeConfig):
        self.cfg = cfg
        self.batches = StepBatches(photo_crops(cfg.data, cfg.crop), 2, cfg.train.seed)
        with seeded(cfg.train.seed):
            self.generator = Negative()

    def batch(self, step):
        x = self.batches(step)
        return {"input": x, "target": 1 - x}

    def generator_loss(self, batch, output):
        return {"l1": (output - batch["target"]).abs().mean()}

    def samples(self, batch, output):
        return torch.cat([batch["input"][:1], output[:1].clamp(0, 1)], -1)

    def model_config(self):
        return {}


@torch.no_grad()
def negative(net, images, precision="auto"):
    return net(images).clamp(0, 1)


KIND = Kind(name="negative", stored="negative", title="negative", description="colour negatives (a test's kind)",
            networks=(Negative,), config=NegativeConfig, task=NegativeTask, apply=negative,
            build=lambda sd, config, path: build_matching(Negative, sd, f"the negative network in {path}"))


@pytest.fixture
def fourth_kind():
    registry.register(KIND)
    yield KIND
    registry._REGISTERED.remove(KIND)


def test_a_fourth_trained_method_gets_training_applying_and_listing_from_its_kind(fourth_kind, photos, tmp_path,
                                                                                  capsys):
    model = tmp_path / "negative.safetensors"
    assert main(["train-negative", "--data", str(photos), "--crop", "16", "--iters", "30", "--quiet",
                 "--precision", "fp32", "-o", str(model)]) == 0  # its training command, made from its config
    assert registry.stored_metadata(model)["lossnet_kind"] == "negative"
    assert isinstance(registry.load(model), Negative)
    assert main(["apply", "--model", str(model), str(photos), "-o", str(tmp_path / "out")]) == 0
    assert files_in(tmp_path / "out") == files_in(photos)
    photo, result = load_image(photos / "0.png"), load_image(tmp_path / "out" / "0.png")
    assert (result - (1 - photo)).abs().mean() < (photo - (1 - photo)).abs().mean() / 2  # it learnt something
    assert main(["models"]) == 0
    assert "negative: colour negatives (a test's kind)\n  (none bundled)" in capsys.readouterr().out
    cfg = NegativeConfig(data=[str(photos)], train=TrainConfig(iters=2, progress=False))
    run = registry.train_model(NegativeTask(cfg), cfg, tmp_path / "run")  # a folder: the model goes in it
    assert run == tmp_path / "run" / "model.safetensors" and "checkpoint.safetensors" in files_in(tmp_path / "run")
    capsys.readouterr()
    assert main(["export", str(model), "--onnx", str(tmp_path / "n.onnx")]) == 2  # no graph: said, not crashed
    assert capsys.readouterr().err.strip() == "error: cannot export a negative model to ONNX"


def test_models_lists_every_kind_and_each_bundled_model_from_its_own_file(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for kind in registry.kinds():
        assert f"{kind.name}: {kind.description}" in out
    models = registry.bundled()
    assert {"starry", "starry-lite", "wave", "scream-kandinsky", "x4-pixel", "x4-feature", "x8-pixel",
            "x8-feature", "facades-label2photo"} <= set(models)
    for name, model in models.items():  # one convention: the name is the file's stem, the kind is in the file
        assert name in out and model.path == registry.MODELS_DIR / f"{name}.safetensors"
        assert model.kind.stored == registry.stored_metadata(model.path)["lossnet_kind"] and model.description
    for name, model in registry.bundled("style").items():
        assert registry.load(name).n_styles == len(model.config["styles"])
    assert registry.bundled("sr")["x8-pixel"].config["scale"] == 8
    # a warm start from a file on the training machine is listed by the file's name
    assert budget({"training": {"steps": 1000, "crop": 256, "init_from": "/root/runs/a/starry-lite.safetensors"}}) \
        == "1000 steps of 256 px from starry-lite.safetensors"


def test_a_model_file_says_its_kind_and_another_kind_is_refused(tmp_path):
    from lossnet.nets.srnet import SRNet
    sr = registry.save(SRNet(4, channels=4, blocks=1), tmp_path / "sr.safetensors", SRNet(4, channels=4, blocks=1).config())
    assert isinstance(registry.load(sr), SRNet)  # no kind asked: the file's
    with pytest.raises(LossnetError, match="is a srnet model, not a transformer model"):
        registry.load(sr, "style")
    with pytest.raises(LossnetError, match=r"no sr model 'x4-pixle'.*did you mean x4-pixel"):
        registry.load("x4-pixle", "sr")
    (tmp_path / "run").mkdir()
    with pytest.raises(LossnetError, match="run folder .* has no model.safetensors"):
        registry.load(tmp_path / "run")


def test_a_description_rewrites_the_metadata_only(tmp_path):
    import shutil
    path = shutil.copy(registry.MODELS_DIR / "starry-lite.safetensors", tmp_path / "m.safetensors")

    def tensors(p):
        from safetensors import safe_open
        with safe_open(str(p), "pt") as f:
            return {k: hashlib.sha256(f.get_tensor(k).view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
                    for k in f.keys()}
    before = tensors(path)
    registry.set_description(path, "a copy")
    assert tensors(path) == before and registry.stored_metadata(path)["lossnet_description"] == "a copy"


def test_bad_combinations_are_refused_before_anything_is_written(photos, tmp_path):
    def invert(images):
        return 1 - images
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_file").write_text("not a folder")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    cases = {
        (photos, out / "x.png"): "is a folder: the output must be a folder too",
        (clip, out / "x.png"): "is a video: the output needs a video suffix",
        (photos, out / "a_file"): "exists and is not a folder",
        (photos, photos): "is the input",
        (photos / "0.png", photos / "0.png"): "is the input",
        (photos / "0.png", out / "x.gif"): "cannot write",
        (photos / "0.png", out / "no" / "x.png"): "output folder does not exist",
    }
    for (src, dst), message in cases.items():
        with pytest.raises(LossnetError, match=message):
            registry.apply_to_path(invert, src, dst)
    with pytest.raises(LossnetError, match="needs a video or a folder of frames"):
        from lossnet.temporal import TemporalConfig
        registry.apply_to_path(invert, photos / "0.png", out / "x.png", temporal=TemporalConfig())
    same = tmp_path / "same"
    same.mkdir()
    save_image(torch.rand(1, 3, 20, 20), same / "a.png")
    save_image(torch.rand(1, 3, 20, 20), same / "a.jpg")
    with pytest.raises(LossnetError, match="several images named a"):
        registry.apply_to_path(invert, same, out / "results")
    assert files_in(out) == ["a_file"]
    assert [str(registry.apply_to_path(invert, photos, out / "inverted"))] == [f"3 images to {out / 'inverted'}/"]
