"""Live mode: camera (or video) frames over a WebSocket, stylised by a feed-forward style model, sent back.

The protocol of `/api/live` (one connection per page in live mode):

    page -> server   text   {"type": "settings", "model": KEY, "blend": [w, ...] | null, "stabilise": bool}
                     text   {"type": "snapshot"}           the last frame and its result become a finished job
                     binary 4-byte big-endian frame number, then the frame as JPEG (or PNG)
    server -> page   binary 4-byte big-endian header length, the header (JSON: "seq", "server_ms", "dropped",
                            "paced", "model"), then the stylised frame as JPEG
                     text   {"type": "settings" | "snapshot" | "error", ...}

The server always works on the newest frame: frames that arrive while one is being stylised replace each
other in a one-place mailbox (`NewestFrame`), and the ones replaced are counted as dropped, so nothing queues
behind a camera faster than the network. Frames are stylised one at a time, for every connection, on one
thread (`Stylist`), at a lower scheduling priority (nice +10) than the server and its job processes.

Live mode does not go through the job queue, and while a job runs it goes on at a lower rate rather than
pausing: after each frame it waits until the frame's CPU time is at most a quarter of the time since the
frame began (`SHARE_WHILE_JOB`: a quarter of one core), and each frame says so ("paced"). With its low
priority on top, a job that needs the core live mode is on gets nearly all of it. Pausing would give the job
everything, but a job can run for minutes, and a frozen camera reads as a broken page.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

SHARE_WHILE_JOB = 0.25  # of the time live mode may compute while a job runs
MAX_SIDE = 1280  # frames larger than this are refused (a camera at 720p fits)
MAX_MESSAGE_BYTES = 8 << 20  # a 1280 x 1280 PNG fits; `lossnet serve` has the server refuse longer messages
JPEG_QUALITY = 85
NETWORKS_KEPT = 3  # loaded style networks kept between frames (switching back is instant)
DEFAULT_MODEL = "starry-lite"


class LiveError(ValueError):
    """Something the page sent that live mode cannot use: its message goes back as {"type": "error"}."""


class NewestFrame:
    """A one-place mailbox: `put` replaces a frame nobody has taken yet (counted in `dropped`)."""

    def __init__(self):
        self.frame: tuple[int, bytes] | None = None
        self.ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def put(self, frame: tuple[int, bytes]) -> None:
        if self.frame is not None:
            self.dropped += 1
        self.frame = frame
        self.ready.set()

    async def take(self) -> tuple[int, bytes] | None:
        """The newest frame, once there is one; None once closed."""
        await self.ready.wait()
        frame, self.frame = self.frame, None
        self.ready.clear()
        if self.closed:
            return None
        return frame

    def close(self) -> None:
        self.closed = True
        self.ready.set()


@dataclass
class Settings:
    model: str = DEFAULT_MODEL
    blend: list[float] | None = None  # one weight per style of a multi-style model (None: its first style)
    stabilise: bool = False  # lossnet.temporal's Stabiliser: the last result carried along the optical flow


def decode_frame(data: bytes):
    """A JPEG or PNG frame -> (1, 3, H, W) in [0, 1]; the size is read from the header before any decoding."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    from ..io import MIN_SIDE
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ("JPEG", "PNG"):
            raise LiveError("a frame must be a JPEG or PNG image")
        w, h = image.size
        if max(w, h) > MAX_SIDE:
            raise LiveError(f"a {w}x{h} frame is over live mode's {MAX_SIDE} px a side")
        if min(w, h) < MIN_SIDE:
            raise LiveError(f"a {w}x{h} frame is too small: at least {MIN_SIDE} px a side")
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, LiveError):
            raise
        raise LiveError("a frame could not be decoded as an image") from None
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def encode_jpeg(image) -> bytes:
    from ..io import to_pil
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _lower_priority() -> None:
    """The stylising thread runs at nice +10 (Linux takes a thread id here): jobs and the server come first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (OSError, AttributeError):
        pass


class Stylist:
    """The one thread that stylises live frames, and the style networks it has loaded (by model file)."""

    def __init__(self, gallery, threads: int):
        self.gallery, self.threads = gallery, threads
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="studio-live", initializer=self._start_thread)
        self.networks: OrderedDict[str, object] = OrderedDict()

    def _start_thread(self) -> None:
        import torch
        _lower_priority()
        torch.set_num_threads(self.threads)

    def network(self, key: str):
        entry = self.gallery.get(key)
        if entry is None:
            raise LiveError(f"no style model {key!r} (the gallery lists them)")
        if entry.hash not in self.networks:
            from ..registry import load
            self.networks[entry.hash] = load(entry.path, "style").eval()
            while len(self.networks) > NETWORKS_KEPT:
                self.networks.popitem(last=False)
        self.networks.move_to_end(entry.hash)
        return self.networks[entry.hash]

    def check(self, settings: Settings) -> None:
        """Refuse settings that cannot run (unknown model, wrong number of blend weights), before any frame."""
        net = self.network(settings.model)
        self.style_vector(net, settings.blend)

    @staticmethod
    def style_vector(net, blend):
        from ..fast import style_weights
        if blend is None or net.n_styles == 1:
            return None
        return style_weights(net, blend=blend)

    def stylise(self, connection: "Connection", data: bytes) -> tuple[bytes, float]:
        """One frame: decode, stylise (stabilised if asked), keep for a snapshot, encode; (JPEG, CPU seconds)."""
        import torch

        from ..fast import apply
        cpu = time.thread_time()  # torch runs on this thread too at one intra-op thread; more threads: a floor
        frame = decode_frame(data)
        settings = connection.settings
        net = self.network(settings.model)
        with torch.inference_mode():
            result = apply(net, frame, style=self.style_vector(net, settings.blend), tile=0)
        if settings.stabilise:
            if connection.stabiliser is None:
                from ..temporal import Stabiliser
                connection.stabiliser = Stabiliser()
            result = connection.stabiliser(frame, result)
        connection.last = (frame, result)
        return encode_jpeg(result), time.thread_time() - cpu


@dataclass
class Connection:
    """One page's live stream: its settings, its stabiliser, and its last frame (for a snapshot)."""
    settings: Settings = field(default_factory=Settings)
    stabiliser: object | None = None
    last: tuple | None = None  # (frame, result) tensors

    def change(self, stylist: Stylist, message: dict) -> None:
        new = Settings(model=str(message.get("model", self.settings.model)),
                       blend=None if message.get("blend") is None else [float(w) for w in message["blend"]],
                       stabilise=bool(message.get("stabilise", False)))
        stylist.check(new)
        if (new.model, new.blend) != (self.settings.model, self.settings.blend) or not new.stabilise:
            self.stabiliser = None  # another style: the last result must not bleed into the new one
        self.settings = new


def snapshot(connection: Connection, queue, job_class) -> object:
    """The last frame and its result as a finished job of the history ("live"): shown, compared, downloadable."""
    from ..io import save_image
    from .history import RESULT
    if connection.last is None:
        raise LiveError("no frame yet to keep")
    frame, result = connection.last
    job_id = uuid.uuid4().hex
    folder = queue.root / job_id
    folder.mkdir(parents=True)
    save_image(frame, folder / "input.png")
    save_image(result, folder / RESULT)
    s = connection.settings
    params = {"model": s.model, "stabilise": s.stabilise, **({"blend": s.blend} if s.blend else {})}
    return queue.add_finished(job_class(job_id, "live", [], folder, params=params, input="input.png"))


async def serve(websocket, stylist: Stylist, queue, job_class, describe) -> None:
    """One live connection: a receiver that keeps only the newest frame, and a loop that stylises it."""
    from starlette.websockets import WebSocketDisconnect

    from ..errors import LossnetError
    connection, mailbox, sending = Connection(), NewestFrame(), asyncio.Lock()
    loop = asyncio.get_running_loop()

    async def send_json(message: dict) -> None:
        async with sending:
            await websocket.send_text(json.dumps(message))

    async def receive() -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    data = message["bytes"]
                    if len(data) < 5:
                        await send_json({"type": "error", "error": "a frame is a 4-byte number, then the image"})
                        continue
                    if len(data) > MAX_MESSAGE_BYTES:
                        await send_json({"type": "error", "error": f"a frame is at most {MAX_MESSAGE_BYTES >> 20} MB"})
                        continue
                    mailbox.put((struct.unpack(">I", data[:4])[0], data[4:]))
                    continue
                try:
                    request = json.loads(message.get("text") or "")
                    if not isinstance(request, dict):
                        raise LiveError("send a JSON object")
                    if request.get("type") == "settings":
                        await loop.run_in_executor(stylist.executor, connection.change, stylist, request)
                        await send_json({"type": "settings", "model": connection.settings.model,
                                         "blend": connection.settings.blend, "stabilise": connection.settings.stabilise})
                    elif request.get("type") == "snapshot":
                        job = await loop.run_in_executor(stylist.executor, snapshot, connection, queue, job_class)
                        await send_json({"type": "snapshot", "job": describe(job)})
                    else:
                        raise LiveError("a text message is {\"type\": \"settings\"} or {\"type\": \"snapshot\"}")
                except (LiveError, LossnetError, ValueError, TypeError) as e:
                    text = str(e) if isinstance(e, (LiveError, LossnetError)) else f"cannot read the message: {e}"
                    await send_json({"type": "error", "error": text})
        except WebSocketDisconnect:
            return
        finally:
            mailbox.close()

    async def stylise() -> None:
        while True:
            frame = await mailbox.take()
            if frame is None:
                return
            seq, data = frame
            start = time.perf_counter()
            try:
                result, cpu = await loop.run_in_executor(stylist.executor, stylist.stylise, connection, data)
            except (LiveError, LossnetError) as e:
                await send_json({"type": "error", "error": str(e), "seq": seq})
                continue
            took = time.perf_counter() - start
            paced = bool(queue.running)
            header = json.dumps({"seq": seq, "server_ms": round(took * 1000, 1), "dropped": mailbox.dropped,
                                 "paced": paced, "model": connection.settings.model}).encode()
            async with sending:
                await websocket.send_bytes(struct.pack(">I", len(header)) + header + result)
            if paced:  # a job is running: live frames take at most SHARE_WHILE_JOB of a core
                await asyncio.sleep(max(0.0, cpu / SHARE_WHILE_JOB - (time.perf_counter() - start)))

    receiver = asyncio.create_task(receive())
    try:
        await stylise()
    except (WebSocketDisconnect, RuntimeError):
        pass  # the page went away mid-send
    finally:
        mailbox.close()
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)


def origin_allowed(headers, host: str | None) -> bool:
    """A browser page from another site must not drive live mode (it can write snapshots): the Origin, when
    a browser sends one, must name this server."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser (a script, the bench)
    from urllib.parse import urlsplit
    return urlsplit(origin).netloc == (host or "")

