"""Data pipelines: crops, skipping unreadable files, SR degradation, pix2pix pairs, resumable batches."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lossnet.data import (PairedImages, RandomCrops, SkippedFileWarning, StepBatches, Subset, degrade, find_images,
                          holdout, infinite_batches, modcrop, prefetched, sr_pair)
from lossnet.errors import LossnetError

FACADES = Path("/work/shared/data/pix2pix/facades/train")


def write_image(path: Path, w: int, h: int, seed: int = 0, color=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array = np.full((h, w, 3), color, np.uint8) if color is not None else rng.integers(0, 256, (h, w, 3), np.uint8)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    for i in range(3):
        write_image(tmp_path / "photos" / f"{i}.png", 40 + i, 30, seed=i)
    write_image(tmp_path / "photos" / "sub" / "small.jpg", 20, 16, seed=9)  # smaller than the crop, in a subfolder
    write_image(tmp_path / "photos" / ".hidden" / "x.png", 40, 40)
    return tmp_path / "photos"


def test_crops_are_square_in_unit_range_and_found_recursively(photos):
    data = RandomCrops(photos, crop_size=24)
    assert len(data) == 4 and not any(".hidden" in str(p) for p in data.files)
    for i in range(len(data)):
        crop = data.sample(i, torch.Generator().manual_seed(i))
        assert crop.shape == (3, 24, 24) and crop.dtype == torch.float32 and 0 <= crop.min() <= crop.max() <= 1


def test_corrupt_image_is_skipped_with_a_warning_naming_it(photos):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = (photos / "0.png").read_bytes()
    (photos / "truncated.png").write_bytes(good[: len(good) // 2])
    stream = infinite_batches(RandomCrops(photos, crop_size=16), batch_size=2, seed=0)
    with pytest.warns(SkippedFileWarning) as caught:
        batches = [next(stream) for _ in range(6)]  # two epochs: each bad file is reported once
    messages = [str(w.message) for w in caught if w.category is SkippedFileWarning]
    assert sum("broken.jpg" in m for m in messages) == 1 and sum("truncated.png" in m for m in messages) == 1
    assert all(b.shape == (2, 3, 16, 16) for b in batches)


def test_empty_or_missing_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(LossnetError, match="no images under"):
        RandomCrops(tmp_path / "empty")
    with pytest.raises(LossnetError, match="no such folder"):
        find_images(tmp_path / "nowhere")


def test_nothing_readable_is_an_error_not_a_hang(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.warns(SkippedFileWarning), pytest.raises(LossnetError, match="could be read"):
        next(infinite_batches(RandomCrops(tmp_path, 16), 1))


def test_sr_crop_must_be_a_multiple_of_the_scale(photos):
    with pytest.raises(LossnetError, match="multiple of 4"):
        RandomCrops(photos, crop_size=30, multiple_of=4)
    assert RandomCrops(photos, crop_size=32, multiple_of=4).crop_size == 32


@pytest.mark.parametrize("scale", [4, 8])
def test_degradation_shapes_are_exact(scale):
    hr = torch.rand(2, 3, 288, 96)
    lr, same = sr_pair(hr, scale)
    assert lr.shape == (2, 3, 288 // scale, 96 // scale) and same is hr and 0 <= lr.min() and lr.max() <= 1
    assert degrade(hr[0], scale).shape == (3, 288 // scale, 96 // scale)
    with pytest.raises(LossnetError, match="modcrop"):
        degrade(torch.rand(3, 30, 32), scale)
    assert modcrop(torch.rand(3, 30, 37), scale).shape == (3, 30 // scale * scale, 37 // scale * scale)


def test_degradation_keeps_flat_colour_and_blurs_detail():
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(degrade(flat, 4), torch.full((1, 3, 8, 8), 0.3), atol=1e-6)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * torch.ones(1, 3, 32, 32)
    assert degrade(checker.float(), 2).std() < 0.05  # the blur removes what bicubic alone would alias


def test_batches_are_deterministic_and_resume_exactly(photos):
    data = RandomCrops(photos, crop_size=16)
    first = [next(infinite_batches(data, 3, seed=5)) for _ in range(2)]
    assert torch.equal(first[0], first[1])
    stream = infinite_batches(data, 3, seed=5)
    run = [next(stream) for _ in range(5)]
    resumed = infinite_batches(data, 3, seed=0, state=_after(data, 3, seed=5, batches=2))
    assert all(torch.equal(a, next(resumed)) for a in run[2:])
    assert not torch.equal(next(infinite_batches(data, 3, seed=6)), run[0])


def test_prefetched_step_batches_are_the_plain_loops_in_order(photos):
    data = RandomCrops(photos, crop_size=16, zoom=True, flip=True)
    batches = StepBatches(data, 3, seed=2)
    plain = [batches(step) for step in range(4, 12)]
    ahead = list(prefetched(batches, range(4, 12), workers=3))  # several threads read the same data set at once
    assert len(ahead) == 8 and all(torch.equal(a, b) for a, b in zip(plain, ahead))
    assert not torch.equal(plain[0], plain[1])
    stream = prefetched(batches, range(100), workers=2)
    assert torch.equal(next(stream), batches(0))
    stream.close()  # a stopped run leaves no thread waiting on batches it will never take


def _after(data, batch_size, seed, batches):
    stream = infinite_batches(data, batch_size, seed)
    for _ in range(batches):
        next(stream)
    state = stream.state()
    assert set(state) == {"seed", "epoch", "position"}
    return dict(state)


def _side_by_side(path, left, right, h=32):
    """A|B image with flat colours, and a marker column at A's left edge and B's left edge."""
    a = np.full((h, h, 3), left, np.uint8)
    b = np.full((h, h, 3), right, np.uint8)
    a[:, 0] = b[:, 0] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([a, b], 1)).save(path)


def test_aligned_pairs_split_at_half_width_and_direction(tmp_path):
    _side_by_side(tmp_path / "1.png", (200, 0, 0), (0, 0, 200))
    ab = PairedImages(tmp_path, "AtoB", load_size=None, crop_size=None, flip=False).sample(0)
    ba = PairedImages(tmp_path, "BtoA", load_size=None, crop_size=None, flip=False).sample(0)
    assert ab[0].shape == ab[1].shape == (3, 32, 32)
    assert ab[0][0, 5, 5] > 0.7 and ab[1][2, 5, 5] > 0.7  # A red (left), B blue (right)
    assert torch.equal(ba[0], ab[1]) and torch.equal(ba[1], ab[0])
    with pytest.raises(LossnetError, match="direction"):
        PairedImages(tmp_path, "AB")


def test_pair_transforms_are_identical_on_both_halves(tmp_path):
    _side_by_side(tmp_path / "1.png", (90, 90, 90), (90, 90, 90), h=40)  # A == B: any mismatch in transform shows
    data = PairedImages(tmp_path, load_size=44, crop_size=32, flip=True)
    flipped = 0
    for seed in range(8):
        a, b = data.sample(0, torch.Generator().manual_seed(seed))
        assert a.shape == (3, 32, 32) and torch.equal(a, b)
        flipped += bool(a[0, :, -1].mean() > a[0, :, 0].mean())
    assert 0 < flipped < 8  # the marker column moves with the flip in both halves
    a, b = data.sample(0)  # evaluation: centred, unflipped, reproducible
    assert torch.equal(a, data.sample(0)[0])


def test_two_folders_missing_b_and_size_mismatch_are_skipped_with_warnings(tmp_path):
    for name in ["1.png", "2.png", "3.png"]:
        write_image(tmp_path / "A" / name, 16, 16)
    write_image(tmp_path / "B" / "1.jpg", 16, 16)  # matched by name without suffix
    write_image(tmp_path / "B" / "2.png", 24, 16)
    with pytest.warns(SkippedFileWarning, match="3.png: no image of the same name"):
        data = PairedImages(tmp_path, load_size=None, crop_size=16, flip=False)
    assert [a.name for a, _ in data.pairs] == ["1.png", "2.png"]
    assert data.sample(0)[0].shape == (3, 16, 16)
    with pytest.warns(SkippedFileWarning, match="2.png: its pair .* differs in size"):
        assert data.sample(1) is None


def test_no_pairs_is_an_error(tmp_path):
    write_image(tmp_path / "A" / "1.png", 16, 16)
    (tmp_path / "B").mkdir()
    with pytest.warns(SkippedFileWarning), pytest.raises(LossnetError, match="no image pairs"):
        PairedImages(tmp_path)


def test_holdout_is_deterministic_and_disjoint(photos):
    data = RandomCrops(photos, 16)
    train, held = holdout(data, 0.25, seed=3)
    again, held_again = holdout(data, 0.25, seed=3)
    assert held.indices == held_again.indices and len(held) == 1 and len(train) == 3
    assert sorted(train.indices + held.indices) == list(range(4))
    assert isinstance(train, Subset) and train.sample(0).shape == (3, 16, 16)
    with pytest.raises(LossnetError, match="hold out"):
        holdout(data, 4)


def test_pair_batches_are_tuples(tmp_path):
    for i in range(3):
        _side_by_side(tmp_path / f"{i}.png", (i * 50, 0, 0), (0, 0, i * 50))
    x, y = next(infinite_batches(PairedImages(tmp_path, load_size=None, crop_size=None), 2, seed=1))
    assert x.shape == y.shape == (2, 3, 32, 32)


@pytest.mark.skipif(not FACADES.is_dir(), reason="shared facades data not present")
def test_facades_pair_label_to_photo():
    data = PairedImages(FACADES, "BtoA")
    assert len(data) == 400
    label, photo = data.sample(0, torch.Generator().manual_seed(0))
    assert label.shape == photo.shape == (3, 256, 256)
    train, val = holdout(data, 100, seed=0)
    assert len(train) == 300 and len(val) == 100
