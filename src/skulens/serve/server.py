"""Running the service under uvicorn with connection timeouts, and the warning for a public address.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for the headers
of a connection's first request; :class:`HeaderTimeoutH11Protocol` closes any connection that has not
sent a complete request head within ``header_timeout_s`` (slow-loris clients). Request bodies have
their own deadline in :class:`skulens.serve.guard.RequestGuard`.
"""

from __future__ import annotations

import ipaddress

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a connection may take to send a complete request head.
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: Seconds an idle keep-alive connection stays open.
DEFAULT_KEEP_ALIVE_S = 5
#: Largest request head (request line + headers) in bytes.
MAX_HEADER_BYTES = 64 * 1024


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head does not arrive in time."""

    header_timeout_s = DEFAULT_HEADER_TIMEOUT_S

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_deadline)

    def _header_deadline(self) -> None:
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            self.transport.close()


def protocol_with_timeout(header_timeout_s: float) -> type[HeaderTimeoutH11Protocol]:
    """A :class:`HeaderTimeoutH11Protocol` class with its own head deadline."""
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": header_timeout_s})


def uvicorn_config(app, host: str, port: int, log_level: str = "info", header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S):
    """The uvicorn ``Config`` skulens serves with (h11, head deadline, keep-alive timeout, head size cap)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol_with_timeout(header_timeout_s),
        timeout_keep_alive=DEFAULT_KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )


def run_server(app, host: str, port: int, log_level: str = "info", header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S) -> None:
    """Serve ``app`` until stopped (see :func:`uvicorn_config`)."""
    import uvicorn

    uvicorn.Server(uvicorn_config(app, host, port, log_level, header_timeout_s)).run()


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """A warning when the service listens beyond this machine with no API key (``None`` otherwise)."""
    if api_key or is_loopback(host):
        return None
    return (
        f"warning: serving on {host} with no API key: anyone who can reach this machine can call /v1. "
        "Set --api-key (or $SKULENS_API_KEY), or listen on 127.0.0.1 behind a proxy."
    )
