"""Every TLS context of the gateway comes from here (STYLE lesson 7): gRPC server credentials,
the HTTPS authorization server's context, client credentials for tools and tests, and the
client context for talking to witnesses.

TLS 1.3 only on the HTTPS side; gRPC's core negotiates TLS 1.3 by default and requires and
verifies the client certificate against our CA.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc

from credit_gateway.errors import ConfigError
from credit_gateway.runtime.config import Settings


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def grpc_server_credentials(settings: Settings) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(_read(settings.server_key), _read(settings.server_cert))],
        root_certificates=_read(settings.ca_cert),
        require_client_auth=True,
    )


def grpc_channel_credentials(
    ca_cert: Path, cert: Path | None, key: Path | None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_cert),
        private_key=_read(key) if key else None,
        certificate_chain=_read(cert) if cert else None,
    )


def https_server_context(settings: Settings) -> ssl.SSLContext:
    """Client certificates are requested, not required: the token endpoint decides (RFC 8705)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(settings.server_cert, settings.server_key)
    context.load_verify_locations(cafile=str(settings.ca_cert))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(ca: Path | None) -> ssl.SSLContext:
    """TLS to a witness: its certificate checked against ``ca`` (None: the system's roots) and
    its host name; TLS 1.2 at least, for witnesses that are not gateways like this one."""
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[Path]:
    """`data` as a file path for the one API that reads only files (SSLContext.load_cert_chain):
    an anonymous memory file where the kernel has them, so the key never touches a disk; else a
    private temporary file, removed at once."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("peer-client", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield Path(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp()  # mode 0600
    try:
        os.write(fd, data)
        os.close(fd)
        yield Path(name)
    finally:
        os.unlink(name)


def peer_client_context(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """TLS to a peer platform's token endpoint: its certificate checked against the peer's CA
    and its host name, our client certificate presented."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with _memory_file(cert_pem + b"\n" + key_pem) as path:
        context.load_cert_chain(path)
    return context
