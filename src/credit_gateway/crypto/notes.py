"""Signed checkpoints of the audit log: C2SP signed-note, tlog-checkpoint and tlog-cosignature.

A checkpoint says "the log named <origin> had <size> entries with this RFC 9162 root":

    <origin>\\n<size>\\n<base64 root>\\n[extension lines]

It travels as a signed note: the text, a blank line, then one line per signature,
``— <key name> <base64(key id || signature)>``. The log signs with Ed25519 (signature type 0x01,
signed-note v1); a witness cosigns with a timestamped Ed25519 cosignature (type 0x04,
tlog-cosignature v1) over ``cosignature/v1\\ntime <t>\\n`` and the checkpoint text, after it has
checked the new checkpoint is consistent with the last one it cosigned.

Verification follows the specs' rules: unknown keys' lines are ignored, a known key's line that
fails rejects the note, and nothing is trusted until a named key's signature has verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from credit_gateway.errors import PeerError

ED25519 = 0x01  # signed-note signature type
COSIGNATURE_V1 = 0x04  # tlog-cosignature, timestamped Ed25519
MAX_SIGNATURES = 100  # as the Go reference refuses more
MAX_NOTE_BYTES = 1 << 20
_DASH = "\u2014 "
_NAME = re.compile(r"[^\s+]+")  # non-empty, no Unicode space, no '+'
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class NoteError(PeerError):
    """A note, checkpoint or cosignature that is malformed or whose signature does not verify."""

    default_reason = "CHECKPOINT_INVALID"


@dataclass(frozen=True, slots=True)
class Verifier:
    """A key a note may be signed by: its name, signature type and public key."""

    name: str
    kind: int
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.kind, self.public_key)

    def vkey(self) -> str:
        """The signed-note text form: ``<name>+<hex key id>+<base64(type || public key)>``."""
        material = bytes([self.kind]) + _raw(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(material).decode()}"

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        try:
            name, hex_id, b64 = text.split("+", 2)  # names hold no '+'; base64 may
            material = base64.b64decode(b64, validate=True)
            verifier = cls(name, material[0], Ed25519PublicKey.from_public_bytes(material[1:]))
        except (ValueError, IndexError, binascii.Error) as exc:
            raise NoteError("not a verifier key: <name>+<key id>+<key>") from exc
        _check_name(name)
        if verifier.kind not in (ED25519, COSIGNATURE_V1) or hex_id != verifier.key_id.hex():
            raise NoteError("the verifier key's id or type does not match its key")
        return verifier


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    kind: int
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.kind, self.private_key.public_key())

    def skey(self) -> str:
        """The text form of golang.org/x/mod/sumdb/note: ``PRIVATE+KEY+<name>+<id>+<key>``."""
        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        material = base64.b64encode(bytes([self.kind]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{material}"

    @classmethod
    def from_skey(cls, text: str) -> Signer:
        try:
            private, key, name, hex_id, b64 = text.split("+", 4)
            material = base64.b64decode(b64, validate=True)
            signer = cls(name, material[0], Ed25519PrivateKey.from_private_bytes(material[1:]))
        except (ValueError, IndexError, binascii.Error) as exc:
            raise NoteError("not a signer key: PRIVATE+KEY+<name>+<key id>+<key>") from exc
        _check_name(name)
        if (private, key) != ("PRIVATE", "KEY") or hex_id != signer.verifier.key_id.hex():
            raise NoteError("the signer key's id does not match its key")
        return signer


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint is an origin, a size and a root, each ending in newline")
        origin, size, root, *extensions = lines[:-1]
        if not origin or not _SIZE.fullmatch(size) or int(size) >= 1 << 64:
            raise NoteError("a checkpoint's origin is empty or its size is not a decimal u64")
        try:
            digest = base64.b64decode(root, validate=True)
        except binascii.Error as exc:
            raise NoteError("a checkpoint's root is not base64") from exc
        if len(digest) != 32 or any(not line for line in extensions):
            raise NoteError("a checkpoint's root is not 32 bytes, or an extension line is empty")
        return cls(origin, int(size), digest, tuple(extensions))


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    @classmethod
    def parse(cls, data: bytes) -> Note:
        if len(data) > MAX_NOTE_BYTES:
            raise NoteError("the note is too large")
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("a note is UTF-8") from exc
        if any(ord(c) < 0x20 and c != "\n" for c in message):
            raise NoteError("a note holds no control characters other than newline")
        split = message.rfind("\n\n")
        if split < 0 or not message.endswith("\n"):
            raise NoteError("a note is text, a blank line, then signature lines")
        text, sig_lines = message[: split + 1], message[split + 2 :].split("\n")[:-1]
        if not sig_lines or len(sig_lines) > MAX_SIGNATURES:
            raise NoteError(f"a note has 1 to {MAX_SIGNATURES} signatures")
        return cls(text, tuple(_parse_signature(line) for line in sig_lines))

    def with_signature(self, signature: NoteSignature) -> Note:
        return Note(self.text, (*self.signatures, signature))


def key_id(name: str, kind: int, public_key: Ed25519PublicKey) -> bytes:
    """SHA-256(name || "\\n" || type || public key)[:4], the same rule for both types."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + _raw(public_key)).digest()[:4]


def sign_note(text: str, signer: Signer) -> Note:
    if signer.kind != ED25519:
        raise NoteError("notes are signed with an Ed25519 (0x01) key")
    _check_text(text)
    _check_name(signer.name)
    signature = signer.private_key.sign(text.encode())
    return Note(text, (NoteSignature(signer.name, signer.verifier.key_id, signature),))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> Note:
    """The log's own signature over the checkpoint text; the key is named after the origin."""
    if signer.name != checkpoint.origin:
        raise NoteError("a log's key is named after its origin")
    return sign_note(checkpoint.text(), signer)


def cosign(note: Note, signer: Signer, timestamp: int) -> NoteSignature:
    """A witness's tlog-cosignature/v1 over the checkpoint text at ``timestamp`` (POSIX s)."""
    if signer.kind != COSIGNATURE_V1 or not 0 <= timestamp < 1 << 63:
        raise NoteError("a cosignature is type 0x04 with a timestamp below 2^63")
    signature = signer.private_key.sign(_cosigned_message(note.text, timestamp))
    return NoteSignature(
        signer.name, signer.verifier.key_id, struct.pack(">Q", timestamp) + signature
    )


def verify_note(note: Note, key: Verifier) -> None:
    """Raises NoteError unless ``key`` (an Ed25519 note key) signed the note's text."""
    if key.kind != ED25519:
        raise NoteError("a note key is an Ed25519 (0x01) key")
    if not _verified(note, key, lambda sig: _ed25519(key, sig.signature, note.text.encode())):
        raise NoteError(f"the note is not signed by {key.name}")


def open_checkpoint(note: Note, log: Verifier) -> Checkpoint:
    """The checkpoint, once the log's own signature on it has verified."""
    verify_note(note, log)
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != log.name:
        raise NoteError("the checkpoint names another log than its key")
    return checkpoint


def cosignature_time(note: Note, witness: Verifier) -> int:
    """When ``witness`` cosigned the note, once its cosignature has verified."""
    if witness.kind != COSIGNATURE_V1:
        raise NoteError("a witness's key is a cosignature (0x04) key")
    seen: list[int] = []

    def check(sig: NoteSignature) -> bool:
        if len(sig.signature) != 8 + 64:
            return False
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        message = _cosigned_message(note.text, timestamp)
        if timestamp >= 1 << 63 or not _ed25519(witness, sig.signature[8:], message):
            return False
        seen.append(timestamp)
        return True

    if not _verified(note, witness, check):
        raise NoteError(f"no valid cosignature by {witness.name}")
    return seen[0]


def _verified(note: Note, verifier: Verifier, check: Callable[[NoteSignature], bool]) -> bool:
    """Whether ``verifier`` signed: lines of other keys are ignored, a failing line of this key
    rejects the note (signed-note: a known key's bad signature is an error, not a miss)."""
    mine = [s for s in note.signatures if (s.name, s.key_id) == (verifier.name, verifier.key_id)]
    if not mine:
        return False
    if not all(check(s) for s in mine):
        raise NoteError(f"a signature by {verifier.name} does not verify")
    return True


def _ed25519(verifier: Verifier, signature: bytes, message: bytes) -> bool:
    try:
        verifier.public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(_DASH):
        raise NoteError("a signature line starts with an em dash and a space")
    name, _, b64 = line[len(_DASH) :].partition(" ")
    _check_name(name)
    try:
        raw = base64.b64decode(b64, validate=True)
    except binascii.Error as exc:
        raise NoteError("a signature is base64") from exc
    if len(raw) < 5:
        raise NoteError("a signature is a key id and signature bytes")
    return NoteSignature(name, raw[:4], raw[4:])


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise NoteError("a key name is non-empty, without spaces or '+'")


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text ends in newline, has no blank line and no control chars")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
