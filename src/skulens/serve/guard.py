"""The request guard in front of every route: API key, body size, body deadline, content type.

A pure ASGI middleware, so it covers every route the app has (new ones included) without reading a
body itself: it counts the bytes of the ``http.request`` messages as the route reads them and refuses
the request (413) as soon as the count passes the limit, whether or not a ``Content-Length`` was sent
(chunked bodies have none). Nothing is buffered here and nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from fastapi import HTTPException
from fastapi.responses import JSONResponse

#: Media types a request body may have; anything else is answered 415 before the body is read.
ACCEPTED_MEDIA_TYPES = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
#: Longest any text of a user's request is quoted back in an error (errors never echo input in full).
MAX_QUOTED_CHARS = 200
#: Longest error detail the service sends.
MAX_DETAIL_CHARS = 2_000


def safe_text(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` made encodable as UTF-8 (lone surrogates escaped) and cut to ``limit`` characters."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_response(status: int, error: str, detail: str, headers: dict | None = None) -> JSONResponse:
    """The JSON ``{"error", "detail"}`` answer every refusal uses (the detail made safe and short)."""
    return JSONResponse({"error": error, "detail": safe_text(detail)}, status_code=status, headers=headers)


class BodyRefused(HTTPException):
    """A request body refused while it is read (too large, stalled, cut off); raised from ``receive``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(status_code=status, detail=detail)
        self.error = error


def media_type(headers: dict[str, str]) -> str:
    """The request's media type, lower case, without parameters ('' when there is no Content-Type)."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _boundary(content_type: str) -> bytes | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


class _BodyReader:
    """Wraps ``receive``: counts body bytes, enforces the size limit and the body deadline, and checks
    that a multipart body ends with its closing boundary (a cut-off upload is refused, not ignored)."""

    def __init__(self, receive, max_bytes: int, timeout_s: float, boundary: bytes | None) -> None:
        self._receive, self.max_bytes, self.timeout_s = receive, max_bytes, timeout_s
        self.closing = b"--" + boundary + b"--" if boundary else None
        self.read = 0
        self.done = False
        self.refused: BodyRefused | None = None
        self._tail = b""
        self._deadline: float | None = None

    async def __call__(self):
        if self.refused is not None:
            raise self.refused
        if self.done:  # the body is complete: later receives wait for a disconnect, no deadline
            return await self._receive()
        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout_s
        try:
            message = await asyncio.wait_for(self._receive(), max(self._deadline - time.monotonic(), 0.001))
        except TimeoutError:
            self.refused = BodyRefused(
                408, "timeout", f"the request body did not arrive within {self.timeout_s:g} s; send it faster or in parts"
            )
            raise self.refused from None
        if message["type"] != "http.request":
            return message
        chunk = message.get("body", b"")
        self.read += len(chunk)
        if self.read > self.max_bytes:
            self.refused = BodyRefused(413, "too_large", f"request body is over the {self.max_bytes:,}-byte limit")
            raise self.refused
        if self.closing is not None:
            self._tail = (self._tail + chunk)[-(len(self.closing) + 8) :]
        if not message.get("more_body", False):
            self.done = True
            if self.closing is not None and self.read and not self._tail.rstrip(b"\r\n \t").endswith(self.closing):
                self.refused = BodyRefused(
                    400,
                    "truncated_body",
                    "the multipart body ends before its closing boundary (an upload was cut off); send it again",
                )
                raise self.refused
        return message


class RequestGuard:
    """Pure ASGI middleware: API key on ``/v1/*``, accepted media types, and a streaming body limit.

    ``max_body_bytes`` bounds the bytes read from any request body (413 at the first chunk over it, so
    at most one chunk more is ever read); ``body_timeout_s`` bounds the time a body may take to arrive
    (408). Slow or idle connections that have not sent their headers are closed by the server
    (:mod:`skulens.serve.server`), not here.
    """

    def __init__(self, app, api_key: str | None, max_body_bytes: int, body_timeout_s: float = 60.0) -> None:
        self.app, self.api_key = app, api_key
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._check_headers(scope.get("path", ""), scope.get("method", "GET"), headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        body = _BodyReader(receive, self.max_body_bytes, self.body_timeout_s, _boundary(headers.get("content-type", "")))
        started = False

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body, watched_send)
        except BodyRefused as exc:  # a route that let the refusal escape: still answer it, if not already
            if started:
                raise
            await error_response(exc.status_code, exc.error, str(exc.detail))(scope, receive, send)

    def _check_headers(self, path: str, method: str, headers: dict[str, str]) -> JSONResponse | None:
        if self.api_key and path.startswith("/v1/"):
            given = headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                what = "missing" if not given else "wrong"
                return error_response(401, "unauthorized", f"X-API-Key header is {what}; send the service's API key")
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return error_response(400, "bad_request", "Content-Length header is not a number")
            if int(length) > self.max_body_bytes:
                return error_response(
                    413, "too_large", f"request body is {int(length):,} bytes, over the {self.max_body_bytes:,}-byte limit"
                )
        has_body = "transfer-encoding" in headers or (length is not None and int(length) > 0)
        kind = media_type(headers)
        if method in ("POST", "PUT", "PATCH") and has_body and kind and kind not in ACCEPTED_MEDIA_TYPES:
            return error_response(
                415,
                "unsupported_media_type",
                f"Content-Type {kind[:MAX_QUOTED_CHARS]!r} is not accepted; send {', '.join(ACCEPTED_MEDIA_TYPES)}",
            )
        return None
