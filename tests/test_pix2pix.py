"""pix2pix on the generator loop: training lowers L1, exact resume, any-size apply, test page, bad inputs."""
from __future__ import annotations

import warnings

import pytest
import torch

from conftest import files_in, photo
from lossnet.cli import main
from lossnet.io import load_image, save_image
from lossnet.pix2pix import (Pix2PixConfig, Pix2PixTask, apply, build_generator, l1_psnr, load_generator,
                             paired_data, save_generator)
from lossnet.train import TrainConfig, train

TINY = ["--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32"]


def pair(name: str) -> torch.Tensor:
    """A | B side by side: B is the photo, A its colour negative (a translation a tiny net learns fast)."""
    b = photo(name, 32)[..., :32, :32]
    return torch.cat([1 - b, b], -1)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        save_image(pair(name), folder / f"{name}.png")
    return folder


def cfg(data, iters=30, gan="vanilla", every=10, lr=1e-3):
    return Pix2PixConfig(data=str(data), netG="resnet_6blocks", ngf=4, ndf=4, load_size=36, crop_size=32,
                         gan_mode=gan, train=TrainConfig(iters=iters, lr=lr, betas=(0.5, 0.999), decay_from=iters // 2,
                                                         checkpoint_every=every, sample_every=every, progress=False))


def mean_l1(net, data) -> float:
    ds = paired_data(cfg(data), evaluation=True)
    return sum(l1_psnr(apply(net, a[None]), b[None])[0] for a, b in (ds.sample(i) for i in range(len(ds)))) / len(ds)


def test_short_training_lowers_l1(tmp_path, pairs_dir):
    task = Pix2PixTask(cfg(pairs_dir))
    before = mean_l1(task.generator.train(), pairs_dir)
    rows = train(task, tmp_path / "run", task.cfg.train)
    assert {"d_fake", "d_real", "gan", "l1"} <= set(rows[-1])
    assert mean_l1(task.generator.train(), pairs_dir) < 0.8 * before
    assert len(list((tmp_path / "run" / "samples").iterdir())) == 3


def test_resume_goes_on_from_the_checkpoint(tmp_path, pairs_dir):
    """A smoke check: the GAN task resumes, discriminator and all (tests/test_train.py proves resume exact)."""
    first = Pix2PixTask(cfg(pairs_dir, iters=2, every=2))
    train(first, tmp_path, first.cfg.train)
    rest = Pix2PixTask(cfg(pairs_dir, iters=3, every=2))
    assert [r["step"] for r in train(rest, tmp_path, rest.cfg.train, resume=True)] == [3]


def test_apply_any_size_and_half_roundtrip(tmp_path):
    net = build_generator({"netG": "unet_128", "ngf": 4, "norm": "batch", "dropout": True})
    for h, w in ((37, 50), (130, 20)):
        assert apply(net, torch.rand(1, 3, h, w)).shape == (1, 3, h, w)
    path = save_generator(net, tmp_path / "g.safetensors", {"netG": "unet_128", "ngf": 4, "norm": "batch",
                                                           "dropout": True}, half=True)
    loaded = load_generator(path)
    x = torch.rand(1, 3, 64, 64)
    assert (apply(loaded, x, seed=1) - apply(net, x, seed=1)).abs().max() < 0.02  # fp16 storage only


def test_cli_train_apply_test(tmp_path, pairs_dir, capsys):
    run = tmp_path / "run"
    assert main(["pix2pix", "train", "--data", str(pairs_dir), "-o", str(run), "--iters", "2",
                 "--checkpoint-every", "1", "--quiet", *TINY]) == 0
    assert {"model.safetensors", "checkpoint.safetensors", "log.csv", "samples"} <= set(files_in(run))
    assert main(["pix2pix", "apply", str(pairs_dir / "coffee.png"), "--model", str(run), "-o", str(tmp_path / "o.png")]) == 0
    assert load_image(tmp_path / "o.png").shape == load_image(pairs_dir / "coffee.png").shape  # 21x64: any size
    assert main(["pix2pix", "apply", str(pairs_dir), "--model", str(run), "-o", str(tmp_path / "folder")]) == 0
    assert files_in(tmp_path / "folder") == files_in(pairs_dir)
    pytest.importorskip("imageio_ffmpeg")
    from lossnet.video import Frames, write_frames
    write_frames((pair("coffee") for _ in range(3)), tmp_path / "clip.mp4", fps=5)
    assert main(["pix2pix", "apply", str(tmp_path / "clip.mp4"), "--model", str(run), "-o", str(tmp_path / "o.mp4")]) == 0
    assert Frames(tmp_path / "o.mp4").count == 3
    assert main(["pix2pix", "test", "--model", str(run), "--data", str(pairs_dir), "-o", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "4 images: mean L1" in out
    page = (tmp_path / "res" / "index.html").read_text()
    assert page.count("<tr>") == 5 and "coffee_output.png" in page
    assert (tmp_path / "res" / "metrics.csv").read_text().splitlines()[-1].startswith("mean,")


def one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_bad_inputs_exit_2(tmp_path, pairs_dir, capsys):
    (tmp_path / "empty").mkdir()
    run = tmp_path / "run_empty"
    assert main(["pix2pix", "train", "--data", str(tmp_path / "empty"), "-o", str(run), "--quiet", *TINY]) == 2
    assert "no image" in one_error(capsys) and not run.exists()
    # a checkpoint of another architecture: resume with another width
    run = tmp_path / "run"
    assert main(["pix2pix", "train", "--data", str(pairs_dir), "-o", str(run), "--iters", "1", "--quiet", *TINY]) == 0
    capsys.readouterr()
    wider = [a if a != "4" else "8" for a in TINY]
    assert main(["pix2pix", "train", "--data", str(pairs_dir), "-o", str(run), "--iters", "2", "--resume",
                 "--quiet", *wider]) == 2
    assert "does not fit" in one_error(capsys)
    # a model file of another kind (an SR network)
    from lossnet.nets.srnet import SRNet
    from lossnet.superres import save_srnet
    sr = save_srnet(SRNet(4, channels=4, blocks=1), tmp_path / "sr.safetensors")
    assert main(["pix2pix", "apply", str(pairs_dir / "coffee.png"), "--model", str(sr), "-o", str(tmp_path / "x.png")]) == 2
    assert "not a pix2pix_generator model" in one_error(capsys) and not (tmp_path / "x.png").exists()


def test_bad_pairs_are_skipped_with_a_warning(tmp_path, capsys):
    """Missing B, halves of different sizes, a corrupt file: each skipped and named; training goes on."""
    root = tmp_path / "ab"
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for name in ("astronaut", "coffee"):
        p = pair(name)
        save_image(p[..., :32], root / "A" / f"{name}.png")
        save_image(p[..., 32:], root / "B" / f"{name}.png")
    save_image(torch.rand(1, 3, 32, 32), root / "A" / "lonely.png")  # no B
    save_image(torch.rand(1, 3, 32, 32), root / "A" / "sizes.png")
    save_image(torch.rand(1, 3, 40, 40), root / "B" / "sizes.png")  # differs in size
    (root / "A" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    save_image(torch.rand(1, 3, 32, 32), root / "B" / "corrupt.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["pix2pix", "train", "--data", str(root), "-o", str(tmp_path / "run"), "--iters", "6",
                     "--batch-size", "2", "--quiet", "--no-flip", *TINY]) == 0
    said = " ".join(str(w.message) for w in caught)
    for name in ("lonely.png", "sizes.png", "corrupt.png"):
        assert name in said
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_bundled_label2photo_paints_windows_darker_than_walls():
    """The shipped model on label maps it never saw (drawn by lossnet.procedural): the output is photo-like
    (not the labels' blue) and its windows are darker than the wall around them, as in the facade photos."""
    from lossnet.pix2pix import apply, load_generator
    from lossnet.procedural import FACADE_CLASSES, facade_labels

    net = load_generator("facades-label2photo")
    for seed in range(2):
        labels = facade_labels(256, seed)
        out = apply(net, labels)[0]

        def where(cls):
            return (labels[0] * 255 - torch.tensor(FACADE_CLASSES[cls]).view(3, 1, 1)).abs().sum(0) < 3

        luminance = out.mean(0)
        assert luminance[where("window")].mean() < luminance[where("facade")].mean() - 0.02
        assert (out[2] - out[0]).mean() < 0.1 < (labels[0, 2] - labels[0, 0]).mean()
        assert torch.equal(labels, facade_labels(256, seed))  # seeded
