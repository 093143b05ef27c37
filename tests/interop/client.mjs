// A gateway client in Node.js, written from docs/canonical.md and the protos alone: no code of
// the gateway's. tests/interop/test_node_client.py runs it against a real gateway.
//
//   node client.mjs subject-key <private-jwk-out>   the subject makes its key; prints the public
//                                                   JWK and its RFC 7638 thumbprint
//   node client.mjs run <config.json>               signs and submits two records, grants a
//                                                   signed consent, queries under it; prints JSON
import { webcrypto } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as jose from "jose";

// --- docs/canonical.md, in JavaScript -----------------------------------------------------------

// RFC 8785: JSON.stringify already writes JCS's numbers (ECMAScript's shortest form) and string
// escapes; what is left is sorting members by UTF-16 code units, which is what sort() does.
export function canonicalize(value) {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new Error("NaN and Infinity have no JSON form");
  }
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`;
  const members = Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalize(value[key])}`);
  return `{${members.join(",")}}`;
}

const canonicalBytes = (value) => new TextEncoder().encode(canonicalize(value));

// Timestamps: RFC 3339 UTC with Z, no fraction for a whole second, else the 3 digits
// toISOString() writes (a Date holds milliseconds).
export const canonicalTime = (date) => date.toISOString().replace(/\.000Z$/, "Z");

// Set-valued members (a consent's items and categories): each once, sorted.
const stringSet = (values) => [...new Set(values)].sort();

const timestamp = (date) => {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
};

// ES256 as the gateway wants it: raw r||s (RFC 7518 3.4), which is WebCrypto's own output.
async function es256(key, bytes) {
  const signature = await webcrypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, bytes);
  return Buffer.from(signature);
}

// --- gRPC ----------------------------------------------------------------------------------------

function services(protos) {
  const files = ["submission.proto", "consent.proto", "inquiry.proto"].map((f) =>
    path.join(protos, "credit_gateway", "v1", f),
  );
  const definition = protoLoader.loadSync(files, {
    includeDirs: [protos],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).credit_gateway.v1;
}

function channel(cfg, who) {
  const read = (p) => readFileSync(p);
  return grpc.credentials.createSsl(read(cfg.ca), read(who.key), read(who.cert));
}

function bearer(token) {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

const deadline = () => ({ deadline: Date.now() + 10_000 });

function unary(client, method, request, token) {
  return new Promise((resolve, reject) =>
    client[method](request, bearer(token), deadline(), (err, reply) =>
      err ? reject(new Error(`${method}: ${err.code} ${err.details}`)) : resolve(reply),
    ),
  );
}

function submit(client, records, token) {
  return new Promise((resolve, reject) => {
    const call = client.SubmitRecords(bearer(token), deadline(), (err, reply) =>
      err ? reject(new Error(`SubmitRecords: ${err.code} ${err.details}`)) : resolve(reply),
    );
    for (const record of records) call.write(record);
    call.end();
  });
}

// --- what the test runs ---------------------------------------------------------------------------

async function subjectKey(out) {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  writeFileSync(out, JSON.stringify(await jose.exportJWK(privateKey)), { mode: 0o600 });
  const jwk = await jose.exportJWK(publicKey);
  return { public_jwk: jwk, kid: await jose.calculateJwkThumbprint(jwk, "sha256") };
}

async function run(cfg) {
  const v1 = services(cfg.protos);
  const now = new Date(cfg.now_ms);
  const days = (n) => new Date(now.getTime() + n * 86_400_000);

  // (1) Records signed over bytes computed here. The provider names its key by the RFC 7638
  // thumbprint of its public half (the gateway finds a JWKS key by kid or thumbprint).
  const providerKey = await jose.importPKCS8(readFileSync(cfg.provider.key, "utf8"), "ES256", {
    extractable: true,
  });
  const { d: _private, ...providerPublic } = await jose.exportJWK(providerKey);
  const keyId = await jose.calculateJwkThumbprint(providerPublic, "sha256");
  const withMillis = days(-5);
  withMillis.setUTCMilliseconds(250); // toISOString(): ...250Z, the form item 8 was refused in
  const wholeSecond = days(-6);
  wholeSecond.setUTCMilliseconds(0);
  // Art 22: each notice reached the subject a day after the decision, one at a milliseconds
  // time; one record names its subject's kind, which is signed as the wire says it.
  const delivered = days(-4);
  delivered.setUTCMilliseconds(125);
  const drafts = [
    {
      id: "node-ms",
      occurred: withMillis,
      authority: "武汉市市场监督管理局",
      notice: { number: "鄂汉市监罚告〔2026〕17号", delivered },
      kind: null,
    },
    {
      id: "node-whole",
      occurred: wholeSecond,
      authority: "Wuhan AMR",
      notice: { number: "N-2026-1", delivered: days(-5) },
      kind: "natural_person",
    },
  ];
  const signedDocuments = [];
  const records = [];
  for (const r of drafts) {
    const payload = {
      decision_no: `E-${r.id}`,
      violation: "unlicensed trading",
      penalty: "fine",
      decided_on: "2026-01-02",
      authority: r.authority,
    };
    const document = {
      format: "credit-gateway/record/v2",
      provider: cfg.provider.id,
      provider_record_id: r.id,
      item: "ADM.PUNISHMENT",
      subject: cfg.subject,
      subject_kind: r.kind,
      payload,
      occurred_at: canonicalTime(r.occurred),
      notice: { number: r.notice.number, delivered_at: canonicalTime(r.notice.delivered) },
    };
    const bytes = canonicalBytes(document);
    signedDocuments.push(Buffer.from(bytes).toString("base64"));
    records.push({
      provider_record_id: r.id,
      item_code: "ADM.PUNISHMENT",
      subject_code: cfg.subject,
      payload_json: Buffer.from(canonicalBytes(payload)),
      occurred_at: timestamp(r.occurred),
      subject_kind: r.kind ? `SUBJECT_KIND_${r.kind.toUpperCase()}` : "SUBJECT_KIND_UNSPECIFIED",
      notice: { number: r.notice.number, delivered_at: timestamp(r.notice.delivered) },
      signature: await es256(providerKey, bytes),
      key_id: keyId,
    });
  }
  const submissions = new v1.SubmissionService(cfg.target, channel(cfg, cfg.provider));
  const submitted = await submit(submissions, records, cfg.provider.token);

  // (2) The subject signs its consent. The request lists items and categories in no particular
  // order; the artefact lists each set sorted (docs/canonical.md).
  const items = ["TAX.PAID", "ADM.PUNISHMENT"];
  const categories = ["judicial", "administrative_punishment"];
  const dataFrom = days(-365);
  dataFrom.setUTCMilliseconds(125);
  const terms = {
    grantee: cfg.agency.id,
    purpose_code: "LOAN_APPROVAL",
    purpose_text: "住房贷款 mortgage application",
    item_codes: items,
    categories,
    data_from: dataFrom,
    data_to: days(1),
    valid_from: new Date(now.getTime() - 60_000),
    valid_until: days(30),
    max_uses: 5,
  };
  const artefact = canonicalBytes({
    format: "credit-gateway/consent/v1",
    subject: cfg.subject,
    terms: {
      grantee: terms.grantee,
      purpose: { code: terms.purpose_code, text: terms.purpose_text },
      items: stringSet(items),
      categories: stringSet(categories),
      data_range: [canonicalTime(terms.data_from), canonicalTime(terms.data_to)],
      validity: [canonicalTime(terms.valid_from), canonicalTime(terms.valid_until)],
      max_uses: terms.max_uses,
      conditions: ["NO_ONWARD_DISCLOSURE", "AGREED_USE_ONLY"],
    },
  });
  const subjectJwk = JSON.parse(readFileSync(cfg.subject_key, "utf8"));
  const subjectPrivate = await jose.importJWK(subjectJwk, "ES256");
  const { d: _d, ...subjectPublic } = subjectJwk;
  const consents = new v1.ConsentService(cfg.target, channel(cfg, cfg.portal));
  const granted = await unary(
    consents,
    "GrantConsent",
    {
      terms: {
        ...terms,
        data_from: timestamp(terms.data_from),
        data_to: timestamp(terms.data_to),
        valid_from: timestamp(terms.valid_from),
        valid_until: timestamp(terms.valid_until),
      },
      subject_signature: await es256(subjectPrivate, artefact),
      subject_key_id: await jose.calculateJwkThumbprint(subjectPublic, "sha256"),
    },
    cfg.portal.token,
  );

  // (3) The agency asks under the consent and gets the records back.
  const inquiry = new v1.InquiryService(cfg.target, channel(cfg, cfg.agency));
  const answer = await unary(
    inquiry,
    "QueryAuthorized",
    {
      query: {
        subject_code: cfg.subject,
        item_codes: ["ADM.PUNISHMENT"],
        purpose: "LOAN_APPROVAL",
        agreement_id: cfg.agency.agreement,
      },
      consent_token: granted.token.token,
    },
    cfg.agency.token,
  );
  for (const client of [submissions, consents, inquiry]) client.close();

  const asDate = (ts) => new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
  return {
    signed_records: signedDocuments,
    submitted: {
      accepted: submitted.accepted,
      results: submitted.results.map((r) => ({
        provider_record_id: r.provider_record_id,
        outcome: r.outcome,
        violations: r.violations.map((v) => `${v.reason} ${v.field}: ${v.description}`),
      })),
    },
    artefact: Buffer.from(artefact).toString("base64"),
    consent: { id: granted.consent.consent_id, evidence: granted.consent.evidence },
    released: answer.records.map((r) => ({
      item_code: r.item_code,
      payload: JSON.parse(Buffer.from(r.payload_json).toString("utf8")),
      occurred_at: canonicalTime(asDate(r.occurred_at)),
    })),
  };
}

const [command, arg] = process.argv.slice(2);
const actions = {
  "subject-key": () => subjectKey(arg),
  run: () => run(JSON.parse(readFileSync(arg, "utf8"))),
};
if (!actions[command] || !arg) {
  console.error("usage: node client.mjs subject-key <jwk-out> | run <config.json>");
  process.exit(2);
}
actions[command]().then(
  (out) => process.stdout.write(`${JSON.stringify(out)}\n`),
  (err) => {
    console.error(err.stack || String(err));
    process.exit(1);
  },
);
