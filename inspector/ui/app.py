"""The operator's page as an ASGI app (Starlette): read-only, every asset served from here.

``/`` the page, ``/static/*`` its script and style, ``/api/stream`` the live updates
(server-sent events), ``/api/status`` and ``/api/events?limit=N`` for other programs,
``/api/frame/<camera>`` the newest picture of a camera, ``/evidence/<path>`` the evidence
store's pictures (JPEG and PNG files only: never its index). With a token, every request must
carry it: ``Authorization: Bearer``, or ``?token=`` once (the page then keeps it in a cookie,
which the browser's live stream and pictures send along), else 401 and the connection closes.

A bad request gets a 4xx and no log line; anything the app did not foresee a 500 and one
line. Each refusal is counted by reason (:mod:`inspector.ui.refusals`) for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inspector.ui.refusals import Refusals
from inspector.ui.state import LiveState

log = structlog.get_logger(__name__)

COOKIE = "inspector_token"
MAX_EVENTS_LIMIT = 1000
_CACHED_FILES = 64
_CACHED_MAX_BYTES = 256 * 1024
_KEEPALIVE_S = 15.0  # a comment line now and then: proxies and browsers keep the stream open
_MAX_PATH = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a NUL reached os calls and raised
_PICTURES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
_MAGIC = {"image/jpeg": b"\xff\xd8", "image/png": b"\x89PNG\r\n\x1a\n"}
_CLOSE = {"Connection": "close"}  # a refused client frees its connection at once


def _limit(raw: str) -> int | None:
    """ASCII digits only: ``str.isdigit`` accepts "²" and "٣", and ``int`` a 5000-digit
    number only to raise."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_EVENTS_LIMIT else None


def _static_dir() -> Path:
    return Path(str(resources.files("inspector.ui") / "static"))


class Guard:
    """Outermost: a path with control characters or too long is a 400; an exception the
    routes did not foresee is a 500 and one log line, not uvicorn's multi-line traceback."""

    def __init__(self, app: ASGIApp, refusals: Refusals) -> None:
        self.app, self.refusals = app, refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if len(path) > _MAX_PATH or _CONTROL.search(path):
            self.refusals.add("bad_request")
            await PlainTextResponse("400: not a path this page serves\n", 400)(scope, receive, send)
            return
        started = finished = False

        async def watched(message: Message) -> None:
            nonlocal started, finished
            started = started or message["type"] == "http.response.start"
            finished = message["type"] == "http.response.body" and not message.get("more_body")
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            self.refusals.add("error")
            log.error(
                "ui_request_failed", path=path[:200], error=f"{type(exc).__name__}: {exc}"[:300]
            )
            if not started:
                response = PlainTextResponse("500: the page failed\n", 500, headers=_CLOSE)
                await response(scope, receive, send)
                return
            if not finished:  # ends the answer begun (Starlette's own 500 is a whole one)
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})


class TokenGate:
    """401 for a request without the token; a valid ``?token=`` sets the page's cookie."""

    def __init__(self, app: ASGIApp, token: str, refusals: Refusals) -> None:
        self.app, self.token, self.refusals = app, token.encode(), refusals

    def _valid(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        bearer = headers.get("authorization", "")
        from_header = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = query.get("token", [None])[0]
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            cookie = SimpleCookie()
        from_cookie = cookie[COOKIE].value if COOKIE in cookie else None
        if not any(self._valid(v) for v in (from_header, from_query, from_cookie)):
            self.refusals.add("unauthorised")
            response = PlainTextResponse(
                "401: this page needs its token (?token=... or Authorization: Bearer ...)\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="line-inspector"', **_CLOSE},
            )
            await response(scope, receive, send)
            return
        if self._valid(from_query) and not self._valid(from_cookie):

            async def send_with_cookie(message: dict[str, object]) -> None:
                if message["type"] == "http.response.start":
                    value = f"{COOKIE}={from_query}; Path=/; HttpOnly; SameSite=Strict"
                    headers = [*message.get("headers", []), (b"set-cookie", value.encode())]  # type: ignore[misc]
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_with_cookie)  # type: ignore[arg-type]
            return
        await self.app(scope, receive, send)


def create_app(
    state: LiveState,
    evidence_root: Path | None,
    token: str | None = None,
    max_live_pages: int = 16,
    push_interval_s: float = 0.25,
) -> ASGIApp:
    page = (_static_dir() / "index.html").read_text(encoding="utf-8")
    root = evidence_root.resolve() if evidence_root is not None else None
    refused = state.refused
    recent: dict[Path, bytes] = {}  # evidence pictures served lately, oldest first

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def status(request: Request) -> Response:
        _, body = state.status_json()
        return Response(body, media_type="application/json")

    async def events(request: Request) -> Response:
        limit = _limit(request.query_params.get("limit", "20"))
        if limit is None:
            refused.add("bad_request")
            return JSONResponse(
                {"error": f"limit must be a whole number from 1 to {MAX_EVENTS_LIMIT}"}, 400
            )
        return JSONResponse(state.events(limit))

    async def frame(request: Request) -> Response:
        camera = request.path_params["camera"]
        # Drawing and encoding release the GIL; off the loop, so the page stays responsive.
        jpeg = state.cached_jpeg(camera) or await run_in_threadpool(state.frame_jpeg, camera)
        if jpeg is None:
            return PlainTextResponse(f"no frame from camera {camera!r} yet\n", 404)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def picture(relative: str) -> tuple[Path, str] | None:
        """The store's picture at ``relative``, or None for anything else: outside the store,
        not a .jpg/.jpeg/.png (its SQLite index, -wal, -shm, .lock), a link to such a file."""
        media = _PICTURES.get(PurePosixPath(relative).suffix.lower())
        if root is None or media is None:
            return None
        try:
            wanted = (root / relative).resolve()
        except (OSError, ValueError, RuntimeError):  # a name too long, a loop of links
            return None
        if not wanted.is_relative_to(root) or _PICTURES.get(wanted.suffix.lower()) != media:
            return None
        return wanted, media

    async def evidence(request: Request) -> Response:
        if root is None:
            return PlainTextResponse("the evidence sink is off\n", 404)
        found = picture(request.path_params["path"])
        if found is None:
            refused.add("not_picture")
            return PlainTextResponse("not a picture of the evidence store\n", 404)
        wanted, media = found
        # Crops are a few kB and every page asks for the same new ones: read once, from
        # memory after that (a worker thread per file cost more than the file).
        body = recent.get(wanted)
        if body is None:
            try:
                body = wanted.read_bytes() if wanted.is_file() else None
            except (OSError, ValueError):
                body = None
            if body is None:
                return PlainTextResponse("no such picture (yet)\n", 404)
            if not body.startswith(_MAGIC[media]):  # named like a picture, but is none
                refused.add("not_picture")
                return PlainTextResponse("not a picture of the evidence store\n", 404)
            if len(body) <= _CACHED_MAX_BYTES:
                recent[wanted] = body
                while len(recent) > _CACHED_FILES:
                    recent.pop(next(iter(recent)))
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=3600"})

    async def stream(request: Request) -> Response:
        if state.live_pages >= max_live_pages:
            refused.add("streams")
            return PlainTextResponse(
                f"503: {max_live_pages} live pages open already\n", 503,
                headers={"Retry-After": "5", **_CLOSE},
            )  # fmt: skip
        state.live_pages += 1  # on the server's one loop thread: no race

        async def updates() -> AsyncIterator[str]:
            try:
                last, quiet = -1, 0.0
                yield "retry: 2000\n\n"
                while not state.closing.is_set():  # ends by itself: a clean shutdown
                    version, body = state.status_json()
                    if version != last:
                        last, quiet = version, 0.0
                        yield f"data: {body.decode()}\n\n"
                    elif quiet >= _KEEPALIVE_S:
                        quiet = 0.0
                        yield ": keepalive\n\n"
                    await asyncio.sleep(push_interval_s)
                    quiet += push_interval_s
            finally:
                state.live_pages -= 1

        return StreamingResponse(
            updates(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/status", status),
            Route("/api/events", events),
            Route("/api/frame/{camera}", frame),
            Route("/api/stream", stream),
            Route("/evidence/{path:path}", evidence),
            Mount("/static", StaticFiles(directory=_static_dir()), name="static"),
        ]
    )
    return Guard(TokenGate(app, token, refused) if token else app, refused)
