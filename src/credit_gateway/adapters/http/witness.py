"""C2SP tlog-witness over HTTPS, both ends.

`WitnessEndpoint` serves ``POST /add-checkpoint`` on the gateway's HTTPS listener (beside the
token endpoint, under the same connection, head, body and size bounds: adapters/http/server.py).
It answers as the spec says: 200 with the cosignature line; 400, 403, 404, 409 (whose body is the
size last cosigned, ``text/x.tlog.size``) or 422 with a line saying why.

`WitnessTransport` is the log's side: one aiohttp client session per process, keep-alive
connections as the spec recommends, every request bounded by one total timeout, an answer read
up to MAX_ANSWER_BYTES, no redirects followed. The witness's server certificate must chain to
the CA configured for it. No client certificate is sent: add-checkpoint has no authentication
beyond the log's signature on the checkpoint (what a request can do is advance a witness along a
log's own signed, consistent history), and requiring one would put every peer's CA into the
trust store our token endpoint shares.
"""

from __future__ import annotations

import ssl

import aiohttp

from credit_gateway.adapters.http.server import HttpRequest, HttpResponse, media_type
from credit_gateway.domain.witness import WitnessRefusal
from credit_gateway.services.witness import (
    MAX_ANSWER_BYTES,
    SIZE_CONTENT_TYPE,
    Answer,
    Post,
    Witness,
    WitnessError,
)

ADD_CHECKPOINT_PATH = "/add-checkpoint"
_TEXT = ("Content-Type", "text/plain; charset=utf-8")


class WitnessEndpoint:
    def __init__(self, witness: Witness) -> None:
        self.witness = witness

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Blocking (a transaction): the HTTPS server runs it on a database thread."""
        if request.method != "POST":
            return HttpResponse(405, (("Allow", "POST"), _TEXT), b"add-checkpoint is a POST\n")
        try:
            line = self.witness.add_checkpoint(request.body)
        except WitnessRefusal as refusal:
            if refusal.status == 409 and refusal.latest_size is not None:
                body = f"{refusal.latest_size}\n".encode()
                return HttpResponse(409, (("Content-Type", SIZE_CONTENT_TYPE),), body)
            return HttpResponse(refusal.status, (_TEXT,), f"{refusal.message}\n".encode())
        return HttpResponse(200, (_TEXT,), line)


class WitnessTransport:
    """The process's HTTPS client to witnesses; made and closed on the server's event loop."""

    def __init__(self, timeout: float) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"User-Agent": "credit-gateway"},
        )

    def poster(self, url: str, context: ssl.SSLContext) -> Post:
        target = url.rstrip("/") + ADD_CHECKPOINT_PATH

        async def post(body: bytes) -> Answer:
            async with self._session.post(
                target, data=body, ssl=context, allow_redirects=False, headers=[_TEXT]
            ) as response:
                data = bytearray()
                while chunk := await response.content.read(MAX_ANSWER_BYTES + 1 - len(data)):
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise WitnessError(f"an answer over {MAX_ANSWER_BYTES} bytes")
                content_type = media_type(response.headers.get("Content-Type"))
                return Answer(response.status, content_type, bytes(data))

        return post

    async def close(self) -> None:
        await self._session.close()
