"""Temporal video stylisation (lossnet.temporal): flow, warp, masks, blending, the warping error, and the video
commands (`stylize --temporal`, `eval-video`) on tiny clips made in the test."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from conftest import photo, run_cli
from lossnet import fast, temporal as T
from lossnet.data import gaussian_blur
from lossnet.io import save_image
from lossnet.nets.transformer import TransformerNet

pytest.importorskip("cv2")


def shifted_pair(dx: int, dy: int, size: int = 96):
    """Two crops of the astronaut photo: a(x) = b(x + (dx, dy))."""
    image = photo("astronaut", 160)
    a = image[..., 20:20 + size, 20:20 + size]
    b = image[..., 20 - dy:20 - dy + size, 20 - dx:20 - dx + size]
    return a.contiguous(), b.contiguous()


@pytest.mark.parametrize("max_side,method", [(None, "medium"), (64, "medium"), (None, T.FARNEBACK)])
def test_warping_a_shifted_photo_recovers_it_inside_the_mask(max_side, method):
    a, b = shifted_pair(3, 2)
    flow, mask = T.link(a, b, method, max_side)
    assert np.allclose(np.median(flow.reshape(-1, 2), 0), (3, 2), atol=0.25)
    assert mask.mean() > 0.8
    assert mask[:, -3:].max() == 0 and mask[-2:].max() == 0  # those pixels left the frame
    inside = torch.from_numpy(mask).bool()
    error = (T.warp(b, flow) - a).abs().mean(1)[0]
    assert float(error[inside].mean()) < 0.02 < float((b - a).abs().mean())


def test_a_video_moved_by_one_pixel_reads_back_moved_by_one_pixel(tmp_path):
    """Chroma is interpolated when frames are decoded: ffmpeg's default repeats each 4:2:0 chroma sample over
    a 2x2 block fixed to the frame grid, which turns an odd shift into colour flicker (6x this error)."""
    from lossnet.video import Frames, write_frames
    x = photo("astronaut", 192)[..., 40:104, 40:105]
    a, b = x[..., :64].contiguous(), x[..., 1:65].contiguous()  # b(x) = a(x + 1)
    write_frames(iter([a, b]), tmp_path / "shift.mp4", 4)
    first, second = Frames(tmp_path / "shift.mp4")
    assert float((second[..., :-1] - first[..., 1:]).pow(2).mean()) < 6e-5


def square_scene(x: int, side: int = 24, size: int = 80) -> torch.Tensor:
    """A textured square (a piece of coffee) at column x over a static textured background (chelsea)."""
    frame = photo("chelsea", 2 * size)[..., :size, :size].clone()
    patch = photo("coffee", 2 * size)[..., 30:30 + side, 40:40 + side]
    frame[..., 28:28 + side, x:x + side] = patch
    return frame


def test_the_mask_marks_the_occlusions_of_a_moving_square():
    before, after = square_scene(20), square_scene(28)  # the square moves 8 px right
    _, mask = T.link(after, before, "medium")  # the pixels of `after` that `before` shows too
    rows = slice(30, 50)
    assert mask[rows, 20:28].mean() < 0.25  # uncovered: background the square hid in `before`
    assert mask[rows, 32:48].mean() > 0.9  # the square itself, tracked
    assert mask[:, 60:].mean() > 0.9 and mask[:20].mean() > 0.9  # static background
    _, mask = T.link(before, after, "medium")
    assert mask[rows, 44:52].mean() < 0.25  # background that the square covers in `after`


def save_frames(frames, folder, name="{}"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        save_image(f, folder / f"{name.format(i + 1)}.png")
    return folder


def pan(frames: int = 6, size: int = 64, step: float = 1.5) -> list[torch.Tensor]:
    """A subpixel pan across the astronaut photo."""
    from lossnet.io import resize
    image = photo("astronaut", 256)
    return [resize(image[..., 40:40 + 2 * size, int(40 + 2 * step * t):int(40 + 2 * step * t) + 2 * size],
                   (size, size)) for t in range(frames)]


def test_blending_removes_most_of_a_per_frame_flicker_and_strength_0_removes_none():
    frames = pan()
    g = torch.Generator().manual_seed(0)
    flickering = [(f + 0.1 * torch.randn(f.shape, generator=g)).clamp(0, 1) for f in frames]  # fresh every frame
    plain = list(T.stabilise(frames, flickering, T.TemporalConfig(strength=0)))
    stable = list(T.stabilise(frames, flickering, T.TemporalConfig(strength=0.8)))
    assert all(torch.equal(p, f) for p, f in zip(plain, flickering))
    (per_frame, temporal), floor, pairs = T.warping_error(frames, flickering, stable)
    assert pairs == len(frames) - 1
    assert floor < temporal < 0.5 * per_frame


def detail_energy(image: torch.Tensor) -> float:
    return (image - gaussian_blur(image, T.DETAIL_SIGMA)).square().mean().item()


def test_the_blend_keeps_the_strokes_contrast_that_a_plain_average_loses_and_changes_nothing_where_they_agree():
    base = gaussian_blur(photo("coffee", 96), 3.0)  # the picture; its fine detail is the strokes' alone
    g = torch.Generator().manual_seed(0)
    # two paintings of the same frame whose strokes do not line up: the same picture, different fine texture
    old, new = ((base + 0.15 * torch.randn(base.shape, generator=g)).clamp(0, 1) for _ in range(2))
    mask = np.ones(base.shape[-2:], np.float32)
    plain = T.blend(new, old, mask, 0.7)
    kept = T.blend(new, old, mask, 0.7, keep_contrast=True)
    wanted = detail_energy(new)  # the new frame's own detail
    assert detail_energy(plain) < 0.65 * wanted  # w^2 + (1-w)^2 = 0.58 of it
    assert 0.9 * wanted < detail_energy(kept) < 1.1 * wanted
    assert (kept - plain).abs().mean() < 0.1  # the picture is the same; only its detail is restored
    # where the two agree the result is that picture (to rounding); where the flow is not trusted (mask 0), the new one
    assert torch.allclose(T.blend(new, new, mask, 0.7, keep_contrast=True), new, atol=1e-5)
    assert torch.equal(T.blend(new, old, np.zeros_like(mask), 0.7, keep_contrast=True), new)


def test_a_still_video_has_no_warping_error():
    frames = [photo("coffee", 64)] * 3
    (error,), floor, _ = T.warping_error(frames, frames)
    assert error == floor and error < 1e-6


def test_strength_and_preset_are_checked():
    for bad in (dict(strength=1.5), dict(strength=-0.1), dict(preset="slow")):
        with pytest.raises(T.LossnetError):
            T.TemporalConfig(**bad)


# ----------------------------------------------------------------------------- the commands
def tiny_model(path):
    torch.manual_seed(0)
    net = TransformerNet(1, channels=(4, 8, 8), n_residual=1)
    with torch.no_grad():
        net.up[-1].conv.weight.mul_(255)  # output changes in [0, 1] units, as after training
    return fast.save_transformer(net.eval(), path, {"styles": ["a"]})


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """1 s of a panning photo at 12 fps, 48x32, with a 440 Hz tone as its sound track."""
    import imageio_ffmpeg
    from lossnet.video import write_frames

    folder = tmp_path_factory.mktemp("clip")
    silent, path = folder / "silent.mp4", folder / "clip.mp4"
    write_frames((f[..., 16:48, :] for f in pan(12, 48, 1.0)), silent, fps=12)
    made = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(silent), "-f", "lavfi",
                           "-i", "sine=frequency=440:duration=1", "-c:v", "copy", "-c:a", "aac", str(path)],
                          capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"this ffmpeg cannot make a test tone: {made.stderr.strip()[-200:]}")
    return path


def test_a_tiny_clip_round_trips_with_its_audio_frame_count_and_fps(model, clip, tmp_path, capsys):
    from lossnet.video import Frames, has_audio

    out = tmp_path / "out.mp4"
    code, res = run_cli(["stylize", clip, "--model", model, "--temporal", "--batch-size", "5", "-o", out], capsys)
    assert code == 0, res.err
    assert "stylize: 12/12" in res.err  # the per-frame progress line
    assert "12 frames at 12 fps" in res.out
    stylised, source = Frames(out), Frames(clip)
    assert has_audio(clip) and has_audio(out)
    assert (stylised.count, stylised.fps) == (source.count, source.fps) == (12, 12)
    assert next(iter(stylised)).shape == (1, 3, 32, 48)

    code, res = run_cli(["eval-video", clip, out], capsys)
    assert code == 0, res.err
    lines = res.out.strip().splitlines()
    assert "11 pairs" in lines[0] and lines[1].split()[0] == "stylised" and lines[2].split()[0] == "input"
    assert float(lines[1].split()[2]) >= 0 and float(lines[2].split()[2]) >= 0


def test_temporal_results_are_steadier_than_per_frame_ones_on_a_folder_of_frames_in_tiles(model, tmp_path, capsys):
    from lossnet.video import Frames
    frames = save_frames(pan(12), tmp_path / "frames", "frame{}")
    assert Frames(frames).names == [f"frame{i}" for i in range(1, 13)]  # not frame1, frame10, frame11, frame2
    for flag, out in (([], "plain"), (["--temporal-strength", "0.9", "--tile", "32", "--overlap", "8"], "steady")):
        code, res = run_cli(["stylize", frames, "--model", model, *flag, "-o", tmp_path / out], capsys)
        assert code == 0, res.err
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == sorted(p.name for p in frames.iterdir())
    (plain, steady), _, _ = T.warping_error(Frames(frames), Frames(tmp_path / "plain"), Frames(tmp_path / "steady"))
    assert steady < plain


def test_gatys_frames_with_the_temporal_term_are_steadier(hed, style_png, tmp_path, capsys):
    from lossnet.video import Frames
    frames = save_frames(pan(3, 32, 2.0), tmp_path / "frames")
    args = ["stylize", frames, "--style", style_png, "--size", "32", "--iters", "6", "--quiet"]
    for flag, out in (([], "plain"), (["--temporal"], "steady")):
        code, res = run_cli([*args, *flag, "-o", tmp_path / out], capsys)
        assert code == 0, res.err
    (plain, steady), _, _ = T.warping_error(Frames(frames), Frames(tmp_path / "plain"), Frames(tmp_path / "steady"))
    assert steady < 0.5 * plain


def test_an_interrupted_run_leaves_no_output(model, clip, tmp_path, capsys, monkeypatch):
    calls = []
    real_apply = fast.apply

    def apply_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_apply(*args, **kwargs)
    monkeypatch.setattr(fast, "apply", apply_then_interrupt)
    work = tmp_path / "work"
    work.mkdir()
    code, res = run_cli(["stylize", clip, "--model", model, "--temporal", "--batch-size", "2", "-o",
                         work / "out.mp4"], capsys)
    assert code == 130 and list(work.iterdir()) == []
    calls.clear()
    frames = save_frames(pan(4), tmp_path / "frames")
    code, res = run_cli(["stylize", frames, "--model", model, "--temporal", "--batch-size", "1", "-o",
                         work / "out"], capsys)
    assert code == 130 and list(work.iterdir()) == []


@pytest.mark.parametrize("case", ["not a video", "eval not a video", "eval frame counts", "temporal on an image",
                                  "strength out of range", "image output for a video"])
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(case, model, clip, tmp_path, capsys):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n")
    image = save_image(photo("coffee", 32), tmp_path / "coffee.png")
    short = save_frames(pan(3, 48), tmp_path / "short")
    work = tmp_path / "work"
    work.mkdir()
    args = {
        "not a video": ["stylize", fake, "--model", model, "--temporal", "-o", work / "out.mp4"],
        "eval not a video": ["eval-video", clip, fake],
        "eval frame counts": ["eval-video", clip, short],
        "temporal on an image": ["stylize", image, "--model", model, "--temporal", "-o", work / "out.png"],
        "strength out of range": ["stylize", clip, "--model", model, "--temporal-strength", "1.5", "-o",
                                  work / "out.mp4"],
        "image output for a video": ["stylize", clip, "--model", model, "--temporal", "-o", work / "out.png"],
    }[case]
    code, res = run_cli(args, capsys)
    assert code == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    assert list(work.iterdir()) == []
