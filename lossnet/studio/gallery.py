"""The model gallery: every style model the studio can run, bundled and uploaded, each style of it shown as
one reference photo stylised by it, with the model's one-line description (lossnet.registry).

    gallery = Gallery(run_dir)
    gallery.entries()              # bundled, then uploaded models: key, name, description, styles, hash
    gallery.thumbnail(key, i)      # the PNG of style i on the reference photo: made once, then read from disk
    gallery.add_upload(path, "my-style.safetensors")   # a checked model file, kept by its hash

A thumbnail is cached in RUN_DIR/gallery/ under the model file's SHA-256 (and the style's index), so a model
retrained under the same name gets a new one, and a restart, or a second upload of the same file, none.
Uploaded models are kept in RUN_DIR/models/ as HASH.safetensors with HASH.json (the name they came with);
their key (what the `model` parameter and live mode take) is `upload-` and the hash's first 12 digits.
Only style models are shown: the gallery's one photo says nothing about a super-resolution or label-map model.
"""
from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..weights import file_sha256

REFERENCE_PHOTO = "astronaut"  # scikit-image's bundled photo (lossnet.io.bundled_photo): no files needed
THUMB_SIDE = 160
UPLOAD_PREFIX = "upload-"
STYLE_KIND = "style"


@dataclass(frozen=True)
class Entry:
    key: str  # what the `model` parameter takes: a bundled name, or upload-HASH12
    name: str  # what the page shows
    path: Path
    hash: str  # the file's SHA-256
    description: str
    styles: tuple[str, ...]  # one name per style the network holds
    source: str  # "bundled" or "uploaded"

    def public(self) -> dict:
        return {"key": self.key, "name": self.name, "description": self.description, "source": self.source,
                "hash": self.hash, "styles": list(self.styles),
                "thumbs": [f"/api/gallery/{self.key}/{i}.png?h={self.hash[:12]}" for i in range(len(self.styles))]}


def style_name(file_name: str) -> str:
    """'the_scream.jpg' -> 'the scream': a style as its training painting's file is called."""
    return re.sub(r"[_-]+", " ", Path(str(file_name)).stem).strip() or str(file_name)


class Gallery:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.thumbs, self.uploads = self.root / "gallery", self.root / "models"
        self.lock = threading.Lock()  # thumbnails are made one at a time: the cores are shared with jobs
        self._hashes: dict[tuple, str] = {}
        self._bundled: tuple[tuple, list[Entry]] | None = None  # (the bundled files' names, sizes and times, entries)

    def _hash(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(path)
        return self._hashes[key]

    def entries(self) -> list[Entry]:
        from ..registry import MODELS_DIR, bundled
        files = tuple((p.name, info.st_size, info.st_mtime_ns) for p in sorted(MODELS_DIR.glob("*.safetensors"))
                      for info in [p.stat()])
        if self._bundled is None or self._bundled[0] != files:  # a bundled model rewritten: its new hash at once
            self._bundled = (files, [Entry(b.name, b.name, b.path, self._hash(b.path), b.description,
                                           tuple(style_name(s) for s in b.config.get("styles") or [b.name]), "bundled")
                                     for b in bundled(STYLE_KIND).values()])
        uploaded = []
        for sidecar in sorted(self.uploads.glob("*.json"), key=lambda p: p.stat().st_mtime):
            path = sidecar.with_suffix(".safetensors")
            try:
                info = json.loads(sidecar.read_text())
                uploaded.append(Entry(UPLOAD_PREFIX + sidecar.stem[:12], str(info["name"]), path, sidecar.stem,
                                      str(info["description"]), tuple(info["styles"]), "uploaded"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return self._bundled[1] + [e for e in uploaded if e.path.is_file()]

    def get(self, key: str) -> Entry | None:
        return next((e for e in self.entries() if e.key == key), None)

    def uploaded_paths(self) -> dict[str, str]:
        """The uploaded models' keys and files: the `model` values the studio takes beside the bundled names."""
        return {e.key: str(e.path) for e in self.entries() if e.source == "uploaded"}

    def add_upload(self, path: Path, client_name: str) -> Entry:
        """Keep a model file that was already checked (lossnet.weights.read_model) under its hash; the same
        file twice is one entry."""
        from ..registry import load, stored_metadata
        digest = file_sha256(path)
        kept = self.uploads / f"{digest}.safetensors"
        sidecar = kept.with_suffix(".json")
        if not sidecar.is_file():
            net = load(path, STYLE_KIND)
            config = json.loads(stored_metadata(path).get("lossnet_config", "{}") or "{}")
            names = config.get("styles") or []
            styles = [style_name(s) for s in names] if len(names) == net.n_styles else \
                [f"style {i + 1}" for i in range(net.n_styles)]
            name = Path(client_name).stem[:60] or digest[:12]
            description = stored_metadata(path).get("lossnet_description") or f"uploaded as {name}.safetensors"
            self.uploads.mkdir(parents=True, exist_ok=True)
            temporary = kept.with_name(f".{kept.name}.tmp")
            shutil.copyfile(path, temporary)
            temporary.replace(kept)
            sidecar_tmp = sidecar.with_name(f".{sidecar.name}.tmp")
            sidecar_tmp.write_text(json.dumps({"name": name, "description": description, "styles": styles,
                                               "added": time.time()}))
            sidecar_tmp.replace(sidecar)
        return next(e for e in self.entries() if e.hash == digest)

    def thumbnail(self, key: str, index: int) -> Path | None:
        """The reference photo in style `index` of model `key`, as a PNG file; None if there is no such style."""
        entry = self.get(key)
        if entry is None or not 0 <= index < len(entry.styles):
            return None
        path = self.thumbs / f"{entry.hash}-{index}.png"
        with self.lock:
            if not path.is_file():
                self.thumbs.mkdir(parents=True, exist_ok=True)
                from ..io import save_image
                save_image(self._stylise(entry, index), path)  # atomic: a reader never sees half a PNG
        return path

    def _stylise(self, entry: Entry, index: int):
        import torch

        from ..fast import apply
        from ..io import bundled_photo
        from ..registry import load
        net = load(entry.path, STYLE_KIND).eval()
        style = torch.nn.functional.one_hot(torch.tensor(index), net.n_styles).float() if net.n_styles > 1 else None
        return apply(net, bundled_photo(REFERENCE_PHOTO, THUMB_SIDE), style=style, tile=0)
