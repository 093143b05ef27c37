"""The release flow (exchange/release.py) against an in-memory store: no database.

`FakeStore` keeps the rows in dicts and holds what a ReleaseStore promises: an attempt's reads
and writes are one transaction, each conditional write is checked against the rows as they are
when it is made (not as they were read), and an attempt commits only if every one applied. Its
`interleave` hook runs other calls between an unlocked attempt's reads and its writes, the
window in which a real racing call can move a counter; a locked attempt holds its rows, so
nothing runs in between.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation, Quotas
from credit_gateway.domain.audit import AuditEntry
from credit_gateway.domain.catalog import Catalog, Category, DisclosureLevel
from credit_gateway.domain.consent import CONDITIONS, Consent, ConsentStatus, ConsentTerms
from credit_gateway.domain.idempotency import Keyed, Recorded
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
    Standing,
)
from credit_gateway.domain.policy import AgreementState, Channel
from credit_gateway.domain.release import (
    MAX_ITEMS,
    ConsentToken,
    Inquiry,
    InquiryResult,
    Reads,
    ReadState,
    ReleaseFlow,
    StoredRecord,
    Subject,
    Writes,
    run,
)
from credit_gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    StorageError,
    Unauthenticated,
)

CATALOG = Catalog.from_document(
    json.loads(
        (Path(__file__).resolve().parents[3] / "src/credit_gateway/data/catalog.json").read_text()
    )
)
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
TODAY = NOW.date()
AGENCY = "zx-credit"
AGREEMENT = "agr-zx"
PERSON = Subject(SubjectKind.NATURAL_PERSON, "11010519491231002X", "lookup-person")
COMPANY = Subject(SubjectKind.LEGAL_PERSON, "91350100M000100Y43", "lookup-company")
PERSON_ID, COMPANY_ID = "sbj_person", "sbj_company"
CONSENT = "cns_1"


# --- the in-memory store -----------------------------------------------------------------------


class FakeSealer:
    """Seals by tagging with the associated data, so a misplaced ciphertext fails to open."""

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        return "k1", aad + b"|" + plaintext

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        assert key_id == "k1"
        prefix, _, plaintext = blob.partition(b"|")
        assert prefix == aad, "ciphertext opened in the wrong place"
        return plaintext


@dataclass
class Rows:
    subjects: dict[str, str] = field(default_factory=dict)  # lookup -> subject id
    kinds: dict[str, SubjectKind] = field(default_factory=dict)  # subject id -> kind stored
    records: dict[str, list[StoredRecord]] = field(default_factory=dict)  # by subject id
    agreements: dict[str, tuple[Agreement, AgreementStatus]] = field(default_factory=dict)
    usage: dict[tuple[str, date], tuple[int, int]] = field(default_factory=dict)
    consents: dict[str, Consent] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # consent, to, actor
    participants: dict[str, Participant] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)  # token ids
    recorded: dict[Keyed, Recorded] = field(default_factory=dict)  # answers by idempotency key


@dataclass
class FakeStore:
    rows: Rows
    attempts: list[Reads] = field(default_factory=list)
    interleave: list[Callable[[], object]] = field(default_factory=list)  # one per attempt
    fail_with: list[StorageError] = field(default_factory=list)  # raised by the next attempts

    def ensure_usage_row(self, agreement_id: str, day: date) -> None:
        if agreement_id in self.rows.agreements:
            self.rows.usage.setdefault((agreement_id, day), (0, 0))

    def release(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        self.attempts.append(reads)
        if self.fail_with:
            raise self.fail_with.pop(0)
        writes = decide(self._read(reads))
        if not reads.locked and self.interleave:
            self.interleave.pop(0)()  # another call commits between our reads and our writes
        work = copy.deepcopy(self.rows)  # the transaction: applied to the rows as they are now
        if not self._write(work, writes):
            return False  # rolled back: `work` is dropped
        self.rows.__dict__.update(work.__dict__)
        return True

    def _read(self, reads: Reads) -> ReadState:
        rows = self.rows
        subject_id = rows.subjects.get(reads.subject_lookup)
        records = [
            r
            for r in rows.records.get(subject_id or "", [])
            if reads.item_codes is None or r.item_code in reads.item_codes
        ]
        agreement = None
        if reads.agreement_id in rows.agreements:
            terms, status = rows.agreements[reads.agreement_id]
            calls, used = rows.usage.get((reads.agreement_id, reads.day), (0, 0))
            agreement = AgreementState(terms, status, calls, used)
        consent = rows.consents.get(reads.consent_id or "")
        caller, revoked = None, False
        if reads.standing is not None:
            caller = rows.participants.get(reads.standing.participant_id)
            revoked = reads.standing.jti in rows.revoked
        kind = rows.kinds.get(subject_id or "")
        recorded = rows.recorded.get(reads.keyed) if reads.keyed else None
        return ReadState(
            subject_id, kind, tuple(records), agreement, consent, caller, revoked, recorded
        )

    @staticmethod
    def _write(rows: Rows, writes: Writes) -> bool:
        if (new := writes.idempotency) is not None:
            if new.replaces_stale:
                del rows.recorded[new.keyed]
            if new.keyed in rows.recorded:
                return False  # recorded by a racing call
            rows.recorded[new.keyed] = Recorded(
                new.fingerprint, new.inquiry_id, new.answer_key_id, new.answer, new.created_at
            )
        if writes.subject is not None:
            if writes.subject.lookup in rows.subjects:
                return False  # made by a concurrent call
            rows.subjects[writes.subject.lookup] = writes.subject.id
            rows.kinds[writes.subject.id] = writes.subject.kind
        rows.audit.append(writes.audit)
        if (usage := writes.usage) is not None:
            key = (usage.agreement_id, usage.day)
            if key not in rows.usage:
                return False
            calls, used = rows.usage[key]
            if calls >= usage.calls_limit or used + usage.records > usage.records_limit:
                return False
            rows.usage[key] = (calls + 1, used + usage.records)
        if (use := writes.consent_use) is not None:
            consent = rows.consents[use.consent_id]
            usable = (
                consent.status is ConsentStatus.ACTIVE
                and consent.terms.valid_from <= use.at < consent.terms.valid_until
            )
            left = consent.terms.max_uses - consent.uses
            if not usable or left < 1 or (left == 1) is not use.last:
                return False
            status = ConsentStatus.EXHAUSTED if use.last else consent.status
            rows.consents[use.consent_id] = replace(consent, uses=consent.uses + 1, status=status)
            if use.last:
                rows.events.append((use.consent_id, "exhausted", use.actor))
        return True


# --- the world ---------------------------------------------------------------------------------


def agreement(**overrides: object) -> Agreement:
    fields: dict[str, object] = {
        "id": AGREEMENT,
        "counterparty": AGENCY,
        "operations": frozenset({Operation.INQUIRY}),
        "items": frozenset(),
        "categories": frozenset(Category),
        "purposes": frozenset({"LOAN_APPROVAL"}),
        "levels": frozenset({DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED}),
        "subject_kinds": frozenset(SubjectKind),
        "quotas": Quotas(1000, 10_000),
        "valid_from": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=365),
    }
    fields.update(overrides)
    return Agreement(**fields)  # type: ignore[arg-type]


def consent(
    max_uses: int = 5, uses: int = 0, status: ConsentStatus = ConsentStatus.ACTIVE
) -> Consent:
    terms = ConsentTerms(
        grantee=AGENCY,
        purpose_code="LOAN_APPROVAL",
        purpose_text="mortgage",
        item_codes=frozenset({"ADM.PUNISHMENT"}),
        categories=frozenset(),
        data_from=NOW - timedelta(days=365),
        data_to=NOW + timedelta(days=1),
        valid_from=NOW - timedelta(minutes=1),
        valid_until=NOW + timedelta(days=30),
        max_uses=max_uses,
    )
    return Consent(CONSENT, PERSON_ID, terms, status, uses, NOW, NOW, "real_name_assertion")


def record(rid: str, item: str, *, sealed: bool = True) -> StoredRecord:
    payload = json.dumps({"record": rid}).encode()
    key_id = None
    if sealed:
        key_id, payload = FakeSealer().seal(payload, b"record:" + rid.encode())
    return StoredRecord(rid, "hubei-amr", item, NOW - timedelta(days=5), key_id, payload, True)


def world(**agreement_fields: object) -> Rows:
    rows = Rows()
    rows.subjects = {PERSON.lookup: PERSON_ID, COMPANY.lookup: COMPANY_ID}
    rows.kinds = {PERSON_ID: PERSON.kind, COMPANY_ID: COMPANY.kind}
    rows.records = {
        PERSON_ID: [record("rec_p1", "ADM.PUNISHMENT"), record("rec_p2", "TAX.ARREARS")],
        COMPANY_ID: [
            record("rec_c1", "ADM.PUNISHMENT", sealed=False),
            record("rec_c2", "ADM.PERMIT", sealed=False),
        ],
    }
    rows.agreements = {AGREEMENT: (agreement(**agreement_fields), AgreementStatus.ACTIVE)}
    rows.consents = {CONSENT: consent()}
    return rows


def authorized(caller: str = AGENCY) -> Inquiry:
    return Inquiry(
        Channel.AUTHORIZED_INQUIRY,
        caller,
        "credit-agency",
        "QueryAuthorized",
        PERSON.code,
        "LOAN_APPROVAL",
        ("ADM.PUNISHMENT",),
        AGREEMENT,
        "a consent token",
    )


def open_inquiry(items: tuple[str, ...] = ()) -> Inquiry:
    return Inquiry(
        Channel.OPEN_INQUIRY,
        AGENCY,
        "credit-agency",
        "QueryOpen",
        COMPANY.code,
        "LOAN_APPROVAL",
        items,
        AGREEMENT,
    )


GOOD_TOKEN = ConsentToken(CONSENT, AGENCY)


def release(
    store: FakeStore,
    inquiry: Inquiry,
    token: ConsentToken | None = GOOD_TOKEN,
    subject: Subject | None = None,
    now: datetime = NOW,
) -> InquiryResult:
    subject = subject or (PERSON if inquiry.channel is Channel.AUTHORIZED_INQUIRY else COMPANY)
    return run(ReleaseFlow(inquiry, subject, token, CATALOG, now, FakeSealer()), store)


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(PermissionDenied) as caught:
        call()
    return caught.value.reason


# --- releases ----------------------------------------------------------------------------------


def test_open_inquiry_releases_counts_and_records_in_one_attempt() -> None:
    store = FakeStore(world())
    answer = release(store, open_inquiry())
    assert [(r.record_id, r.payload) for r in answer.released] == [
        ("rec_c2", b'{"record": "rec_c2"}'),
        ("rec_c1", b'{"record": "rec_c1"}'),
    ]
    assert answer.conditions == CONDITIONS
    assert answer.consent_id is None
    assert [r.locked for r in store.attempts] == [False]
    assert store.attempts[0].consent_id is None
    assert store.attempts[0].item_codes is None
    (entry,) = store.rows.audit
    # PARTIAL: the items the open channel may not show a legal person's are withheld as items.
    assert (entry.id, entry.outcome, entry.subject_id) == (answer.inquiry_id, "PARTIAL", COMPANY_ID)
    assert entry.released_records == ("rec_c2", "rec_c1")
    assert store.rows.usage[(AGREEMENT, TODAY)] == (1, 2)


def test_consented_inquiry_opens_sealed_payloads_and_counts_one_use() -> None:
    store = FakeStore(world())
    answer = release(store, authorized())
    assert [(r.record_id, r.payload) for r in answer.released] == [
        ("rec_p1", b'{"record": "rec_p1"}')
    ]
    assert answer.consent_id == CONSENT
    assert answer.agreement_id == AGREEMENT
    assert store.attempts[0].item_codes == ("ADM.PUNISHMENT",)
    assert store.rows.consents[CONSENT].uses == 1
    assert store.rows.usage[(AGREEMENT, TODAY)] == (1, 1)
    assert store.rows.audit[0].consent_id == CONSENT
    assert store.rows.events == []


def test_a_new_subject_is_written_with_the_entry_that_names_it() -> None:
    store = FakeStore(world())
    stranger = Subject(SubjectKind.LEGAL_PERSON, "91110000600037341L", "lookup-stranger")
    answer = release(store, open_inquiry(), subject=stranger)
    new_id = store.rows.subjects["lookup-stranger"]
    assert answer.released == ()
    assert store.rows.audit[0].subject_id == new_id
    assert store.rows.audit[0].outcome == "WITHHELD"


def test_a_subject_made_by_a_racing_call_is_read_again_under_locks() -> None:
    store = FakeStore(world())
    stranger = Subject(SubjectKind.LEGAL_PERSON, "91110000600037341L", "lookup-stranger")
    store.interleave = [lambda: store.rows.subjects.setdefault("lookup-stranger", "sbj_theirs")]
    release(store, open_inquiry(), subject=stranger)
    assert [r.locked for r in store.attempts] == [False, True]
    assert [e.subject_id for e in store.rows.audit] == ["sbj_theirs"]


def test_a_subject_on_record_as_another_kind_is_refused_and_nothing_is_written() -> None:
    # One code, two subjects (a resident id that is also a USCC): the one on record is never
    # answered, nor counted, as the other.
    store = FakeStore(world())
    before = copy.deepcopy(store.rows)
    as_company = Subject(SubjectKind.LEGAL_PERSON, PERSON.code, PERSON.lookup)
    with pytest.raises(InvalidArgument) as caught:
        release(store, authorized(), subject=as_company)
    assert caught.value.reason == "SUBJECT_KIND_MISMATCH"
    assert set(store.rows.usage.values()) == {(0, 0)}  # today's row is made ahead, not counted
    assert replace(store.rows, usage={}) == before


def test_a_subject_made_by_a_racing_call_as_another_kind_is_refused() -> None:
    store = FakeStore(world())
    stranger = Subject(SubjectKind.LEGAL_PERSON, "91110000600037341L", "lookup-stranger")

    def made_as_a_person() -> None:
        store.rows.subjects["lookup-stranger"] = "sbj_theirs"
        store.rows.kinds["sbj_theirs"] = SubjectKind.NATURAL_PERSON

    store.interleave = [made_as_a_person]
    with pytest.raises(InvalidArgument, match="held as natural_person"):
        release(store, open_inquiry(), subject=stranger)
    assert store.rows.audit == []


# --- refusals: committed, then raised ----------------------------------------------------------


def test_a_policy_refusal_is_recorded_before_it_is_raised_and_counts_nothing() -> None:
    rows = world()
    rows.agreements[AGREEMENT] = (agreement(), AgreementStatus.SUSPENDED)
    store = FakeStore(rows)
    assert refused(lambda: release(store, authorized())) == "AGREEMENT_SUSPENDED"
    (entry,) = store.rows.audit
    assert (entry.outcome, entry.reasons, entry.released_records) == (
        "REFUSED",
        ("AGREEMENT_SUSPENDED",),
        (),
    )
    assert store.rows.usage[(AGREEMENT, TODAY)] == (0, 0)
    assert store.rows.consents[CONSENT].uses == 0


@pytest.mark.parametrize(
    ("token", "reason", "consent_id"),
    [
        (None, "CONSENT_REQUIRED", None),
        (ConsentToken(None, refused="CONSENT_TOKEN_INVALID"), "CONSENT_TOKEN_INVALID", None),
        (ConsentToken(CONSENT, refused="CONSENT_EXPIRED"), "CONSENT_EXPIRED", CONSENT),
        (ConsentToken(CONSENT, refused="SOMETHING_ELSE"), "CONSENT_TOKEN_INVALID", CONSENT),
        (ConsentToken(CONSENT, "other-agency"), "CONSENT_OTHER_GRANTEE", CONSENT),
    ],
)
def test_a_refused_token_is_recorded_under_its_consent_without_reading_or_counting(
    token: ConsentToken | None, reason: str, consent_id: str | None
) -> None:
    store = FakeStore(world())
    assert refused(lambda: release(store, authorized(), token)) == reason
    (reads,) = store.attempts
    assert (reads.agreement_id, reads.consent_id) == (None, None)
    (entry,) = store.rows.audit
    assert (entry.outcome, entry.reasons, entry.consent_id) == ("REFUSED", (reason,), consent_id)
    assert (AGREEMENT, TODAY) not in store.rows.usage
    assert store.rows.consents[CONSENT].uses == 0


def test_a_quota_refusal_is_resource_exhausted() -> None:
    rows = world(quotas=Quotas(1, 10))
    rows.usage[(AGREEMENT, TODAY)] = (1, 0)
    store = FakeStore(rows)
    with pytest.raises(ResourceExhausted) as caught:
        release(store, open_inquiry())
    assert caught.value.reason == "QUOTA_CALLS_EXHAUSTED"
    assert store.rows.audit[0].outcome == "REFUSED"


def test_too_many_items_are_refused_before_anything_is_read() -> None:
    store = FakeStore(world())
    many = tuple(f"ITEM.{n}" for n in range(MAX_ITEMS + 1))
    with pytest.raises(InvalidArgument):
        release(store, open_inquiry(many))
    assert store.attempts == []
    assert store.rows.audit == []


def test_a_payload_that_does_not_open_releases_nothing_and_writes_nothing() -> None:
    rows = world()
    tampered = replace(rows.records[PERSON_ID][0], id="rec_moved")  # sealed for another place
    rows.records[PERSON_ID] = [tampered]
    store = FakeStore(rows)
    with pytest.raises(AssertionError, match="wrong place"):
        release(store, authorized())
    assert store.rows.audit == []
    assert store.rows.consents[CONSENT].uses == 0


# --- counters moved: decided again under locks -------------------------------------------------


def test_a_quota_taken_by_a_racing_call_is_decided_again_under_locks() -> None:
    store = FakeStore(world(quotas=Quotas(1, 10)))
    store.interleave = [lambda: release(store, open_inquiry())]  # takes the day's only call
    with pytest.raises(ResourceExhausted):
        release(store, open_inquiry())
    assert [r.locked for r in store.attempts] == [False, False, True]
    assert [e.outcome for e in store.rows.audit] == ["PARTIAL", "REFUSED"]
    assert store.rows.usage[(AGREEMENT, TODAY)] == (1, 2)


def test_a_use_taken_meanwhile_makes_ours_the_last_one_counted_under_locks() -> None:
    rows = world()
    rows.consents[CONSENT] = consent(max_uses=3, uses=1)  # we read 1 use: ours would be the 2nd
    store = FakeStore(rows)
    store.interleave = [lambda: release(store, authorized())]  # a racing call takes the 2nd
    release(store, authorized())
    assert [r.locked for r in store.attempts] == [False, False, True]
    assert store.rows.consents[CONSENT].status is ConsentStatus.EXHAUSTED
    assert store.rows.consents[CONSENT].uses == 3
    assert store.rows.events == [(CONSENT, "exhausted", AGENCY)]
    assert [e.outcome for e in store.rows.audit] == ["RELEASED", "RELEASED"]


@pytest.mark.parametrize("used_before", [0, 1, 4])
def test_of_racing_calls_for_the_last_use_exactly_one_is_released(used_before: int) -> None:
    """Every call reads the consent before any of them writes (each runs the next inside its
    window), the worst interleaving there is: one release, every other call refused after its
    locked retry, the consent exhausted once, each refusal on record."""
    rows = world()
    rows.consents[CONSENT] = consent(max_uses=used_before + 1, uses=used_before)
    store = FakeStore(rows)
    callers = 20
    outcomes: list[str] = []

    def call(n: int) -> None:
        if n + 1 < callers:
            store.interleave.insert(0, lambda: call(n + 1))
        try:
            outcomes.append(f"released {len(release(store, authorized()).released)}")
        except PermissionDenied as exc:
            outcomes.append(exc.reason)

    call(0)
    assert sorted(outcomes) == ["CONSENT_EXHAUSTED"] * (callers - 1) + ["released 1"]
    final = store.rows.consents[CONSENT]
    assert (final.status, final.uses) == (ConsentStatus.EXHAUSTED, used_before + 1)
    assert store.rows.events == [(CONSENT, "exhausted", AGENCY)]
    assert sorted(e.outcome for e in store.rows.audit) == ["REFUSED"] * (callers - 1) + ["RELEASED"]
    assert store.rows.usage[(AGREEMENT, TODAY)] == (1, 1)  # refusals count no call
    assert sum(r.locked for r in store.attempts) == callers - 1  # each loser retried once


def test_counters_moving_under_locks_is_a_storage_error() -> None:
    store = FakeStore(world())
    flow = ReleaseFlow(authorized(), PERSON, GOOD_TOKEN, CATALOG, NOW, FakeSealer())
    flow.applied(False)
    assert flow.reads().locked
    with pytest.raises(StorageError, match="moved while locked"):
        flow.applied(False)
    assert store.rows.audit == []


@pytest.mark.parametrize("transient", [True, False])
def test_a_deadlock_is_retried_under_locks_and_other_storage_errors_are_not(
    transient: bool,
) -> None:
    store = FakeStore(world())
    store.fail_with = [StorageError("deadlock", transient=transient)]
    if transient:
        assert len(release(store, authorized()).released) == 1
        assert [r.locked for r in store.attempts] == [False, True]
    else:
        with pytest.raises(StorageError):
            release(store, authorized())
        assert len(store.attempts) == 1


def test_a_deadlock_on_the_locked_attempt_is_the_callers_error() -> None:
    store = FakeStore(world())
    store.fail_with = [StorageError("deadlock", transient=True)] * 2
    with pytest.raises(StorageError):
        release(store, authorized())
    assert [r.locked for r in store.attempts] == [False, True]


# --- the self channel --------------------------------------------------------------------------


def test_self_inquiry_reads_no_agreement_and_states_no_conditions() -> None:
    store = FakeStore(world())
    own = Inquiry(Channel.SELF_INQUIRY, "self", None, "QueryOwn", PERSON.code, "SELF")
    answer = release(store, own, token=None, subject=PERSON)
    assert {r.record_id for r in answer.released} == {"rec_p1", "rec_p2"}
    assert answer.conditions == ()
    assert store.attempts[0].agreement_id is None
    assert store.rows.audit[0].caller == "self"
    assert store.rows.usage == {}


# --- the seam itself ---------------------------------------------------------------------------


def test_the_flow_imports_no_database_transport_or_oauth_library() -> None:
    probe = (
        "import sys, credit_gateway.domain.release; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'grpc', 'authlib', 'joserfc', 'psycopg', 'pymysql', 'sqlite3'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# --- the caller's standing, read in the release transaction ------------------------------------


def _agency(status: ParticipantStatus = ParticipantStatus.ACTIVE, **licence: object) -> Participant:
    return Participant(
        AGENCY,
        ParticipantKind.CREDIT_AGENCY,
        "91420100000000019Q",
        "ZX Credit",
        status,
        frozenset(),
        Licence("LIC-1", NOW + timedelta(days=30), **licence),  # type: ignore[arg-type]
    )


def _with_standing(inquiry: Inquiry) -> Inquiry:
    """As the gRPC edge makes it: no kind, the standing to read instead."""
    return replace(inquiry, caller_kind_value=None, standing=Standing(AGENCY, "jti-1"))


def test_the_standing_read_in_the_transaction_gives_the_callers_kind() -> None:
    rows = world()
    rows.participants[AGENCY] = _agency()
    store = FakeStore(rows)
    result = release(store, _with_standing(authorized()))
    assert [r.record_id for r in result.released] == ["rec_p1"]
    assert store.attempts[0].standing == Standing(AGENCY, "jti-1")


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        (lambda rows: rows.revoked.add("jti-1"), Unauthenticated, "TOKEN_REVOKED"),
        (lambda rows: rows.participants.clear(), Unauthenticated, "TOKEN_INVALID"),
        (
            lambda rows: rows.participants.update({AGENCY: _agency(ParticipantStatus.SUSPENDED)}),
            PermissionDenied,
            "PARTICIPANT_SUSPENDED",
        ),
        (
            lambda rows: rows.participants.update({AGENCY: _agency(revoked=True)}),
            PermissionDenied,
            "LICENCE_REVOKED",
        ),
    ],
)
def test_a_caller_without_standing_is_refused_and_nothing_is_written(
    change: Callable[[Rows], object], error: type[Exception], reason: str
) -> None:
    """An authentication failure, not a decision about the subject: no audit entry, nothing
    counted (the store rolls the attempt back when decide raises)."""
    rows = world()
    rows.participants[AGENCY] = _agency()
    change(rows)
    before = copy.deepcopy(rows)
    with pytest.raises(error) as refused:
        release(FakeStore(rows), _with_standing(authorized()))
    assert refused.value.reason == reason  # type: ignore[attr-defined]
    # Only today's usage row was made ahead (at zero), as before every release.
    assert set(rows.usage.values()) <= {(0, 0)}
    assert replace(rows, usage={}) == replace(before, usage={})


# --- retries with an idempotency key -----------------------------------------------------------


def keyed(inquiry: Inquiry, key: str = "retry-1") -> Inquiry:
    return replace(inquiry, idempotency_key=key)


def test_a_retry_with_its_key_is_answered_from_the_record_and_counts_nothing() -> None:
    store = FakeStore(world())
    first = release(store, keyed(authorized()))
    counters = (store.rows.consents[CONSENT].uses, dict(store.rows.usage))
    again = release(store, keyed(authorized()), now=NOW + timedelta(hours=12))
    assert again == first
    assert (store.rows.consents[CONSENT].uses, dict(store.rows.usage)) == counters
    replayed = store.rows.audit[-1]
    assert (replayed.outcome, replayed.reasons) == ("REPLAYED", (first.inquiry_id,))
    assert replayed.released_records == tuple(r.record_id for r in first.released)
    (answer,) = store.rows.recorded.values()
    # Sealed to caller, method and key (FakeSealer tags the ciphertext with its binding).
    assert answer.answer.startswith(Keyed(AGENCY, "QueryAuthorized", "retry-1").aad() + b"|")


def test_a_key_recorded_by_a_racing_call_is_read_again_under_locks_and_replayed() -> None:
    store = FakeStore(world())
    rival = FakeStore(store.rows)
    won: list[InquiryResult] = []
    store.interleave = [lambda: won.append(release(rival, keyed(authorized())))]
    answer = release(store, keyed(authorized()))
    assert [r.locked for r in store.attempts] == [False, True]
    assert won == [answer]
    assert store.rows.consents[CONSENT].uses == 1
    assert [e.outcome for e in store.rows.audit] == ["RELEASED", "REPLAYED"]


def test_the_key_with_another_request_is_refused_and_nothing_is_written() -> None:
    store = FakeStore(world())
    release(store, keyed(authorized()))
    before = copy.deepcopy(store.rows)
    with pytest.raises(FailedPrecondition) as caught:
        release(store, keyed(replace(authorized(), purpose="SUPERVISION")))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert store.rows == before


def test_a_refusal_is_not_recorded() -> None:
    rows = world()
    rows.agreements[AGREEMENT] = (agreement(), AgreementStatus.SUSPENDED)
    store = FakeStore(rows)
    with pytest.raises(PermissionDenied):
        release(store, keyed(authorized()))
    assert store.rows.recorded == {}


def test_a_record_24_hours_old_is_replaced_by_a_fresh_release() -> None:
    store = FakeStore(world())
    first = release(store, keyed(authorized()))
    later = release(store, keyed(authorized()), now=NOW + timedelta(hours=24))
    assert later.inquiry_id != first.inquiry_id
    assert store.rows.consents[CONSENT].uses == 2
    ((_, recorded),) = store.rows.recorded.items()
    assert recorded.inquiry_id == later.inquiry_id
