"""The operator's page as an ASGI app (Starlette): read-only, every asset served from here.

``/`` the page, ``/static/*`` its script and style, ``/api/stream`` the live updates
(server-sent events), ``/api/status`` and ``/api/events?limit=N`` for other programs,
``/api/frame/<camera>`` the newest picture of a camera, ``/evidence/<path>`` the evidence
store's pictures. With a token, every request must carry it: ``Authorization: Bearer``, or
``?token=`` once (the page then keeps it in a cookie, which the browser's live stream and
pictures send along), else 401.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

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
from starlette.types import ASGIApp, Receive, Scope, Send

from inspector.ui.state import LiveState

COOKIE = "inspector_token"
MAX_EVENTS_LIMIT = 1000
_CACHED_FILES = 64
_CACHED_MAX_BYTES = 256 * 1024
_KEEPALIVE_S = 15.0  # a comment line now and then: proxies and browsers keep the stream open


def _static_dir() -> Path:
    return Path(str(resources.files("inspector.ui") / "static"))


class TokenGate:
    """401 for a request without the token; a valid ``?token=`` sets the page's cookie."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

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
            response = PlainTextResponse(
                "401: this page needs its token (?token=... or Authorization: Bearer ...)\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="line-inspector"'},
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
    recent: dict[Path, bytes] = {}  # evidence pictures served lately, oldest first

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def status(request: Request) -> Response:
        _, body = state.status_json()
        return Response(body, media_type="application/json")

    async def events(request: Request) -> Response:
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_EVENTS_LIMIT:
            return JSONResponse(
                {"error": f"limit must be a whole number from 1 to {MAX_EVENTS_LIMIT}"}, 400
            )
        return JSONResponse(state.events(int(raw)))

    async def frame(request: Request) -> Response:
        camera = request.path_params["camera"]
        # Drawing and encoding release the GIL; off the loop, so the page stays responsive.
        jpeg = state.cached_jpeg(camera) or await run_in_threadpool(state.frame_jpeg, camera)
        if jpeg is None:
            return PlainTextResponse(f"no frame from camera {camera!r} yet\n", 404)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def evidence(request: Request) -> Response:
        if root is None:
            return PlainTextResponse("the evidence sink is off\n", 404)
        wanted = (root / request.path_params["path"]).resolve()
        if not wanted.is_relative_to(root) or wanted == root:
            return PlainTextResponse("outside the evidence store\n", 404)
        # Crops are a few kB and every page asks for the same new ones: read once, from
        # memory after that (a worker thread per file cost more than the file).
        body = recent.get(wanted)
        if body is None:
            try:
                body = wanted.read_bytes() if wanted.is_file() else None
            except OSError:
                body = None
            if body is None:
                return PlainTextResponse("no such picture (yet)\n", 404)
            if len(body) <= _CACHED_MAX_BYTES:
                recent[wanted] = body
                while len(recent) > _CACHED_FILES:
                    recent.pop(next(iter(recent)))
        return Response(body, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def stream(request: Request) -> Response:
        if state.live_pages >= max_live_pages:
            return PlainTextResponse(f"503: {max_live_pages} live pages open already\n", 503)
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
    return TokenGate(app, token) if token else app
