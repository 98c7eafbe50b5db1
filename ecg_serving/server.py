"""How both services serve HTTP: uvicorn with a header-read deadline and an idle timeout.

uvicorn closes an idle keep-alive connection, but it sets no deadline on a request's headers:
a client that connects and sends nothing, or sends a header line now and then (slowloris),
holds its connection forever. Here every request's headers must be complete within
`header_timeout_s` of the connection opening (or of the request's first byte on a kept-alive
connection); otherwise the connection is closed. Slow bodies and TLS are left to the reverse
proxy in front (README, production notes). Both `app.main` and `ml_server.main` run through
`run_server`, so the two services hold the same line.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn

from ecg_serving.quiet import quiet_routine_logs

logger = logging.getLogger(__name__)

# Generous for a real client on a slow link (headers are a few hundred bytes), short enough that
# a few hundred stalled connections are shed within seconds.
HEADER_TIMEOUT_S = 10.0
# uvicorn's default: an idle kept-alive connection is closed after this many seconds.
KEEP_ALIVE_S = 5


def with_header_timeout(base: type[asyncio.Protocol], timeout_s: float) -> type[asyncio.Protocol]:
    """`base` (a uvicorn HTTP protocol) closing connections whose headers are late."""

    # uvicorn's protocols share these attributes: `transport`, `loop`, `cycle` (the request in
    # progress, replaced when the next request's headers are complete).
    class HeaderTimeoutProtocol(base):  # type: ignore[valid-type,misc]
        _header_timer: asyncio.TimerHandle | None = None
        _waiting_after: object = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._between_requests():
                self._arm()  # the first byte of the next request on a kept-alive connection
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._waiting_after:
                self._disarm()  # a new request's headers are complete

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._waiting_after = self.cycle
            self._header_timer = self.loop.call_later(timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                logger.debug("closing a connection whose headers took over %.1fs", timeout_s)
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeoutProtocol


def timeout_options(
    *, header_timeout_s: float = HEADER_TIMEOUT_S, keep_alive_s: int = KEEP_ALIVE_S
) -> dict[str, Any]:
    """uvicorn options (`uvicorn.run` or `uvicorn.Config`) that set both timeouts."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return {
        "http": with_header_timeout(AutoHTTPProtocol, header_timeout_s),
        "timeout_keep_alive": keep_alive_s,
    }


def run_server(
    app: Any,
    *,
    host: str,
    port: int,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    keep_alive_s: int = KEEP_ALIVE_S,
    **options: Any,
) -> None:
    """`uvicorn.run(app, …)` with the header-read and idle timeouts; `options` pass through."""
    quiet_routine_logs()
    uvicorn.run(
        app,
        host=host,
        port=port,
        **timeout_options(header_timeout_s=header_timeout_s, keep_alive_s=keep_alive_s),
        **options,
    )
