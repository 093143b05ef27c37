"""The one table of who may call what: every rule admits exactly its principals holding its
scope, and the audit log's rules are as issue #13 says (proofs for all, entries for auditors)."""

from __future__ import annotations

import itertools

import pytest

from credit_gateway.auth.scopes import (
    AUDIT_PROOF,
    AUDIT_READ,
    METHOD_SCOPES,
    SCOPES_BY_KIND,
    SUBJECT_SCOPES,
    MethodRule,
    PrincipalKind,
)
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.errors import PermissionDenied

_AUDIT = "/credit_gateway.v1.AuditService/"
_ALL_SCOPES = frozenset(SUBJECT_SCOPES.union(*SCOPES_BY_KIND.values()))


@pytest.mark.parametrize(
    ("method", "kind", "holds"),
    list(itertools.product(sorted(METHOD_SCOPES), PrincipalKind, (True, False))),
)
def test_a_rule_admits_its_principals_with_its_scope_and_nobody_else(
    method: str, kind: PrincipalKind, holds: bool
) -> None:
    rule = METHOD_SCOPES[method]
    scopes = _ALL_SCOPES if holds else _ALL_SCOPES - {rule.scope}
    if kind not in rule.principals:
        with pytest.raises(PermissionDenied) as refused:
            rule.admit(kind, scopes)
        assert refused.value.reason == "WRONG_PRINCIPAL"
    elif not holds:
        with pytest.raises(PermissionDenied) as refused:
            rule.admit(kind, scopes)
        assert refused.value.reason == "SCOPE_MISSING"
    else:
        rule.admit(kind, scopes)


def test_a_rule_without_others_serves_its_one_kind() -> None:
    rule = MethodRule("x.read", PrincipalKind.SUBJECT)
    assert rule.principals == {PrincipalKind.SUBJECT}
    with pytest.raises(PermissionDenied, match="for a credit subject"):
        rule.admit(PrincipalKind.PARTICIPANT, frozenset({"x.read"}))


def test_the_audit_logs_proofs_are_for_everyone_and_its_entries_for_auditors() -> None:
    both = {PrincipalKind.PARTICIPANT, PrincipalKind.SUBJECT}
    for name in ("GetCheckpoint", "GetInclusionProof", "GetConsistencyProof"):
        assert METHOD_SCOPES[_AUDIT + name].principals == both
        assert METHOD_SCOPES[_AUDIT + name].scope == AUDIT_PROOF
    entries = METHOD_SCOPES[_AUDIT + "GetEntries"]
    assert (entries.scope, entries.principals) == (AUDIT_READ, {PrincipalKind.PARTICIPANT})
    assert AUDIT_PROOF in SUBJECT_SCOPES
    assert AUDIT_READ not in SUBJECT_SCOPES
    assert {k for k, scopes in SCOPES_BY_KIND.items() if AUDIT_READ in scopes} == {
        ParticipantKind.AUDITOR
    }
    # An auditor releases nothing and submits nothing.
    assert SCOPES_BY_KIND[ParticipantKind.AUDITOR] == {AUDIT_READ, AUDIT_PROOF, "discovery.read"}
