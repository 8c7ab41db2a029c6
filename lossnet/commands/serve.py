"""`lossnet serve`: the studio, a local web page and JSON API for every method (lossnet.studio)."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from ..cli import positive, positive_int
from ..errors import LossnetError


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_serve(args) -> None:
    import uvicorn

    from ..studio import Settings, create_app
    from ..studio.live import MAX_MESSAGE_BYTES
    from ..weights import cache_dir

    run_dir = Path(args.run_dir) if args.run_dir else cache_dir() / "studio"  # one folder: the history goes on
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LossnetError(f"cannot create the run folder {run_dir}: {e.strerror}") from None
    settings = Settings(run_dir=run_dir, workers=args.workers, max_queued=args.max_queued,
                        max_upload_mb=args.max_upload_mb, max_pixels=int(args.max_pixels * 1e6), threads=args.threads)
    app = create_app(settings)  # first: a run folder another studio serves stops it here
    where = "loopback only: other machines cannot connect (--host 0.0.0.0 to share)" if _loopback(args.host) else \
        "reachable from other machines: anyone who can connect can run jobs here"
    print(f"lossnet studio on http://{args.host}:{args.port}/ ({where})", flush=True)
    print(f"history and results in {run_dir}/ ({args.workers} worker{'s' if args.workers > 1 else ''}, "
          f"up to {args.max_queued} waiting jobs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=5, ws_max_size=MAX_MESSAGE_BYTES)  # a longer live message: closed, 1009


def register(sub) -> None:
    p = sub.add_parser("serve", help="the studio: a local web page and JSON API for every method",
                       description="Serve the lossnet studio: drop images on a page, run any method with live "
                                   "progress, download the results. Jobs run one at a time in worker processes.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=8765, help="port (default 8765)")
    p.add_argument("--workers", type=positive_int, default=1, help="jobs run at once (default 1: the cores are shared)")
    p.add_argument("--max-queued", type=positive_int, default=8, help="waiting jobs before new ones get 503 (default 8)")
    p.add_argument("--max-upload-mb", type=positive, default=25.0, help="largest upload per request (default 25 MB)")
    p.add_argument("--max-pixels", type=positive, default=16.0, help="largest uploaded image in megapixels (default 16)")
    p.add_argument("--threads", type=positive_int, help="threads per job (default: the cores divided by --workers)")
    p.add_argument("--run-dir", help="where the history, uploads and results are kept; a restart with the same "
                                     "folder lists every earlier job (default: studio/ in the lossnet cache)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="the web server's request log (default warning)")
    p.set_defaults(func=cmd_serve)
