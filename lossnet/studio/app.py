"""The studio's ASGI app (Starlette): the page, and the JSON API it uses (documented in README.md).

    POST   /api/jobs               multipart: method, files, parameters -> 202 {"id", ...}
    GET    /api/jobs/{id}          {"state", "progress", "eta_s", "position", "error", ...}
    GET    /api/jobs/{id}/events   server-sent events with the same fields, until the job ends
    GET    /api/jobs/{id}/preview  the current iterate (pixel-loop methods), PNG
    GET    /api/jobs/{id}/result   the result, PNG (?download=1: as an attachment)
    GET    /api/jobs/{id}/input    the photo the result is compared with (the before/after slider)
    POST   /api/jobs/{id}/cancel   cancel a queued or running job (it stays in the history)
    DELETE /api/jobs/{id}          delete the job and its files (a queued or running one is cancelled first)
    GET    /api/jobs               every job in the history (it survives restarts: history.py), oldest first
    GET    /api/methods            methods, their uploads and parameters with defaults (from the CLI's parser)
    GET    /api/gallery            every style model, bundled and uploaded, with thumbnail URLs (gallery.py)
    GET    /api/gallery/{key}/{i}.png   style i of a model on the reference photo (made once, cached on disk)
    POST   /api/models             multipart `model`: a style model file, kept for the gallery and live mode
    WS     /api/live               live mode: frames in, stylised frames out (live.py)
    GET    /api/health             version, queue, limits, and `notice`: a problem the page should show

Uploads are checked by content with the CLI's own reader before anything is queued, stored under names the
server chooses, and a refused one leaves nothing behind. Every error is JSON `{"error": "one sentence"}`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from ..errors import LossnetError
from . import live as L
from . import methods as M
from .gallery import Gallery
from .history import hold_run_folder
from .jobs import PREVIEW, RESULT, TERMINAL, Job, JobQueue, QueueFull, new_id

STATIC = Path(__file__).parent / "static"
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "MPO": ".jpg"}


@dataclass
class Settings:
    run_dir: Path
    workers: int = 1
    max_queued: int = 8  # waiting jobs; one more is answered 503 with Retry-After
    max_upload_mb: float = 25.0  # per request
    max_pixels: int = 16_000_000  # per uploaded image, checked from its header before it is decoded
    threads: int | None = None  # per job process (default: the cores shared among the workers)
    preview_every_s: float = 1.0  # the pixel loop's iterate is written at most this often (a PNG costs a few ms)
    live_connections: int = 4  # pages in live mode at once; one more is closed with code 1013 (try again later)


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _client_name(name: str | None) -> str:
    """A client's file name, for messages only (it never reaches the filesystem)."""
    text = "".join(c for c in (name or "upload") if c.isprintable())[:80]
    return text or "upload"


def store_upload(u: M.Upload, data: bytes, filename: str, folder: Path, index: int, max_pixels: int) -> Path:
    """Check one upload by its content and keep it under a server-chosen name; BadRequest (nothing kept) if not."""
    shown = f"{u.field} ({_client_name(filename)})"
    if not data:
        raise M.BadRequest(f"{shown} is empty")
    if u.kind == "image":
        from PIL import Image, UnidentifiedImageError
        try:
            fmt = Image.open(BytesIO(data)).format
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
            fmt = None
        if fmt not in FORMATS:
            raise M.BadRequest(f"{shown} is not an image lossnet can read (checked by its content, not its name)")
        path = folder / f"{u.field}-{index}{FORMATS[fmt]}"
    else:
        path = folder / f"{u.field}-{index}.safetensors"
    path.write_bytes(data)
    try:
        if u.kind == "image":
            from ..io import load_image
            load_image(path, max_pixels=max_pixels)  # the CLI's reader: truncation, bombs, tiny or odd images
        else:
            from ..weights import read_model
            read_model(path, u.kind)
    except LossnetError as e:
        path.unlink(missing_ok=True)
        raise M.BadRequest(f"{shown}: {str(e).replace(str(path), repr(_client_name(filename)))}") from None
    except Exception:  # noqa: BLE001 - whatever a hostile file makes a reader raise, the answer is one sentence
        path.unlink(missing_ok=True)
        raise M.BadRequest(f"{shown} cannot be read as {'an image' if u.kind == 'image' else 'a lossnet model'}") from None
    return path


def stages_of(m: M.Method, fields: dict) -> int:
    """Progress bars the job opens in turn: DeepDream one per octave, the rest one."""
    if m.name == "deepdream":
        return int(fields.get("octaves") or M.action(m, "octaves").default)
    return 1


def title_of(method: str) -> str:
    if method == "live":
        return "Live snapshot"
    try:
        return M.method(method).title
    except M.BadRequest:
        return method


def create_app(settings: Settings) -> Starlette:
    run_folder = hold_run_folder(settings.run_dir)  # now, so that a second studio on it stops with one error line
    queue: JobQueue | None = None
    gallery = Gallery(settings.run_dir)
    stylist: L.Stylist | None = None
    live_count = 0

    @contextlib.asynccontextmanager
    async def lifespan(app):
        nonlocal queue, stylist
        queue = JobQueue(settings.run_dir, settings.workers, settings.max_queued, settings.threads,
                         settings.preview_every_s)
        stylist = L.Stylist(gallery, queue.threads)
        app.state.queue = queue
        try:
            yield
        finally:
            await run_in_threadpool(queue.close)
            stylist.executor.shutdown(wait=False, cancel_futures=True)
            if run_folder is not None:
                run_folder.close()

    def job_or_404(request: Request) -> Job:
        job = queue.get(request.path_params["job_id"])
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def health(request: Request) -> Response:
        from importlib.metadata import PackageNotFoundError, version
        try:
            release = version("lossnet")
        except PackageNotFoundError:
            release = "unknown"
        return JSONResponse({"status": "ok", "version": release, "workers": settings.workers,
                             "running": len(queue.running), "queued": len(queue.waiting),
                             "max_queued": settings.max_queued, "max_upload_mb": settings.max_upload_mb,
                             "max_pixels": settings.max_pixels, "run_dir": str(settings.run_dir),
                             "notice": queue.history.notice})

    def upload_refused(request: Request) -> Response | None:
        """411 / 413 before a byte of the body is read: the size is checked from the request's header."""
        length = request.headers.get("content-length")
        if length is None:
            return error(411, "send the upload with a Content-Length")
        if not length.isdigit() or int(length) > settings.max_upload_mb * 1e6:
            return error(413, f"the upload is over the {settings.max_upload_mb:g} MB limit")
        return None

    async def list_methods(request: Request) -> Response:
        return JSONResponse({"methods": await run_in_threadpool(M.catalog)})

    async def submit(request: Request) -> Response:
        refused = upload_refused(request)
        if refused is not None:
            return refused
        try:
            queue.check_room()
        except QueueFull as e:
            return error(503, str(e), {"Retry-After": str(e.retry_after)})
        try:
            form = await request.form(max_files=16, max_fields=64)
        except Exception as e:  # noqa: BLE001 - starlette's parser errors: malformed multipart
            return error(400, f"cannot read the form: {str(e).splitlines()[0][:120] if str(e) else 'malformed'}")
        folder = None
        try:
            try:
                m = M.method(str(form.get("method") or ""))
            except M.BadRequest:
                if not form.get("method"):
                    raise M.BadRequest(f"say which method: one of {', '.join(x.name for x in M.METHODS)}") from None
                raise
            fields, uploads = {}, {}
            for key, value in form.multi_items():
                if key == "method":
                    continue
                if hasattr(value, "read"):
                    uploads.setdefault(key, []).append(value)
                elif key in fields:
                    raise M.BadRequest(f"parameter {key} is given twice")
                else:
                    fields[key] = str(value)
            known = {u.field: u for u in m.uploads}
            for key in uploads:
                if key not in known:
                    raise M.BadRequest(f"{m.name} takes no file {key!r}" + (
                        f": its files are {', '.join(known)}" if known else ""))
            job_id = new_id()
            folder = settings.run_dir / job_id
            folder.mkdir(parents=True)
            stored: dict[str, list[str]] = {}
            limit = min(settings.max_pixels, m.max_input_pixels or settings.max_pixels)
            for key, files in uploads.items():
                M.check_count(known[key], len(files))  # before any file is read or stored
                for i, f in enumerate(files):
                    data = await f.read()
                    path = await run_in_threadpool(store_upload, known[key], data, f.filename, folder, i, limit)
                    stored.setdefault(key, []).append(str(path))
                    if known[key].kind == "transformer":  # a style model: the gallery shows it from now on
                        await run_in_threadpool(gallery.add_upload, path, _client_name(f.filename))
            argv = M.argv_for(m, fields, stored, str(folder / RESULT), gallery.uploaded_paths())
            before = next((Path(stored[u.field][0]).name for u in m.uploads if u.kind == "image" and stored.get(u.field)),
                          None)
            job = queue.submit(Job(job_id, m.name, argv, folder, stages_of(m, fields), params=fields, input=before))
        except M.BadRequest as e:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            return error(400, str(e))
        except QueueFull as e:
            shutil.rmtree(folder, ignore_errors=True)
            return error(503, str(e), {"Retry-After": str(e.retry_after)})
        finally:
            await form.close()
        return JSONResponse({**described(job), "urls": urls(job)}, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})

    def urls(job: Job) -> dict:
        base = f"/api/jobs/{job.id}"
        return {"self": base, "events": base + "/events", "preview": base + "/preview", "result": base + "/result"}

    def described(job: Job) -> dict:
        state = queue.public(job)
        state["title"], state["params"], state["created"] = title_of(job.method), job.params, job.created
        state["preview_url"] = f"/api/jobs/{job.id}/preview?n={job.previews}" if job.previews else None
        state["result_url"] = f"/api/jobs/{job.id}/result" if job.state == "done" else None
        state["input_url"] = f"/api/jobs/{job.id}/input" if job.input else None
        return state

    async def job_status(request: Request) -> Response:
        return JSONResponse(described(job_or_404(request)))

    async def list_jobs(request: Request) -> Response:
        with queue.lock:
            jobs = sorted(queue.jobs.values(), key=lambda j: j.created)
        return JSONResponse({"jobs": [described(j) for j in jobs], "notice": queue.history.notice})

    async def cancel(request: Request) -> Response:
        job = job_or_404(request)
        if job.state in TERMINAL:
            return error(409, f"the job has already ended ({job.state})")
        await run_in_threadpool(queue.cancel, job)
        return JSONResponse(described(job))

    async def delete(request: Request) -> Response:
        job = job_or_404(request)
        await run_in_threadpool(queue.delete, job)
        return JSONResponse({"deleted": job.id})

    async def job_input(request: Request) -> Response:
        job = job_or_404(request)
        path = job.folder / job.input if job.input else None
        if path is None or not path.is_file():
            return error(404, "this job has no input photo")
        if path.suffix in (".png", ".jpg", ".webp", ".bmp"):
            return FileResponse(path, headers={"Cache-Control": "no-store"})

        def as_png() -> bytes:  # a browser shows no TIFF
            from PIL import Image
            buffer = BytesIO()
            with Image.open(path) as image:
                image.convert("RGB").save(buffer, format="PNG")
            return buffer.getvalue()
        return Response(await run_in_threadpool(as_png), media_type="image/png")

    async def list_gallery(request: Request) -> Response:
        entries = await run_in_threadpool(gallery.entries)
        return JSONResponse({"models": [e.public() for e in entries]})

    async def thumbnail(request: Request) -> Response:
        key, index = request.path_params["key"], request.path_params["index"]
        path = await run_in_threadpool(gallery.thumbnail, key, index)
        if path is None:
            return error(404, "no such model or style in the gallery")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    async def upload_model(request: Request) -> Response:
        refused = upload_refused(request)
        if refused is not None:
            return refused
        try:
            form = await request.form(max_files=1, max_fields=4)
        except Exception as e:  # noqa: BLE001 - starlette's parser errors: malformed multipart
            return error(400, f"cannot read the form: {str(e).splitlines()[0][:120] if str(e) else 'malformed'}")
        folder = settings.run_dir / f".upload-{new_id()}"
        try:
            upload = form.get("model")
            if not hasattr(upload, "read"):
                return error(400, "send the model file in the field 'model'")
            folder.mkdir(parents=True)
            spec = M.Upload("model", "model", "a style model", kind="transformer")
            path = await run_in_threadpool(store_upload, spec, await upload.read(), upload.filename, folder, 0,
                                           settings.max_pixels)
            entry = await run_in_threadpool(gallery.add_upload, path, _client_name(upload.filename))
        except M.BadRequest as e:
            return error(400, str(e))
        finally:
            await form.close()
            shutil.rmtree(folder, ignore_errors=True)
        return JSONResponse(entry.public(), status_code=201)

    async def live(websocket: WebSocket) -> None:
        nonlocal live_count
        if not L.origin_allowed(websocket.headers, websocket.headers.get("host")):
            await websocket.close(code=1008, reason="live mode is for this server's own page")
            return
        if live_count >= settings.live_connections:
            await websocket.accept()  # then closed: a browser hears the reason only from an open connection
            await websocket.close(code=1013, reason=f"{live_count} pages are in live mode: try again later")
            return
        live_count += 1  # counted before the first await: pages connecting at once cannot all pass the check
        try:
            await websocket.accept()
            await L.serve(websocket, stylist, queue, Job, described)
        finally:
            live_count -= 1

    async def events(request: Request) -> Response:
        job = job_or_404(request)

        async def stream():
            last, quiet = None, 0.0
            while True:
                state = described(job)
                news = {k: v for k, v in state.items() if k != "elapsed_s"}  # the clock alone is no news
                if news != last:
                    yield f"data: {json.dumps(state)}\n\n"
                    last, quiet = news, 0.0
                elif quiet >= 15:  # a comment keeps proxies and browsers from dropping an idle stream
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                if state["state"] in TERMINAL:
                    return
                await asyncio.sleep(0.2)
                quiet += 0.2
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def preview(request: Request) -> Response:
        job = job_or_404(request)
        path = job.folder / PREVIEW
        if not path.is_file():
            return error(404, "no preview yet" if job.state not in TERMINAL else "this job made no preview")
        return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "no-store"})

    async def result(request: Request) -> Response:
        job = job_or_404(request)
        if job.state != "done":
            return error(409, f"the job is {job.state}, not done" + (f": {job.error}" if job.error else ""))
        name = f"lossnet-{job.method}-{job.id[:8]}.png"
        disposition = "attachment" if request.query_params.get("download") else "inline"
        return FileResponse(job.folder / RESULT, media_type="image/png",
                            headers={"Content-Disposition": f'{disposition}; filename="{name}"'})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, exc.detail if isinstance(exc.detail, str) else "request refused")

    routes = [
        Route("/", index),
        Route("/api/health", health),
        Route("/api/methods", list_methods),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs", list_jobs, methods=["GET"]),
        Route("/api/jobs/{job_id:str}", job_status, methods=["GET"]),
        Route("/api/jobs/{job_id:str}", delete, methods=["DELETE"]),
        Route("/api/jobs/{job_id:str}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/{job_id:str}/input", job_input),
        Route("/api/jobs/{job_id:str}/events", events),
        Route("/api/jobs/{job_id:str}/preview", preview),
        Route("/api/jobs/{job_id:str}/result", result),
        Route("/api/gallery", list_gallery),
        Route("/api/gallery/{key:str}/{index:int}.png", thumbnail),
        Route("/api/models", upload_model, methods=["POST"]),
        WebSocketRoute("/api/live", live),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
