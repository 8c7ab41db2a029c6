"""lossnet studio: a local web page and JSON API for every method (`lossnet serve`).

methods.py  what the page may run: CLI commands, their uploads and exposed options, read from the CLI's parser
jobs.py     the FIFO queue; one process per job (`worker.py`), so cancelling and crashes stay contained
app.py      the Starlette app: the page (static/), the API, upload checks
"""
from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
