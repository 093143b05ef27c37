"""The Prometheus endpoint: `GET /metrics` on a listener of its own, in the gateway's loop.

Plain HTTP, no authentication: what it serves is counts and levels labelled by method, code,
reason and pool (credit_gateway.metrics), no personal data and no participant's name. Still it
is an operator's view, so it listens only where `metrics_address` says (off by default), which
should be a loopback or management interface, never the participants' one. The page is
rendered on the event loop: the levels it reads are counters only the loop changes, and a
scrape every few seconds costs about a millisecond.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from aiohttp import web

from credit_gateway.adapters.http.server import bind

PATH = "/metrics"
Render = Callable[[], tuple[bytes, str]]


class MetricsServer:
    def __init__(self, runner: web.AppRunner, listener: socket.socket) -> None:
        self._runner = runner
        self.port = int(listener.getsockname()[1])

    async def stop(self) -> None:
        await self._runner.cleanup()


async def serve_metrics(host: str, port: int, render: Render) -> MetricsServer:
    """Listen on host:port (0: any free port) and answer GET /metrics with `render()`.
    Raises OSError when the address cannot be bound."""

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type  # with its version and charset
        return response

    listener = bind(host, port)
    app = web.Application()
    app.router.add_get(PATH, scrape)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    try:
        await runner.setup()
        await web.SockSite(runner, listener).start()
    except BaseException:
        listener.close()
        await runner.cleanup()
        raise
    return MetricsServer(runner, listener)
