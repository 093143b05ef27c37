"""The delivery worker's task, beside the audit integrator on the server's loop: every
outbox_poll_ms it delivers what is due in the outbox partitions whose leases it holds or can
take (services/delivery.py). One per process; the leases make one deliverer per partition
across every replica."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket

from credit_gateway.adapters.grpc.peer_client import PeerClient
from credit_gateway.adapters.storage.peers import PeerCredentials
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.delivery import Delivery, Sender

log = logging.getLogger("credit_gateway.runtime.delivery")


def holder_name() -> str:
    """This worker in the leases: host, process and a random part (two gateways may run in one
    process, as the tests' replicas do)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def start(gateway: Gateway, blocking: Blocking) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(deliver(gateway, blocking))]


async def deliver(gateway: Gateway, blocking: Blocking) -> None:
    settings = gateway.settings
    timeout = float(settings.peer_timeout_seconds)

    def sender_for(credentials: PeerCredentials) -> Sender:
        return PeerClient(credentials, timeout, gateway.clock)

    delivery = Delivery(gateway, holder_name(), sender_for, random.SystemRandom().random)
    pause = settings.outbox_poll_ms / 1000
    try:
        while True:
            await asyncio.sleep(pause)
            try:
                await delivery.poll(blocking.call)
            except Exception as error:  # a database blip, a racing replica: next time
                log.error("delivery failed", extra={"fields": {"error": str(error)}})
    finally:
        # Stopping: the connections closed first (on the loop alone), then the leases given
        # back at once rather than when they run out, if the threads still take work.
        await delivery.close()
        try:
            await blocking.call(delivery.release)
        except (Exception, asyncio.CancelledError) as error:  # the threads stopped first
            log.info("leases left to expire", extra={"fields": {"error": repr(error)}})
