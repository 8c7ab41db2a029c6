"""Image I/O: every format and mode comes back as (1, 3, H, W) RGB float in [0, 1]; writes are atomic."""
import numpy as np
import pytest
import torch
from PIL import Image, features

from lossnet.errors import LossnetError
from lossnet.io import (MAX_PIXELS, atomic_write, check_writable, list_images, load_image, resize_longest,
                        save_image)

from conftest import files_in, make_bad_images

_Y, _X = np.mgrid[0:24, 0:40]
# H=24, W=40, smooth (so JPEG keeps it close) and different in every channel (so channel order shows)
RGB = np.stack([_X * 6, _Y * 10, 255 - _X * 3 - _Y * 2], -1).astype(np.uint8)
# 16-bit ramps whose values are not multiples of 257, i.e. not representable in 8 bits
RAMP16 = (np.arange(24 * 40, dtype=np.uint32) * 61 % 65536).astype(np.uint16).reshape(24, 40)


def expected(array_hw3) -> torch.Tensor:
    return torch.from_numpy(array_hw3.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def check(t: torch.Tensor, h: int = 24, w: int = 40):
    assert t.shape == (1, 3, h, w) and t.dtype == torch.float32
    assert t.is_contiguous()  # a permuted (H, W, 3) view would break L-BFGS's .view(-1) of the gradient
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


@pytest.mark.parametrize("suffix,options,tol", [
    (".png", {}, 0.0),
    (".tif", {}, 0.0),
    (".webp", {"lossless": True}, 0.0),
    (".jpg", {"quality": 95}, 0.05),
])
def test_rgb_formats(tmp_path, suffix, options, tol):
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    path = tmp_path / f"x{suffix}"
    Image.fromarray(RGB).save(path, **options)
    t = load_image(path)
    check(t)
    assert float((t - expected(RGB)).abs().max()) <= tol + 1e-6
    assert float((t - expected(RGB)).abs().mean()) < 0.01


def test_tiff_16bit_gray_keeps_precision(tmp_path):
    path = tmp_path / "g16.tif"
    Image.fromarray(RAMP16).save(path)
    assert Image.open(path).mode.startswith("I;16")
    t = load_image(path)
    check(t)
    truth = torch.from_numpy(RAMP16.astype(np.float32) / 65535.0)
    assert float((t[0, 0] - truth).abs().max()) < 1e-6  # far below 8-bit steps (1/255 = 4e-3)
    assert torch.equal(t[0, 0], t[0, 1]) and torch.equal(t[0, 0], t[0, 2])
    assert t.unique().numel() > 256


def test_png_16bit_gray_keeps_precision(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(RAMP16).save(path)
    t = load_image(path)
    assert float((t[0, 0] - torch.from_numpy(RAMP16 / 65535.0).float()).abs().max()) < 1e-6


def test_tiff_16bit_rgb_keeps_precision(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = np.stack([RAMP16, RAMP16[::-1], 65535 - RAMP16], -1)
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    t = load_image(path)
    check(t)
    truth = torch.from_numpy(rgb.astype(np.float32) / 65535.0).permute(2, 0, 1)[None]
    assert float((t - truth).abs().max()) < 1e-6
    # and with alpha: transparent pixels become white
    rgba = np.concatenate([rgb, np.full((24, 40, 1), 65535, np.uint16)], -1)
    rgba[0, 0, 3] = 0
    tifffile.imwrite(tmp_path / "rgba16.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    t = load_image(tmp_path / "rgba16.tif")
    assert t[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert float((t[..., 1:, :] - truth[..., 1:, :]).abs().max()) < 1e-6
    data = path.read_bytes()
    (tmp_path / "cut16.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(LossnetError, match="truncated or corrupt"):
        load_image(tmp_path / "cut16.tif")


def test_tiff_16bit_rgb_orientation(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = np.stack([RAMP16] * 3, -1)
    path = tmp_path / "rot.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", extratags=[(274, "H", 1, 6, True)])  # Orientation = 6
    t = load_image(path)
    check(t, 40, 24)
    assert torch.allclose(t[0, 0], torch.from_numpy(np.rot90(RAMP16, -1) / 65535.0).float(), atol=1e-6)


def test_grayscale(tmp_path):
    gray = RGB[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png")
    check(t)
    for c in range(3):
        assert torch.equal(t[0, c], torch.from_numpy(gray / 255.0).float())


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((24, 40, 4), np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:, :20, 3] = 0  # ... transparent on the left half
    rgba[:, 20:, 3] = 255  # ... opaque on the right
    rgba[0, 39, 3] = 51  # 20% opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    check(t)
    assert torch.all(t[0, :, :, :20] == 1.0)  # white
    assert t[0, :, 5, 30].tolist() == [1.0, 0.0, 0.0]
    assert t[0, 0, 0, 39].item() == 1.0 and t[0, 1, 0, 39].item() == pytest.approx(204 / 255, abs=1 / 255)


def test_palette_with_and_without_transparency(tmp_path):
    im = Image.fromarray(RGB).quantize(16)
    assert im.mode == "P"
    im.save(tmp_path / "p.png")
    t = load_image(tmp_path / "p.png")
    check(t)
    assert torch.equal(t, expected(np.asarray(im.convert("RGB"))))
    im.info["transparency"] = 0  # palette entry 0 becomes transparent -> white
    im.save(tmp_path / "pt.png", transparency=0)
    t = load_image(tmp_path / "pt.png")
    index = np.asarray(im)
    assert torch.all(t[0, :, torch.from_numpy(index == 0)] == 1.0)
    assert torch.equal(t[0, :, torch.from_numpy(index != 0)], expected(np.asarray(im.convert("RGB")))[0, :, torch.from_numpy(index != 0)])


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk(tmp_path, suffix):
    cmyk = np.zeros((24, 40, 4), np.uint8)
    cmyk[:, :20, 0] = 255  # cyan on the left, white (no ink) on the right
    Image.fromarray(cmyk, "CMYK").save(tmp_path / f"c{suffix}", quality=100)
    t = load_image(tmp_path / f"c{suffix}")
    check(t)
    left, right = t[0, :, 12, 5], t[0, :, 12, 35]
    assert left[0] < 0.05 and left[1] > 0.95 and left[2] > 0.95  # cyan
    assert torch.all(right > 0.95)


def test_exif_orientation(tmp_path):
    stored = np.zeros((24, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # red left half ...
    stored[:, 20:] = (0, 0, 255)  # ... blue right half, as stored
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored column 0 is the visual top row
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    t = load_image(tmp_path / "o.jpg")
    check(t, 40, 24)  # transposed
    top, bottom = t[0, :, 5, 12], t[0, :, 35, 12]
    assert top[0] > 0.9 and top[2] < 0.1  # red on top
    assert bottom[2] > 0.9 and bottom[0] < 0.1  # blue at the bottom


def test_resize_by_longest_side(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "x.png")
    check(load_image(tmp_path / "x.png", size=20), 12, 20)
    check(load_image(tmp_path / "x.png", size=80), 48, 80)
    tall = torch.rand(1, 3, 100, 30)
    assert resize_longest(tall, 50).shape == (1, 3, 50, 15)
    assert torch.equal(resize_longest(tall, 100), tall)


def test_save_round_trip_png_and_jpeg(tmp_path):
    image = torch.rand(1, 3, 24, 40)
    save_image(image, tmp_path / "a.png")
    back = load_image(tmp_path / "a.png")
    assert float((back - image).abs().max()) <= 0.5 / 255 + 1e-6  # only 8-bit rounding
    smooth = torch.linspace(0, 1, 40).expand(1, 3, 24, 40).clone()
    save_image(smooth, tmp_path / "b.jpg")
    back = load_image(tmp_path / "b.jpg")
    assert back.shape == smooth.shape and float((back - smooth).abs().mean()) < 0.02
    assert files_in(tmp_path) == ["a.png", "b.jpg"]  # no temp files
    with Image.open(tmp_path / "b.jpg") as im:
        assert im.format == "JPEG"


def test_save_formats_by_suffix(tmp_path):
    image = torch.rand(1, 3, 20, 20)
    for suffix, fmt in [(".png", "PNG"), (".jpeg", "JPEG"), (".tiff", "TIFF"), (".webp", "WEBP")]:
        if fmt == "WEBP" and not features.check("webp"):
            continue
        save_image(image, tmp_path / f"x{suffix}")
        with Image.open(tmp_path / f"x{suffix}") as im:
            assert im.format == fmt
    assert not [n for n in files_in(tmp_path) if n.startswith(".")]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"

    def half_then_fail(tmp):
        tmp.write_bytes(b"\x89PNG half an image")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, half_then_fail)
    assert files_in(tmp_path) == []
    # an existing file is replaced only by a complete one
    save_image(torch.zeros(1, 3, 16, 16), target)
    with pytest.raises(OSError):
        atomic_write(target, half_then_fail)
    assert files_in(tmp_path) == ["out.png"]
    assert load_image(target).max().item() == 0.0


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "x.png") == tmp_path / "x.png"
    with pytest.raises(LossnetError, match="use one of"):
        check_writable(tmp_path / "x.gif")
    with pytest.raises(LossnetError, match="does not exist"):
        check_writable(tmp_path / "nope" / "x.png")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(LossnetError, match="is a directory"):
        check_writable(tmp_path / "d.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LossnetError):
        check_writable(tmp_path / "file" / "x.png")


def test_list_images(tmp_path):
    with pytest.raises(LossnetError, match="no images"):
        list_images(tmp_path)
    for name in ["b.PNG", "a.jpg", "c.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    with pytest.raises(LossnetError, match="no such folder"):
        list_images(tmp_path / "missing")


def test_bad_images_raise_lossnet_error(tmp_path):
    for name, (path, fragment) in make_bad_images(tmp_path).items():
        with pytest.raises(LossnetError, match=fragment):
            load_image(path)


def test_over_40_megapixels(tmp_path):
    # 8000x5100 = 40.8 MP of one grey: cheap to write and to open (Pillow reads the header only)
    Image.new("L", (8000, 5100), 128).save(tmp_path / "big.png")
    assert 8000 * 5100 > MAX_PIXELS
    with pytest.raises(LossnetError, match="40 MP limit"):
        load_image(tmp_path / "big.png")
    with pytest.raises(LossnetError, match="40 MP limit"):  # PNG cannot be decoded at a lower scale
        load_image(tmp_path / "big.png", size=64)
    # a JPEG can: with a target size it is decoded at 1/8 scale and accepted
    Image.new("RGB", (8000, 5100), (10, 200, 30)).save(tmp_path / "big.jpg", quality=50)
    with pytest.raises(LossnetError, match="40 MP limit"):
        load_image(tmp_path / "big.jpg")
    t = load_image(tmp_path / "big.jpg", size=64)
    assert t.shape == (1, 3, 41, 64)
    assert torch.allclose(t[0, :, 20, 32], torch.tensor([10, 200, 30]) / 255.0, atol=0.03)


def test_bundled_photo_is_an_rgb_batch_of_one_in_unit_range():
    from lossnet.io import bundled_photo
    full = bundled_photo("chelsea")
    assert full.shape == (1, 3, 300, 451) and full.is_contiguous()
    assert 0 <= float(full.min()) < 0.1 and 0.9 < float(full.max()) <= 1
    small = bundled_photo("chelsea", 90)
    assert small.shape == (1, 3, 60, 90)


def test_progress_in_a_pipe_is_plain_lines_with_an_eta_and_a_final_summary():
    import io
    import time
    from lossnet.progress import progress
    out = io.StringIO()  # not a TTY
    bar = progress(10, "train", stream=out, every=0.05)
    for step in range(10):
        time.sleep(0.02)
        bar.update(1, {"loss": 1.0 / (step + 1)})
    bar.close()
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 2 <= len(lines) <= 6, text
    assert "ETA" in lines[0] and lines[-1].startswith("train: 10/10 loss=0.1") and lines[-1].endswith(" s)")
    silent = io.StringIO()
    off = progress(10, "x", enabled=False, stream=silent)
    off.update(1, {"loss": 1.0})
    off.close()
    assert silent.getvalue() == ""


def test_results_show_themselves_in_jupyter_and_act_as_plain_tensors():
    import io as bytes_io

    from PIL import Image

    from lossnet.io import Picture, picture
    x = picture(torch.rand(1, 3, 20, 30))
    assert isinstance(x, Picture) and isinstance(x, torch.Tensor)
    png = Image.open(bytes_io.BytesIO(x._repr_png_()))
    assert png.size == (30, 20) and x.pil().size == (30, 20)
    y = x * 2 + 1  # arithmetic and indexing give plain tensors
    assert type(y) is torch.Tensor and type(x[0]) is torch.Tensor and x.shape == (1, 3, 20, 30)


def test_notices_go_through_logging(capsys, caplog):
    import logging

    from lossnet.weights import log, notice, show_notices
    log.propagate = True  # as a library under an application that configured logging (pytest has)
    with caplog.at_level(logging.INFO, logger="lossnet"):
        notice("logged")
    assert [(r.name, r.levelname) for r in caplog.records if r.getMessage() == "logged"] == [("lossnet", "INFO")]
    capsys.readouterr()  # (an earlier CLI call in this process may have shown it on stderr as well)
    show_notices()  # what the CLI does
    notice("a choice was made")
    assert capsys.readouterr().err == "lossnet: a choice was made\n"
    logger = logging.getLogger("lossnet")
    level = logger.level
    try:
        logger.setLevel(logging.WARNING)
        notice("hidden")
        assert capsys.readouterr().err == ""
    finally:
        logger.setLevel(level)
