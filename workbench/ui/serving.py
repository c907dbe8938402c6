"""What the web server hands out from the data folder: the content-addressed image store, and nothing else.

* Images reach the page under ``studio/img/<sha256>.png``: the URL names the content only (not the data
  folder), the bytes carry critical PNG chunks only, and the reply has no ``ETag`` or ``Last-Modified``
  (Gradio's file route derives both from the file's mtime, and the write order of outputs can be tied to the
  system that made them).
* Gradio's own file routes (``gradio_api/file=...``) refuse every path inside the data folder, whatever
  ``allowed_paths`` says; files a handler returns are still copied into Gradio's cache and served from there.
* Uploads are capped per request (Gradio caps each file, but one request may carry a thousand files) and per
  client over a sliding window.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import unquote

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from workbench.image_store import ImageStore, critical_chunks_only
from workbench.ui.throttle import client_address

IMAGE_ROUTE = "studio/img/"  # relative, so the app also works under a root_path or behind a proxy
IMAGE_NAME = re.compile(r"^([0-9a-f]{64})\.png$")
# Content-addressed bytes never change; "private" keeps shared caches out of it.
IMAGE_HEADERS = {"Cache-Control": "private, max-age=86400, immutable", "X-Content-Type-Options": "nosniff"}
FILE_ROUTE_MARKERS = ("/file=", "/file/")
UPLOAD_PER_REQUEST = 24 * 1024**2  # one file of the 20 MB allowed per file, plus multipart overhead
UPLOAD_PER_CLIENT_HOUR = 1024**3


def image_url(path: str | Path) -> str:
    """The URL of a stored image (``<store>/<xx>/<sha256>.png``): its content hash, nothing else."""
    name = Path(path).name
    if not IMAGE_NAME.match(name):
        raise ValueError(f"not an image-store file name: {name!r}")
    return IMAGE_ROUTE + name


def image_route(store: ImageStore) -> Route:
    """GET/HEAD ``/studio/img/<sha256>.png`` from ``store``; 404 for any other name."""

    def serve(request: Request) -> Response:
        match = IMAGE_NAME.match(request.path_params["name"])
        if match is None:
            return Response(status_code=404)
        try:
            data = store.path(match.group(1)).read_bytes()
        except OSError:
            return Response(status_code=404)
        return Response(critical_chunks_only(data), media_type="image/png", headers=IMAGE_HEADERS)

    return Route("/" + IMAGE_ROUTE + "{name}", serve, methods=["GET", "HEAD"])


def _requested_file(path: str) -> str | None:
    """The file path a request to one of Gradio's file routes asks for (None for other routes)."""
    for marker in FILE_ROUTE_MARKERS:
        at = path.find(marker)
        if at >= 0:
            return unquote(path[at + len(marker) :])
    return None


def _inside(path: str, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(folder)


class DataFolderGuard:
    """ASGI middleware: Gradio's file routes answer 404 for anything inside the data folder (symlinks and
    ``..`` resolved), except Gradio's own cache if it was configured to live there."""

    def __init__(self, app: ASGIApp, data_dir: str | Path, cache_dir: str | Path) -> None:
        self.app = app
        self.data_dir = Path(os.path.realpath(data_dir))
        self.cache_dir = Path(os.path.realpath(cache_dir))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            wanted = _requested_file(scope.get("path", ""))
            if wanted and _inside(wanted, self.data_dir) and not _inside(wanted, self.cache_dir):
                await Response(status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class UploadLimit:
    """ASGI middleware for Gradio's upload route: a request must declare its size (Content-Length), at most
    ``per_request`` bytes, and a client may upload at most ``per_client`` bytes per ``window_s``."""

    def __init__(self, app: ASGIApp, per_request: int, per_client: int, window_s: float = 3600.0) -> None:
        self.app, self.per_request = app, per_request
        self.budget = ByteBudget(per_client, window_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope["path"].endswith("/upload"):
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if not length.isdigit():
            return Response("Uploads must declare their size (Content-Length).", status_code=411)
        size = int(length)
        if size > self.per_request:
            return Response(
                f"Upload too large: at most {self.per_request} bytes per request.", status_code=413
            )
        host = (scope.get("client") or ("local", 0))[0]
        client = client_address(host, headers.get(b"x-forwarded-for", b"").decode("latin-1") or None)
        if not self.budget.take(client, size):
            return Response("Too much uploaded from this address: try again later.", status_code=429)
        return None


class ByteBudget:
    """At most ``limit`` bytes per key in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._events: dict[str, list[tuple[float, int]]] = {}

    def take(self, key: str, size: int) -> bool:
        now = time.monotonic()
        events = [e for e in self._events.get(key, []) if now - e[0] < self.window_s]
        if sum(n for _, n in events) + size > self.limit:
            self._events[key] = events
            return False
        self._events[key] = [*events, (now, size)]
        return True


def app_kwargs(data_dir: Path, store: ImageStore) -> dict:
    """launch(app_kwargs=...): the image route and the data-folder guard, installed before Gradio's routes."""
    from gradio.utils import get_upload_folder

    guard = Middleware(DataFolderGuard, data_dir=data_dir, cache_dir=get_upload_folder())
    uploads = Middleware(UploadLimit, per_request=UPLOAD_PER_REQUEST, per_client=UPLOAD_PER_CLIENT_HOUR)
    return {"routes": [image_route(store)], "middleware": [guard, uploads]}
