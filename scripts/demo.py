"""`make demo`: the gateway's main scenario, end to end, in readable lines.

Brings up a fresh gateway in .demo/ (dev PKI, keys, SQLite, the sample catalog), registers the
participants and a signed agreement with the operator's CLI, starts `credit-gateway serve`, and
then plays every side over mutual TLS: a providing unit, a credit agency, the real-name portal of
a credit subject. Finally it stops the server with SIGTERM.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import grpc
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from joserfc import jwt
from joserfc.jwk import ECKey

from credit_gateway.adapters.grpc import client
from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2,
    submission_pb2_grpc,
)
from credit_gateway.devpki import pki
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.records import Submission, WrittenNotice
from credit_gateway.exchange.agreements import load_private_key
from credit_gateway.runtime import tls

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
COMPANY = "91350100M000100Y43"  # a Unified Social Credit Code (GB 32100 worked example)
PERSON = "11010519491231002X"  # a resident identity number (GB 11643 annex example)
GRPC_PORT, OAUTH_PORT = 50443, 50444


def say(actor: str, text: str) -> None:
    print(f"  {actor:<16} {text}", flush=True)


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "credit_gateway.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"credit-gateway {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip()


ENV = {
    **os.environ,
    "CREDIT_GATEWAY_HOME": str(DEMO / "var"),
    "CREDIT_GATEWAY_CERTS_DIR": str(DEMO / "certs"),
    "CREDIT_GATEWAY_GRPC_ADDRESS": f"127.0.0.1:{GRPC_PORT}",
    "CREDIT_GATEWAY_OAUTH_ADDRESS": f"localhost:{OAUTH_PORT}",
    "CREDIT_GATEWAY_LOG_LEVEL": "WARNING",
    "GRPC_VERBOSITY": "ERROR",
}
CA = DEMO / "certs" / "ca.pem"
TOKEN_URL = f"https://localhost:{OAUTH_PORT}/token"


class Party:
    """One participant: its certificate, its mTLS channel, its access token."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        self.cert = pki.issue_participant(DEMO / "certs", name, kind)
        creds = tls.grpc_channel_credentials(CA, self.cert.cert_path, self.cert.key_path)
        self.channel = grpc.secure_channel(f"localhost:{GRPC_PORT}", creds)
        self.token = ""

    def register(self, org_code: str, *extra: str) -> None:
        cli(
            "participants",
            "add",
            "--id",
            self.name,
            "--kind",
            self.kind,
            "--org-code",
            org_code,
            "--name",
            self.name,
            "--cert",
            str(self.cert.cert_path),
            *extra,
        )

    @property
    def pair(self) -> tuple[str, str]:
        return str(self.cert.cert_path), str(self.cert.key_path)

    def fetch_token(self) -> str:
        """private_key_jwt (RFC 7523) with authlib's own OAuth client: any standard client works."""
        jwk = ECKey.import_key(self.cert.key_path.read_bytes(), {"kid": self.cert.x5t_s256})
        session = OAuth2Session(
            client_id=self.name,
            client_secret=jwk,  # the private key signs the client assertion; no shared secret
            token_endpoint_auth_method="private_key_jwt",  # noqa: S106 - a method name
        )
        session.register_client_auth_method(
            PrivateKeyJWT(TOKEN_URL, alg="ES256", headers={"kid": self.cert.x5t_s256})
        )
        session.cert, session.verify, session.trust_env = self.pair, str(CA), False
        self.token = session.fetch_token(TOKEN_URL, grant_type="client_credentials")["access_token"]
        return self.token

    def md(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token or self.token}"),)


def refused(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    from google.rpc import error_details_pb2

    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return f"{err.code().name} ({info.reason})"  # type: ignore[attr-defined]
    return err.code().name  # type: ignore[attr-defined]


def record(
    unit: Party,
    rid: str,
    item: str,
    subject: str,
    payload: dict[str, Any],
    days_ago: int,
    notice: str = "",
    tamper: bool = False,
) -> submission_pb2.SubmittedRecord:
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    # Art 22: the subject was informed in writing, here the day after the decision.
    written = WrittenNotice(notice, occurred + timedelta(days=1)) if notice else None
    signed = Submission(unit.name, rid, item, subject, payload, occurred, written)
    pb = client.signed_record(signed, load_private_key(unit.cert.key_path), unit.cert.x5t_s256)
    if tamper:  # altered after it was signed: the gateway must refuse it
        pb.payload_json = canonical_bytes(
            dict(payload, authority=payload["authority"] + " (altered)")
        )
    return pb


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    step("The operator sets up the center's gateway")
    for line in cli("init").splitlines():
        say("operator", line)
    say("operator", cli("catalog", "load", str(ROOT / "src/credit_gateway/data/catalog.json")))
    amr = Party("hubei-amr", "providing-unit")
    agency = Party("zx-credit", "credit-agency")
    portal = Party("realname-portal", "identity-provider")
    other = Party("other-agency", "credit-agency")
    valid_until = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
    amr.register("91420100000000019Q")
    agency.register(
        "91420100000000027K",
        "--licence-number",
        "CSL-2026-001",
        "--licence-valid-until",
        valid_until,
    )
    other.register(
        "91420100000000035E",
        "--licence-number",
        "CSL-2026-002",
        "--licence-valid-until",
        valid_until,
    )
    portal.register("914201000000000439")
    for p in (amr, agency, portal, other):
        say(
            "operator",
            f"registered {p.name} ({p.kind}), certificate x5t#S256 {p.cert.x5t_s256[:16]}...",
        )
    draft = DEMO / "agreement-zx-credit.json"
    now = datetime.now(UTC)
    cli(
        "agreements",
        "draft",
        "--id",
        "agr-zx-2026",
        "--counterparty",
        "zx-credit",
        "--operations",
        "inquiry",
        "--categories",
        "registration",
        "administrative_permit",
        "administrative_punishment",
        "administrative_other",
        "--purposes",
        "LOAN_APPROVAL",
        "CONTRACT_DUE_DILIGENCE",
        "--levels",
        "open",
        "authorized",
        "--valid-from",
        (now - timedelta(days=1)).isoformat(),
        "--valid-until",
        (now + timedelta(days=365)).isoformat(),
        "--out",
        str(draft),
    )
    cli("agreements", "sign", str(draft), "--as-center")
    cli("agreements", "sign", str(draft), "--key", str(agency.cert.key_path))
    say("operator", cli("agreements", "register", str(draft)))

    server = subprocess.Popen([sys.executable, "-m", "credit_gateway.cli", "serve"], env=ENV)
    try:
        return scenario(amr, agency, portal, other, server)
    finally:
        if server.poll() is None:
            server.kill()


def scenario(
    amr: Party, agency: Party, portal: Party, other: Party, server: subprocess.Popen[bytes]
) -> int:
    step("The gateway is up: mutual TLS or nothing")
    grpc.channel_ready_future(agency.channel).result(timeout=30)
    health = health_pb2_grpc.HealthStub(agency.channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    say(
        "zx-credit",
        f"Health over mTLS: {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}",
    )
    anonymous = grpc.secure_channel(
        f"localhost:{GRPC_PORT}", tls.grpc_channel_credentials(CA, None, None)
    )
    try:
        health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=5)
        say("anonymous", "UNEXPECTED: served without a certificate")
        return 1
    except grpc.RpcError as err:
        say("anonymous", f"no client certificate: handshake refused ({err.code().name})")  # type: ignore[attr-defined]

    step("Tokens: private_key_jwt, bound to the client's certificate (RFC 8705)")
    for party in (amr, agency, other):
        party.fetch_token()
        claims = json.loads(_b64(party.token.split(".")[1]))  # reading our own token, not verifying
        say(party.name, f"token scope '{claims['scope']}', cnf {claims['cnf']['x5t#S256'][:16]}...")
    stolen = inquiry_pb2_grpc.InquiryServiceStub(other.channel)
    try:
        stolen.QueryOpen(
            inquiry_pb2.QueryRequest(
                subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id="agr-zx-2026"
            ),
            metadata=agency.md(),
            timeout=5,
        )
        say("other-agency", "UNEXPECTED: a stolen token worked")
        return 1
    except grpc.RpcError as err:
        say("other-agency", f"presents zx-credit's token on its own connection: {refused(err)}")

    step("A providing unit submits a signed batch (Art 11, 14-16, 22)")
    batch = [
        record(
            amr,
            "AMR-2026-0001",
            "REG.ENTERPRISE",
            COMPANY,
            {
                "name": "Wuhan Changjiang Trading Co., Ltd.",
                "established_on": "2015-03-01",
                "registered_capital_cny": 5000000,
            },
            400,
        ),
        record(
            amr,
            "AMR-2026-0002",
            "ADM.PUNISHMENT",
            COMPANY,
            {
                "decision_no": "E-AMR-2026-17",
                "violation": "false advertising",
                "penalty": "fine",
                "fine_cny": 20000,
                "decided_on": "2026-05-10",
                "authority": "Wuhan AMR",
            },
            200,
            notice="AMR-N-2026-17",
        ),
        record(
            amr,
            "AMR-2026-0003",
            "ADM.PUNISHMENT",
            PERSON,
            {
                "decision_no": "E-AMR-2026-31",
                "violation": "unlicensed trading",
                "penalty": "warning",
                "decided_on": "2026-06-01",
                "authority": "Wuhan AMR",
            },
            150,
            notice="AMR-N-2026-31",
        ),
        record(
            amr,
            "AMR-2026-0004",
            "ADM.PERMIT",
            PERSON,
            {"permit_no": "FOOD-0042", "permit_type": "food trading", "authority": "Wuhan AMR"},
            30,
        ),
        record(
            amr,
            "AMR-2026-0005",
            "ADM.PUNISHMENT",
            COMPANY,
            {
                "decision_no": "E-9",
                "violation": "x",
                "penalty": "fine",
                "decided_on": "2026-01-01",
                "authority": "AMR",
            },
            10,
        ),
        record(
            amr,
            "AMR-2026-0006",
            "ADM.PERMIT",
            COMPANY,
            {"permit_no": "P-1", "authority": "AMR"},
            10,
        ),
        record(
            amr,
            "AMR-2026-0007",
            "ADM.PERMIT",
            "91350100M000100Y44",
            {"permit_no": "P-2", "permit_type": "t", "authority": "AMR"},
            10,
        ),
        record(
            amr,
            "AMR-2026-0008",
            "ADM.PERMIT",
            COMPANY,
            {"permit_no": "P-3", "permit_type": "t", "authority": "AMR", "blood_type": "A"},
            10,
        ),
        record(
            amr,
            "AMR-2026-0009",
            "ADM.PERMIT",
            COMPANY,
            {"permit_no": "P-4", "permit_type": "t", "authority": "AMR"},
            10,
            tamper=True,
        ),
        record(amr, "AMR-2026-0010", "TAX.PAID", PERSON, {"year": 2025, "amount_cny": 1}, 10),
    ]
    result = submission_pb2_grpc.SubmissionServiceStub(amr.channel).SubmitRecords(
        iter(batch), metadata=amr.md(), timeout=30
    )
    for r in result.results:
        outcome = submission_pb2.RecordResult.Outcome.Name(r.outcome).removeprefix("OUTCOME_")
        why = "; ".join(f"{v.reason} {v.field}: {v.description}" for v in r.violations)
        say("hubei-amr", f"{r.provider_record_id}: {outcome}{'  ' + why if why else ''}")
    say(
        "hubei-amr",
        f"{result.accepted} accepted, {result.rejected} rejected; resubmitting is idempotent",
    )

    step("A credit agency reads a company's open records under its agreement (Art 17-18, 20)")
    inquiry = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    answer = inquiry.QueryOpen(
        inquiry_pb2.QueryRequest(
            subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id="agr-zx-2026"
        ),
        metadata=agency.md(),
        timeout=5,
    )
    for r in answer.records:
        say("zx-credit", f"released {r.item_code}: {r.payload_json.decode()[:80]}")
    answer = inquiry.QueryOpen(
        inquiry_pb2.QueryRequest(
            subject_code=PERSON, purpose="LOAN_APPROVAL", agreement_id="agr-zx-2026"
        ),
        metadata=agency.md(),
        timeout=5,
    )
    for w in answer.withheld:
        say("zx-credit", f"person's {w.item_code}: withheld, {w.reason}")

    step("The person signs in through the real-name portal and reads its own records (Art 17)")
    assertion = jwt.encode(
        {"alg": "ES256", "kid": portal.cert.x5t_s256},
        {
            "iss": portal.name,
            "sub": PERSON,
            "aud": TOKEN_URL,
            "jti": secrets.token_hex(8),
            "iat": int(time.time()),
            "exp": int(time.time()) + 300,
        },
        ECKey.import_key(portal.cert.key_path.read_bytes()),
        algorithms=["ES256"],
    )
    response = requests.post(
        TOKEN_URL,
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion,
            "client_id": portal.name,
        },
        cert=portal.pair,
        verify=str(CA),
        timeout=10,
    )
    response.raise_for_status()
    subject_md = portal.md(response.json()["access_token"])
    say(
        "realname-portal",
        f"JWT-bearer grant (RFC 7523): subject token, scope '{response.json()['scope']}'",
    )
    own = inquiry_pb2_grpc.InquiryServiceStub(portal.channel).QueryOwn(
        inquiry_pb2.OwnQueryRequest(), metadata=subject_md, timeout=5
    )
    for r in own.records:
        say("person", f"own record {r.item_code}: {r.payload_json.decode()[:70]}")

    step("Consent: request, approval, release, use count, revocation, refusal (Art 19-20)")
    consents = consent_pb2_grpc.ConsentServiceStub(portal.channel)
    grantee = consent_pb2_grpc.ConsentServiceStub(agency.channel)
    now = datetime.now(UTC)
    terms = consent_pb2.ConsentTerms(
        purpose_code="LOAN_APPROVAL",
        purpose_text="Mortgage application #HB-77",
        categories=["administrative_punishment"],
        item_codes=["ADM.PERMIT"],
        data_from=to_timestamp(now - timedelta(days=3 * 365)),
        data_to=to_timestamp(now),
        valid_from=to_timestamp(now - timedelta(minutes=1)),
        valid_until=to_timestamp(now + timedelta(days=30)),
        max_uses=3,
    )
    events: Queue[consent_pb2.ConsentEvent] = Queue()
    watch = grantee.WatchConsents(consent_pb2.WatchConsentsRequest(), metadata=agency.md())

    def follow() -> None:
        try:
            for event in watch:
                events.put(event)
        except grpc.RpcError:
            pass  # cancelled at the end of the story

    threading.Thread(target=follow, daemon=True).start()
    asked = grantee.RequestConsent(
        consent_pb2.RequestConsentRequest(subject_code=PERSON, terms=terms),
        metadata=agency.md(),
        timeout=5,
    )
    say(
        "zx-credit",
        f"asks the person for consent: request {asked.request_id} (LOAN_APPROVAL, 3 uses, 30 days)",
    )
    pending = consents.ListConsentRequests(
        consent_pb2.ListConsentRequestsRequest(), metadata=subject_md, timeout=5
    )
    say(
        "person",
        f"sees {len(pending.requests)} pending request from {pending.requests[0].terms.grantee}",
    )
    granted = consents.ApproveConsentRequest(
        consent_pb2.ApproveConsentRequestRequest(request_id=asked.request_id),
        metadata=subject_md,
        timeout=5,
    )
    consent_id = granted.consent.consent_id
    say("person", f"approves: consent {consent_id}, evidence {granted.consent.evidence}")
    token = grantee.GetConsentToken(
        consent_pb2.ConsentRef(consent_id=consent_id), metadata=agency.md(), timeout=5
    )
    query = inquiry_pb2.AuthorizedQueryRequest(
        query=inquiry_pb2.QueryRequest(
            subject_code=PERSON,
            purpose="LOAN_APPROVAL",
            agreement_id="agr-zx-2026",
            item_codes=["ADM.PUNISHMENT", "ADM.PERMIT"],
        ),
        consent_token=token.token,
    )
    answer = inquiry.QueryAuthorized(query, metadata=agency.md(), timeout=5)
    say(
        "zx-credit",
        f"released {[r.item_code for r in answer.records]} under {answer.consent_id}, "
        f"conditions {list(answer.conditions)}",
    )
    state = consents.GetConsent(
        consent_pb2.ConsentRef(consent_id=consent_id), metadata=subject_md, timeout=5
    )
    say("person", f"consent used {state.uses} of {state.terms.max_uses}")
    consents.RevokeConsent(
        consent_pb2.ConsentRef(consent_id=consent_id), metadata=subject_md, timeout=5
    )
    revoked_at = time.monotonic()
    say("person", "revokes the consent")
    while True:
        try:
            event = events.get(timeout=2)
        except Empty:
            say("zx-credit", "UNEXPECTED: no revocation event on the watch stream")
            return 1
        if event.HasField("consent") and event.consent.status == consent_pb2.CONSENT_STATUS_REVOKED:
            waited = (time.monotonic() - revoked_at) * 1000
            say("zx-credit", f"watch stream: consent REVOKED, seen after {waited:.0f} ms")
            break
    watch.cancel()
    try:
        inquiry.QueryAuthorized(query, metadata=agency.md(), timeout=5)
        say("zx-credit", "UNEXPECTED: released after revocation")
        return 1
    except grpc.RpcError as err:
        say("zx-credit", f"queries again: {refused(err)}")

    step("The person sees who queried it (Art 19)")
    seen = consents.ListInquiries(
        consent_pb2.ListInquiriesRequest(), metadata=subject_md, timeout=5
    )
    for e in seen.inquiries:
        when = e.at.ToDatetime().strftime("%H:%M:%S")
        reasons = f" ({', '.join(e.reasons)})" if e.reasons else ""
        say("person", f"{when} {e.caller:<16} {e.method:<16} {e.purpose:<14} {e.outcome}{reasons}")

    step("The operator stops the gateway: SIGTERM drains in-flight calls")
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=30)
    say("operator", f"credit-gateway serve exited {code}")
    return 0 if code == 0 else 1


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


if __name__ == "__main__":
    sys.exit(main())
