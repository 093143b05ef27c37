"""`credit-gateway peers add|list`: the peer platforms the gateway delivers records to.

A peer's operator issues us a client certificate (`credit-gateway certs sign` on our CSR, at
their gateway) and registers us there as a participant; we register the peer here: its gRPC
address and CA, its token endpoint, who we are there (our client id), the certificate and key,
and which registered platform it is (PARTICIPANT: its agreement here says what we deliver).
`add` prints the key id our origin signatures carry, for the peer's operator to check against
the key registered for us there.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from credit_gateway.adapters.storage import keys as key_store
from credit_gateway.adapters.storage import peers as peer_store
from credit_gateway.crypto.master import MasterKey
from credit_gateway.errors import ConfigError, InvalidArgument
from credit_gateway.runtime.config import Settings, split_address
from credit_gateway.runtime.gateway import utcnow
from credit_gateway.services.delivery import client_key_id
from credit_gateway.services.operator import database, mac_key

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MAX_TEXT = 64  # client id, purpose: the columns' width
MAX_URL = 255


def _certificates(path: Path, option: str) -> list[x509.Certificate]:
    try:
        found = x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError:
        raise InvalidArgument.field(option, f"{path} holds no PEM certificate") from None
    return found


def _client_pair(cert_path: Path, key_path: Path) -> tuple[bytes, bytes]:
    """The client certificate and its key, as PEM; the key must be the certificate's, EC P-256
    (our origin signatures and client assertions are ES256), and not encrypted."""
    cert = _certificates(cert_path, "--cert")[0]
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise InvalidArgument.field("--cert", "only EC P-256 client certificates are supported")
    raw = key_path.read_bytes()
    try:
        key = load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise InvalidArgument.field(
            "--key", f"{key_path} is not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    ) != public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo):
        raise InvalidArgument.field(
            "--key", f"{key_path} is not the key of the certificate {cert_path}"
        )
    key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return cert.public_bytes(Encoding.PEM), key_pem


def _text(option: str, value: str, limit: int = MAX_TEXT) -> str:
    if not value or len(value) > limit or not value.isprintable() or value != value.strip():
        raise InvalidArgument.field(option, f"1 to {limit} printable characters, no spaces around")
    return value


def _token_url(value: str) -> str:
    _text("--token-url", value, MAX_URL)
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidArgument.field("--token-url", "an https:// URL of the peer's token endpoint")
    return value


def _grpc_address(value: str) -> str:
    _text("--grpc", value, MAX_URL)
    try:
        _, port = split_address(value)
    except ConfigError:
        port = 0
    if port == 0:
        raise InvalidArgument.field("--grpc", f"HOST:PORT of the peer's gRPC server, not {value!r}")
    return value


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name
    if not _NAME.fullmatch(name):
        raise InvalidArgument.field("name", "lower-case letters, digits and '-', at most 63")
    _grpc_address(args.grpc)
    ca = b"".join(c.public_bytes(Encoding.PEM) for c in _certificates(Path(args.ca), "--ca"))
    cert_pem, key_pem = _client_pair(Path(args.cert), Path(args.key))
    peer = peer_store.Peer(
        name=name,
        participant_id=_text("--participant", args.participant),
        grpc_address=args.grpc,
        token_url=_token_url(args.token_url),
        client_id=_text("--client-id", args.client_id),
        purpose=_text("--purpose", args.purpose) if args.purpose is not None else "",
        ca_pem=ca,
        cert_pem=cert_pem,
        created_at=utcnow(),
    )
    master = MasterKey.load(settings.master_key_file)
    with database(settings) as db, db.transaction() as session:
        envelope = key_store.load_envelope(session, master)
        stored = peer_store.add_peer(session, envelope, mac_key(settings), peer, key_pem)
    print(
        f"peers: added {stored.name} ({stored.participant_id}) at {stored.grpc_address}, "
        f"for {stored.purpose}"
    )
    print(f"peers: our origin key id there: {client_key_id(cert_pem)}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as db, db.transaction(write=False) as session:
        listed = peer_store.list_peers(session)
    for peer in listed:
        cert = x509.load_pem_x509_certificate(peer.cert_pem)
        print(
            f"{peer.name}  participant={peer.participant_id}  grpc={peer.grpc_address}  "
            f"token_url={peer.token_url}  client_id={peer.client_id}  purpose={peer.purpose}  "
            f"key_id={client_key_id(peer.cert_pem)}  "
            f"cert_valid_until={cert.not_valid_after_utc.isoformat()}"
        )
    print(f"peers: {len(listed)}")
    return 0


def add_peer_commands(sub: Any) -> None:
    peers = sub.add_parser("peers", help="peer platforms the gateway delivers records to")
    actions = peers.add_subparsers(dest="peers_command", required=True)
    add = actions.add_parser("add", help="register a peer platform to deliver to")
    add.set_defaults(handler=cmd_add)
    add.add_argument("name", help="the peer's name here (lower-case letters, digits, '-')")
    add.add_argument("--participant", required=True, help="the peer platform as registered here")
    add.add_argument("--grpc", required=True, help="the peer's gRPC address, HOST:PORT")
    add.add_argument("--token-url", required=True, help="the peer's token endpoint (https://)")
    add.add_argument("--client-id", required=True, help="who we are at the peer")
    add.add_argument("--ca", required=True, help="the CA file the peer's servers chain to")
    add.add_argument("--cert", required=True, help="the client certificate the peer issued us")
    add.add_argument("--key", required=True, help="that certificate's private key (PEM)")
    add.add_argument(
        "--purpose", help="what deliveries are for (default: the one its push agreement names)"
    )
    listing = actions.add_parser("list", help="the registered peers (never their keys)")
    listing.set_defaults(handler=cmd_list)
