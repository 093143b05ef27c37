"""Pseudonymous subject identifiers for the subject's access tokens (the token's `sub`).

A subject token travels through the portal that obtained it and is shown at introspection, so
its `sub` must not be the subject's code (for a person, the resident identity number). It is
the code sealed by AES-SIV (RFC 5297), deterministic authenticated encryption, under a key
derived from the master secret, with the client the token is issued to as associated data:

- only the gateway can open it, so the gateway resolves it back to the code when it verifies
  the token and nothing of the code is stored or read anywhere else (no table, no lookup);
- the same subject always has the same pseudonym for one client (a stable `sub`, as RFC 9068
  section 2.2 wants), and another one for every other client (pairwise, as OpenID Connect Core
  section 8.1 makes them), so two portals cannot match their users on it;
- every replica sharing `master.key` makes and opens the same pseudonyms.
Determinism reveals only that two tokens of one client are for the same subject, which that
client knows anyway. Every subject code is 18 characters, so the length tells nothing either.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from credit_gateway.crypto.master import MasterKey

_CONTEXT = b"credit_gateway/subject-token-sub"


class SubjectPseudonyms:
    __slots__ = ("_siv",)

    def __init__(self, master: MasterKey) -> None:
        self._siv = AESSIV(master.derive("subject-pseudonym", 64))  # AES-256-SIV: 512-bit key

    def __repr__(self) -> str:
        return "SubjectPseudonyms(<key>)"

    def pseudonym(self, code: str, client_id: str) -> str:
        sealed = self._siv.encrypt(code.encode(), [_CONTEXT, client_id.encode()])
        return urlsafe_b64encode(sealed).decode("ascii")

    def code(self, pseudonym: str, client_id: str) -> str | None:
        """The subject code behind `pseudonym` as made for `client_id`; None for anything else
        (another client's pseudonym, an edited one, one made under another master key)."""
        try:
            sealed = urlsafe_b64decode(pseudonym.encode("ascii"))
            return self._siv.decrypt(sealed, [_CONTEXT, client_id.encode()]).decode()
        except (InvalidTag, ValueError):  # binascii.Error and UnicodeError are ValueErrors
            return None
