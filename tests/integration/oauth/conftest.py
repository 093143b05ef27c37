"""Fixtures for the authorization server tests: a dev PKI and the server's TLS context."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from credit_gateway.devpki.pki import (
    IssuedCert,
    ParticipantKind,
    PkiPaths,
    init_pki,
    issue_participant,
)


def build_server_context(ca_cert: Path, server_cert: Path, server_key: Path) -> ssl.SSLContext:
    """Test stand-in for the lead's TLS context: TLS 1.3, client certificate asked, not required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(server_cert, server_key)
    context.load_verify_locations(cafile=ca_cert)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


@dataclass(frozen=True)
class OAuthPki:
    paths: PkiPaths
    agency: IssuedCert  # credit agency, registered
    platform: IssuedCert  # provincial platform, registered
    idp: IssuedCert  # identity provider, registered
    rogue_idp: IssuedCert  # identity provider kind, certificate from our CA, never registered
    stranger: IssuedCert  # government department, certificate from our CA, never registered


@pytest.fixture(scope="module")
def oauth_pki(tmp_path_factory: pytest.TempPathFactory) -> OAuthPki:
    directory = tmp_path_factory.mktemp("oauth-pki")
    paths = init_pki(directory)
    return OAuthPki(
        paths=paths,
        agency=issue_participant(directory, "agency", ParticipantKind.CREDIT_AGENCY),
        platform=issue_participant(directory, "platform", ParticipantKind.PROVINCIAL_PLATFORM),
        idp=issue_participant(directory, "idp", ParticipantKind.IDENTITY_PROVIDER),
        rogue_idp=issue_participant(directory, "rogue-idp", ParticipantKind.IDENTITY_PROVIDER),
        stranger=issue_participant(directory, "stranger", ParticipantKind.GOVERNMENT_DEPARTMENT),
    )


@pytest.fixture(scope="module")
def oauth_server_context(oauth_pki: OAuthPki) -> ssl.SSLContext:
    p = oauth_pki.paths
    return build_server_context(p.ca_cert, p.server_cert, p.server_key)
