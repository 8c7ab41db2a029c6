"""MkDocs hooks: the pages made from the repository at build time, and links that leave docs/.

- Models: one page per bundled model, its card from `lossnet.cards` (the text `lossnet models --card NAME`
  prints), and an index of them; the nav entry `models/index.md` becomes a section with every card.
- Benchmarks: BENCHMARKS.md at the repository's root, included as it is.
- Links: a page's links are read from where its text lives (a card from lossnet/models/, BENCHMARKS.md from
  the root). A link into docs/ is made relative to the page on the site; a link to another file of the
  repository (a module, a script) cannot be followed on the site and becomes its text and the file's path;
  a link to a file that is a page here (BENCHMARKS.md, a card) goes to that page; a link to a file that does
  not exist is a warning, which fails `mkdocs build --strict`.
"""
from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.lossnet")

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "BENCHMARKS.md"
MODELS_INDEX = "models/index.md"
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^([ \t]*(?:```|~~~))", re.M)

# The repository file each generated page's text comes from: its relative links start there.
_sources: dict[str, Path] = {}


def _cards():
    from lossnet import cards
    return cards


def on_config(config):
    names = _cards().names()
    config.nav = [_with_cards(item, names) for item in config.nav]
    config.watch.extend([str(BENCHMARKS), str(REPO / "lossnet" / "models")])
    return config


def _with_cards(item, names: list[str]):
    """The nav entry `Title: models/index.md` as a section: the index, then a page per model."""
    if isinstance(item, dict):
        (title, value), = item.items()
        if value == MODELS_INDEX:
            return {title: [MODELS_INDEX] + [{name: f"models/{name}.md"} for name in names]}
        if isinstance(value, list):
            return {title: [_with_cards(child, names) for child in value]}
    return item


def on_files(files, config):
    cards = _cards()
    names = cards.names()
    texts = {name: cards.card(name) for name in names}
    pages = {MODELS_INDEX: (_models_index(texts), REPO / "lossnet" / "models" / "index.md"),
             "benchmarks.md": (BENCHMARKS.read_text(encoding="utf-8"), BENCHMARKS)}
    for name, text in texts.items():
        pages[f"models/{name}.md"] = (text, cards.card_path(name))
    for uri, (text, source) in pages.items():
        _sources[uri] = source
        files.append(File.generated(config, uri, content=text))
    return files


def _models_index(texts: dict[str, str]) -> str:
    from lossnet import registry
    bundled = registry.bundled()
    rows = [f"| [{name}]({name}.md) | {bundled[name].kind.title} | {_summary(text)} |" for name, text in texts.items()]
    return "\n".join([
        "# Models", "",
        "The models that come with lossnet. `lossnet models` lists them; `lossnet models --card NAME` prints a "
        "model's card (what it does, its training data and the commands that rebuild it, its measured quality, "
        "its limitations and licences), the same text as its page here. Any `--model` option takes a bundled "
        "name, a model file or a training run's folder.", "",
        "| model | kind | what it does |", "|---|---|---|", *rows, ""])


def _summary(card: str) -> str:
    """A card's first paragraph after its title, on one line."""
    paragraphs = [p for p in card.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    return " ".join(paragraphs[0].split()).replace("|", "\\|") if paragraphs else ""


def on_page_markdown(markdown, page, config, files):
    docs = Path(config.docs_dir).resolve()
    uri = page.file.src_uri
    source = _sources.get(uri, docs / uri)
    here = posixpath.dirname(uri)
    parts = FENCE.split(markdown)
    # Outside code fences only: split keeps each fence marker, so text and code alternate every two parts.
    inside = False
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1:
            inside = not inside
            out.append(part)
        elif inside:
            out.append(part)
        else:
            out.append(LINK.sub(lambda m: _link(m, source, docs, here, uri), part))
    return "".join(out)


def _link(match: re.Match, source: Path, docs: Path, here: str, uri: str) -> str:
    bang, text, target = match.groups()
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target, re.I):
        return match.group(0)  # a URL, an anchor on this page, or a site-absolute path
    path, _, anchor = target.partition("#")
    resolved = Path(os.path.normpath(source.parent / path))
    page_of = {path: page for page, path in _sources.items()}
    if resolved.is_relative_to(docs) or resolved in page_of:
        site_path = page_of.get(resolved) or resolved.relative_to(docs).as_posix()
        on_site = posixpath.relpath(site_path, here or ".")
        return f"{bang}[{text}]({on_site}{'#' + anchor if anchor else ''})"
    if not resolved.exists():
        log.warning(f"{uri}: the link '{target}' points at {resolved}, which does not exist")
        return match.group(0)
    shown = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(resolved)
    return text if shown in text else f"{text} (`{shown}`)"
