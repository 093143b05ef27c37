"""Subject pseudonyms (crypto/pseudonyms.py): stable for one client, different for another, and
opened back into the code only by the gateway that made them, for the client they were made for."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.pseudonyms import SubjectPseudonyms

PERSON = "11010519491231002X"
COMPANY = "91350100M000100Y43"
PSEUDONYMS = SubjectPseudonyms(MasterKey(bytes(range(32))))


@settings(max_examples=100, deadline=None)
@given(code=st.text(max_size=40), client=st.text(max_size=40))
def test_a_pseudonym_opens_to_its_code_for_its_client(code: str, client: str) -> None:
    try:
        code.encode()
    except UnicodeEncodeError:  # a lone surrogate is no subject code
        return
    pseudonym = PSEUDONYMS.pseudonym(code, client)
    assert PSEUDONYMS.code(pseudonym, client) == code


def test_stable_for_one_client_and_pairwise_across_clients() -> None:
    portal = PSEUDONYMS.pseudonym(PERSON, "portal-a")
    assert PSEUDONYMS.pseudonym(PERSON, "portal-a") == portal
    assert PSEUDONYMS.pseudonym(PERSON, "portal-b") != portal
    assert PSEUDONYMS.pseudonym(COMPANY, "portal-a") != portal
    # Another client's pseudonym does not open as one's own.
    assert PSEUDONYMS.code(PSEUDONYMS.pseudonym(PERSON, "portal-b"), "portal-a") is None


def test_the_pseudonym_shows_nothing_of_the_code() -> None:
    pseudonym = PSEUDONYMS.pseudonym(PERSON, "portal-a")
    assert PERSON.lower() not in pseudonym.lower()
    assert PERSON[:17] not in pseudonym
    assert len(pseudonym) == len(PSEUDONYMS.pseudonym(COMPANY, "portal-a")) == 46


def test_replicas_sharing_the_master_key_agree_and_others_cannot_open() -> None:
    pseudonym = PSEUDONYMS.pseudonym(PERSON, "portal-a")
    replica = SubjectPseudonyms(MasterKey(bytes(range(32))))
    assert replica.code(pseudonym, "portal-a") == PERSON
    stranger = SubjectPseudonyms(MasterKey(bytes(range(1, 33))))
    assert stranger.code(pseudonym, "portal-a") is None


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p[:-1] + ("A" if p[-1] != "A" else "B"),
        lambda p: p[:-4],
        lambda p: p + "=",
        lambda p: p.replace("-", "+").replace("_", "/") + "+",
        lambda p: "",
        lambda p: "é" + p,
        lambda p: urlsafe_b64encode(urlsafe_b64decode(p.encode())[:15]).decode(),
    ],
    ids=["last-char", "truncated", "padded", "not-url-safe", "empty", "non-ascii", "short"],
)
def test_an_edited_pseudonym_opens_to_nothing(edit: Callable[[str], str]) -> None:
    pseudonym = PSEUDONYMS.pseudonym(PERSON, "portal-a")
    assert PSEUDONYMS.code(edit(pseudonym), "portal-a") is None


def test_the_key_is_not_in_its_repr() -> None:
    assert repr(PSEUDONYMS) == "SubjectPseudonyms(<key>)"
