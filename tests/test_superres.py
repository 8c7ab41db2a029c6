"""Super-resolution on the generator loop: shapes, training, resume, CLI and its bad inputs (tiny and fast)."""
from __future__ import annotations

import pytest
import torch

from conftest import files_in, photo
from lossnet.cli import main
from lossnet.errors import LossnetError
from lossnet.io import save_image
from lossnet.nets.srnet import SRNet
from lossnet.superres import SRConfig, SRTask, load_srnet, save_srnet, upscale
from lossnet.tiling import tiled
from lossnet.train import TrainConfig, train


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory):
    """Four small real photos (scikit-image), 48-64 px."""
    folder = tmp_path_factory.mktemp("hr")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        save_image(photo(name, 64), folder / f"{name}.png")
    return folder


def small_net(scale=4):
    torch.manual_seed(0)
    return SRNet(scale, channels=8, blocks=1)


def cfg(hr_dir, loss="pixel", iters=30, lr=1e-4, **kw):
    return SRConfig(data=[str(hr_dir)], scale=4, loss=loss, crop=32, batch_size=2, channels=8, blocks=1,
                    train=TrainConfig(iters=iters, lr=lr, checkpoint_every=kw.pop("every", 10), sample_every=0,
                                      progress=False), **kw)


@pytest.mark.parametrize("scale,h,w", [(4, 7, 9), (8, 5, 11), (4, 13, 6)])
def test_output_exactly_scale_times_odd_input(scale, h, w):
    net = small_net(scale).eval()
    x = torch.rand(1, 3, h, w)
    assert upscale(net, x).shape[-2:] == (h * scale, w * scale)
    assert upscale(None, x, scale).shape[-2:] == (h * scale, w * scale)


def test_tiled_matches_whole_for_a_pointwise_fn():
    x = torch.rand(1, 3, 37, 53)
    fn = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")
    assert torch.allclose(tiled(fn, x, tile=16, overlap=4, scale=2), fn(x), atol=1e-6)


def test_tiles_keep_the_size_and_stay_close():
    torch.manual_seed(0)
    net = SRNet(4, channels=8, blocks=1, norm="none").eval()  # instance norm would see each tile's own statistics
    with torch.no_grad():  # give the zero-initialised tail something to do
        net.tail[1].weight.normal_(0, 0.01)
    x = photo("astronaut", 48)
    whole, tiles = upscale(net, x, tile=0), upscale(net, x, tile=20, overlap=8)
    assert tiles.shape == whole.shape == (1, 3, 192, 192)
    assert (tiles - whole).abs().mean() < 0.15 * (whole - upscale(None, x)).abs().mean()  # seams only where receptive fields cross tiles


def test_30_steps_lower_the_feature_loss(hr_dir, hed):
    c = cfg(hr_dir, "feature", every=30)
    task = SRTask(c, small_net(), quiet=True)
    probe = task.batch(0)

    def loss():
        with torch.no_grad():
            return float(sum(task.generator_loss(probe, task.generator.train()(probe["input"])).values()))

    before = loss()
    train(task, hr_dir.parent / "run_feature", c.train)
    assert loss() < before


def test_feature_plus_pixel_is_the_weighted_sum_of_both_losses(hr_dir, hed):
    """`--loss feature+pixel` trains on both terms, each with its own weight, on the same batch."""
    def terms(loss, **kw):
        task = SRTask(cfg(hr_dir, loss, **kw), small_net(), quiet=True)
        probe = task.batch(0)
        with torch.no_grad():
            return {k: float(v) for k, v in task.generator_loss(probe, task.generator.eval()(probe["input"])).items()}

    feature, pixel = terms("feature"), terms("pixel")
    both = terms("feature+pixel", content_weight=2.0, pixel_weight=0.5)
    assert set(both) == set(feature) | set(pixel) and len(both) == len(feature) + len(pixel)
    for name, value in feature.items():
        assert both[name] == pytest.approx(2.0 * value, rel=1e-5)
    assert both["pixel"] == pytest.approx(0.5 * pixel["pixel"], rel=1e-5) and pixel["pixel"] > 0


def test_resume_goes_on_from_the_checkpoint(tmp_path, hr_dir):
    """A smoke check: the SR task resumes (tests/test_train.py proves resume exact on the loop itself)."""
    first = SRTask(cfg(hr_dir, iters=2, every=2), small_net())
    train(first, tmp_path, first.cfg.train)
    rest = SRTask(cfg(hr_dir, iters=3, every=2), small_net())
    assert [r["step"] for r in train(rest, tmp_path, rest.cfg.train, resume=True)] == [3]


def test_model_roundtrip_and_wrong_scale(tmp_path):
    net = small_net()
    path = save_srnet(net, tmp_path / "m.safetensors")
    loaded = load_srnet(path, scale=4)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(LossnetError, match="x4 super-resolution, not x8"):
        load_srnet(path, scale=8)
    with pytest.raises(LossnetError, match="at least 5 pixels"):
        upscale(loaded, torch.rand(1, 3, 4, 9))


def test_cli_superres_model_bicubic_and_folder(tmp_path, astronaut_png, capsys):
    model = save_srnet(small_net(), tmp_path / "m.safetensors")
    assert main(["superres", str(astronaut_png), "--model", str(model), "-o", str(tmp_path / "o.png")]) == 0
    assert main(["superres", str(astronaut_png), "--method", "bicubic", "--scale", "8", "-o", str(tmp_path / "b.png")]) == 0
    from lossnet.io import load_image
    assert load_image(tmp_path / "o.png").shape[-2:] == tuple(4 * s for s in load_image(astronaut_png).shape[-2:])
    assert load_image(tmp_path / "b.png").shape[-1] == 8 * load_image(astronaut_png).shape[-1]
    assert main(["superres", str(astronaut_png.parent), "--model", str(model), "-o", str(tmp_path / "dir")]) == 0
    assert files_in(tmp_path / "dir") == sorted(p.stem + ".png" for p in astronaut_png.parent.iterdir())


def test_cli_superres_video_keeps_frames_and_fps_at_four_times_the_size(tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    from lossnet.video import Frames, write_frames
    clip = tmp_path / "clip.mp4"
    write_frames((photo("astronaut", 24)[..., :16] for _ in range(3)), clip, fps=6)
    model = save_srnet(small_net(), tmp_path / "m.safetensors")
    assert main(["superres", str(clip), "--model", str(model), "-o", str(tmp_path / "big.mp4")]) == 0
    assert "(3 frames at 6 fps) at x4" in capsys.readouterr().out
    big = Frames(tmp_path / "big.mp4")
    assert big.count == 3 and big.fps == 6 and next(iter(big)).shape[-2:] == (96, 64)


def one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_bad_inputs(tmp_path, astronaut_png, capsys):
    x4 = save_srnet(small_net(4), tmp_path / "x4.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    # a model of another scale
    assert main(["superres", str(astronaut_png), "--model", str(x4), "--scale", "8", "-o", str(out / "a.png")]) == 2
    assert "not x8" in one_error(capsys)
    # a model of another architecture (a pix2pix generator file)
    from lossnet.pix2pix import build_generator, save_generator
    other = save_generator(build_generator({"netG": "unet_128", "ngf": 4, "norm": "batch", "dropout": True}),
                           tmp_path / "g.safetensors", {"netG": "unet_128"})
    assert main(["superres", str(astronaut_png), "--model", str(other), "-o", str(out / "b.png")]) == 2
    assert "not a srnet model" in one_error(capsys)
    # an SRNet file whose weights do not fit its config
    wrong = save_srnet(SRNet(4, channels=16, blocks=1), tmp_path / "w.safetensors", {})
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    with safe_open(str(wrong), "pt") as f:
        meta = f.metadata()
    save_file(load_file(str(x4)), str(wrong), metadata=meta)
    assert main(["superres", str(astronaut_png), "--model", str(wrong), "-o", str(out / "c.png")]) == 2
    assert "do not fit" in one_error(capsys)
    # outputs that do not fit the input: a folder to an image, a video to an image, a folder onto a file
    (tmp_path / "clip.mp4").write_bytes(b"not read: the output is refused first")
    (tmp_path / "a_file").write_text("not a folder")
    for src, dst, message in [(astronaut_png.parent, out / "e.png", "the output must be a folder too"),
                              (tmp_path / "clip.mp4", out / "f.png", "the output needs a video suffix"),
                              (astronaut_png.parent, tmp_path / "a_file", "exists and is not a folder")]:
        assert main(["superres", str(src), "--model", str(x4), "-o", str(dst)]) == 2
        assert message in one_error(capsys)
    # a config error names its flag
    assert main(["train-sr", "--data", str(astronaut_png.parent), "--loss", "pixel", "--crop", "8",
                 "-o", str(out / "m.safetensors"), "--quiet"]) == 2
    assert one_error(capsys) == "error: --crop: 8 gives 2-pixel LR patches at x4: the network needs at least 5 (crop >= 20)"
    # an input smaller than the minimum
    save_image(torch.rand(1, 3, 4, 4), tmp_path / "tiny.png")
    assert main(["superres", str(tmp_path / "tiny.png"), "--model", str(x4), "-o", str(out / "d.png")]) == 2
    assert "pixels per side" in one_error(capsys)
    # an HR folder with no images
    (tmp_path / "empty").mkdir()
    assert main(["train-sr", "--data", str(tmp_path / "empty"), "--loss", "pixel", "-o", str(out / "m.safetensors"),
                 "--quiet"]) == 2
    assert "no images" in one_error(capsys)
    assert files_in(out) == []  # nothing half-written


def test_cli_train_skips_a_corrupt_image_and_resumes(tmp_path, hr_dir, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for p in hr_dir.iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "x4.safetensors"
    args = ["train-sr", "--data", str(data), "--loss", "pixel", "--crop", "32", "--batch-size", "2",
            "--checkpoint-every", "2", "--sample-every", "2", "--quiet", "-o", str(out)]
    with pytest.warns(UserWarning, match="broken.png"):
        assert main(args + ["--iters", "2"]) == 0
    with pytest.warns(UserWarning, match="broken.png"):  # a new run warns again, and goes on
        assert main(args + ["--iters", "4", "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert load_srnet(out, scale=4).upscale == 4
    run = tmp_path / "x4_run"
    assert {"log.csv", "checkpoint.safetensors", "samples", "config.json"} <= set(files_in(run))
    assert len((run / "log.csv").read_text().splitlines()) == 5


def test_eval_sr_table(tmp_path, capsys):
    sets = tmp_path / "sr"
    for name, images in {"SetA": ("astronaut", "coffee"), "SetB": ("chelsea",)}.items():
        (sets / name).mkdir(parents=True)
        for im in images:
            save_image(photo(im, 64), sets / name / f"{im}.png")
    model = save_srnet(small_net(), tmp_path / "m.safetensors")
    assert main(["eval-sr", "--model", str(model), "--data", str(sets)]) == 0
    out = capsys.readouterr().out
    assert "| method | SetA PSNR / SSIM / sharpness | SetB PSNR / SSIM / sharpness |" in out
    bicubic = [line for line in out.splitlines() if line.startswith("| bicubic")][0]
    mine = [line for line in out.splitlines() if line.startswith("| m ")][0]
    assert bicubic.split("|")[2:] == mine.split("|")[2:]  # an untrained residual SRNet is exactly bicubic


def test_downsample_shapes_with_and_without_blur():
    from lossnet.superres import downsample
    hr = torch.rand(2, 3, 24, 40)
    for scale in (4, 8):
        for sigma in (1.0, 0.0):
            assert downsample(hr, scale, sigma).shape == (2, 3, 24 // scale, 40 // scale)
    with pytest.raises(LossnetError, match="multiple of the scale"):
        downsample(torch.rand(1, 3, 30, 40), 4, 0.0)


def test_the_model_file_is_written_at_every_checkpoint_and_warm_starts_a_new_run(tmp_path, hr_dir):
    from lossnet.superres import train_sr
    from lossnet.weights import read_model
    out = tmp_path / "x4.safetensors"
    path = train_sr(cfg(hr_dir, iters=4, every=2), out, tmp_path / "run")
    assert path == out and read_model(out, "srnet")[1]["training"]["steps"] == 4
    warm = cfg(hr_dir, iters=1, lr=1e-12, init_from=str(out))  # a near-zero step: the weights are the file's
    train_sr(warm, tmp_path / "warm.safetensors", tmp_path / "warm_run")
    a, b = load_srnet(out).state_dict(), load_srnet(tmp_path / "warm.safetensors").state_dict()
    assert all((a[k] - b[k]).abs().max() < 1e-3 for k in a)
