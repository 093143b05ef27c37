"""Validation of the two Chinese subject identifiers the gateway accepts.

* Unified Social Credit Code (USCC, 统一社会信用代码), GB 32100-2015, which embeds an
  organisation code (组织机构代码) whose own check character follows GB 11714-1997.
* Resident identity number (公民身份号码), GB 11643-1999, check character by
  ISO 7064:1983 MOD 11-2.

Everything here is pure: no I/O, no clock (the caller passes ``today``), stdlib only besides
the gateway's error classes.

Failures raise :class:`IdentifierError` (an InvalidArgument), whose ``rule`` is a stable
machine-readable code. Messages never echo the input, so they are safe to log even for resident
identity numbers (personal data).
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Final, Literal

from credit_gateway.errors import DomainError

__all__ = [
    "IdentifierError",
    "IdentifierRule",
    "ResidentIdNumber",
    "SubjectKind",
    "UnifiedSocialCreditCode",
    "organisation_code_check_character",
    "parse_subject_code",
    "resident_id_check_character",
    "uscc_check_character",
    "uscc_subject_kind",
]

IdentifierRule = Literal[
    "whitespace",
    "length",
    "alphabet",
    "division_code",
    "organisation_code_check",
    "check_character",
    "address_code",
    "birth_date",
    "x_position",
    "ambiguous_kind",
    "kind_mismatch",
]

# Rules about which identifier a code is, rather than whether it is one, have reasons of their own.
_RULE_REASONS: Final[dict[str, str]] = {
    "ambiguous_kind": "SUBJECT_KIND_REQUIRED",
    "kind_mismatch": "SUBJECT_KIND_MISMATCH",
}


class IdentifierError(DomainError):
    """An identifier failed validation; ``rule`` names the rule that failed (finer than the
    ``reason``, which is the same for every rule)."""

    default_reason = "BAD_IDENTIFIER"
    rule: IdentifierRule

    def __init__(self, rule: IdentifierRule, message: str) -> None:
        super().__init__(message, reason=_RULE_REASONS.get(rule))
        self.rule = rule

    def __reduce__(self) -> tuple[type[IdentifierError], tuple[IdentifierRule, str]]:
        # Keep the exception picklable despite the two-argument constructor.
        return (type(self), (self.rule, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rule={self.rule!r}, message={self.message!r})"


class SubjectKind(enum.Enum):
    """What kind of credit subject a code identifies; see :func:`parse_subject_code`."""

    NATURAL_PERSON = "natural_person"
    LEGAL_PERSON = "legal_person"
    OTHER_ORGANISATION = "other_organisation"
    # Civil Code Art 54: a natural person engaged in registered business (个体工商户). Its code is
    # a USCC of type 92, and what is held about it is held about a person (see docs/regulation.md).
    INDIVIDUAL_BUSINESS = "individual_business"

    @property
    def is_person(self) -> bool:
        """Whether the Art 17 para 2 rule for natural persons' information applies."""
        return self in (SubjectKind.NATURAL_PERSON, SubjectKind.INDIVIDUAL_BUSINESS)


# --------------------------------------------------------------------------- helpers

_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS: Final = frozenset("0123456789")


def _normalise_case(text: str) -> str:
    # ASCII-only upper-casing: str.upper() would map e.g. "ß" to "SS" and change the length;
    # on ASCII text it is the same mapping, and the translation table is ten times slower.
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


def _reject_surrounding_whitespace(text: str, what: str) -> None:
    if text != text.strip():
        raise IdentifierError("whitespace", f"{what} must not have leading or trailing whitespace")


def _require_length(text: str, length: int, what: str) -> None:
    if len(text) != length:
        raise IdentifierError("length", f"{what} must be {length} characters long, got {len(text)}")


# ------------------------------------------------------------- GB 32100-2015 (USCC)

_USCC_NAME: Final = "unified social credit code"
_USCC_LENGTH: Final = 18
# GB 32100-2015 Table 1 (code character set): 0-9, then A-Y without I, O, S, V, Z;
# a character's value is its index here (0..30).
_USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE: Final = {char: value for value, char in enumerate(_USCC_ALPHABET)}
_USCC_CHARS: Final = frozenset(_USCC_ALPHABET)
# GB 32100-2015 Table 2: W_i = 3^(i-1) mod 31 for i = 1..17.
_USCC_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))

# GB 11714-1997 (organisation code): 8 body characters + 1 check character.
_ORG_NAME: Final = "organisation code body"
_ORG_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Digits are 0-9 and letters A=10 .. Z=35 over the *full* Latin alphabet, so e.g. "J" is 19
# here while it is 18 in the GB 32100 character set.
_ORG_VALUE: Final = {char: value for value, char in enumerate(_ORG_ALPHABET)}
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)


def organisation_code_check_character(first8: str) -> str:
    """Return the GB 11714-1997 check character for an 8-character organisation code body.

    ``first8`` must be 8 upper-case characters from 0-9 and A-Z (no case normalisation).
    """
    _require_length(first8, 8, _ORG_NAME)
    for position, char in enumerate(first8, start=1):
        if char not in _ORG_VALUE:
            raise IdentifierError(
                "alphabet",
                f"{_ORG_NAME}: character at position {position} is not 0-9 or A-Z",
            )
    total = sum(
        _ORG_VALUE[char] * weight for char, weight in zip(first8, _ORG_WEIGHTS, strict=True)
    )
    # GB 11714-1997: C9 = 11 - MOD(sum, 11); 10 is written "X" and 11 is written "0".
    check = 11 - total % 11
    if check == 10:
        return "X"
    if check == 11:
        return "0"
    return str(check)


def _require_uscc_alphabet(text: str, what: str) -> None:
    if _USCC_CHARS.issuperset(text):  # the usual case, in C; the loop only to say where
        return
    for position, char in enumerate(text, start=1):
        if char not in _USCC_VALUE:
            raise IdentifierError(
                "alphabet",
                f"{what}: character at position {position} is not in the GB 32100 character "
                "set (0-9 and A-Y except I, O, S, V, Z)",
            )


def uscc_check_character(first17: str) -> str:
    """Return the GB 32100-2015 check character (position 18) for the first 17 characters.

    ``first17`` must be 17 characters of the GB 32100 character set, upper case.
    """
    _require_length(first17, 17, f"{_USCC_NAME} body")
    _require_uscc_alphabet(first17, f"{_USCC_NAME} body")
    total = sum(
        _USCC_VALUE[char] * weight for char, weight in zip(first17, _USCC_WEIGHTS, strict=True)
    )
    # GB 32100-2015: C18 = 31 - MOD(sum(C_i * W_i), 31); a result of 31 is written "0".
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def _validate_uscc(value: str) -> None:
    # Order: shape first, then the fields, then the check characters.
    _reject_surrounding_whitespace(value, _USCC_NAME)
    _require_length(value, _USCC_LENGTH, _USCC_NAME)
    _require_uscc_alphabet(value, _USCC_NAME)
    # Positions 3-8: administrative division code of the registering authority (GB/T 2260),
    # six digits.
    if not set(value[2:8]) <= _DIGITS:
        raise IdentifierError(
            "division_code", f"{_USCC_NAME}: positions 3-8 (division code) must be 6 digits"
        )
    # Positions 9-17: the organisation code, whose 9th character is its GB 11714 check.
    expected_org_check = organisation_code_check_character(value[8:16])
    if value[16] != expected_org_check:
        raise IdentifierError(
            "organisation_code_check",
            f"{_USCC_NAME}: position 17 does not match the GB 11714 check character of the "
            "organisation code (positions 9-16)",
        )
    # Position 18: the GB 32100 check character over positions 1-17.
    if value[17] != uscc_check_character(value[:17]):
        raise IdentifierError(
            "check_character",
            f"{_USCC_NAME}: position 18 does not match the check character of positions 1-17",
        )


@dataclass(frozen=True, slots=True)
class UnifiedSocialCreditCode:
    """A valid GB 32100-2015 Unified Social Credit Code, in canonical (upper-case) form.

    The constructor validates and does not normalise; use :meth:`parse` for user input.
    """

    value: str

    def __post_init__(self) -> None:
        _validate_uscc(self.value)

    @classmethod
    def parse(cls, text: str) -> UnifiedSocialCreditCode:
        """Upper-case ASCII letters, then validate. Surrounding whitespace is rejected."""
        return cls(_normalise_case(text))

    @property
    def registration_authority(self) -> str:
        """Position 1: registration authority code (e.g. "9" industry and commerce)."""
        return self.value[0]

    @property
    def organisation_category(self) -> str:
        """Position 2: organisation category code, meaningful per registration authority."""
        return self.value[1]

    @property
    def division_code(self) -> str:
        """Positions 3-8: administrative division code of the registering authority."""
        return self.value[2:8]

    @property
    def organisation_code(self) -> str:
        """Positions 9-17: the GB 11714 organisation code, including its check character."""
        return self.value[8:17]

    def __str__(self) -> str:
        return self.value


# --------------------------------------------------------- GB 11643-1999 (resident id)

_RID_NAME: Final = "resident identity number"
_RID_LENGTH: Final = 18
# ISO 7064 MOD 11-2 as used by GB 11643-1999 §5.5: W_i = 2^(i-1) mod 11 with i counted
# from the right starting at the check character, i.e. these weights for positions 1-17.
_RID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character indexed by (sum mod 11); "X" stands for the value 10.
_RID_CHECK_CHARS: Final = "10X98765432"
# Not in the standard itself: GB 11643-1999 Annex A's own example (440524188001010014) was
# born in 1880, so the floor is 1800 rather than 1900 to let the published example pass.
_RID_MIN_BIRTH_YEAR: Final = 1800


def resident_id_check_character(first17: str) -> str:
    """Return the GB 11643-1999 (ISO 7064 MOD 11-2) check character for 17 ASCII digits."""
    _require_length(first17, 17, f"{_RID_NAME} body")
    if not set(first17) <= _DIGITS:
        raise IdentifierError("alphabet", f"{_RID_NAME} body must be 17 digits")
    total = sum(int(char) * weight for char, weight in zip(first17, _RID_WEIGHTS, strict=True))
    return _RID_CHECK_CHARS[total % 11]


def _birth_date_of(value: str) -> datetime.date:
    # GB 11643-1999 §5.3: positions 7-14 are the birth date YYYYMMDD (GB/T 7408).
    try:
        birth = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise IdentifierError(
            "birth_date", f"{_RID_NAME}: positions 7-14 are not a calendar date (YYYYMMDD)"
        ) from None
    if birth.year < _RID_MIN_BIRTH_YEAR:
        raise IdentifierError(
            "birth_date", f"{_RID_NAME}: birth year is before {_RID_MIN_BIRTH_YEAR}"
        )
    return birth


def _validate_resident_id(value: str) -> None:
    # Everything except the "not in the future" check, which needs the caller's clock.
    _reject_surrounding_whitespace(value, _RID_NAME)
    _require_length(value, _RID_LENGTH, _RID_NAME)
    # GB 11643-1999 §5.1: 17 digits then one check character; "X" (value 10) can only be
    # the check character.
    if "X" in value[:17]:
        raise IdentifierError(
            "x_position", f"{_RID_NAME}: 'X' is only allowed as the last (check) character"
        )
    if not set(value[:17]) <= _DIGITS or (value[17] not in _DIGITS and value[17] != "X"):
        raise IdentifierError(
            "alphabet", f"{_RID_NAME} must be 17 digits followed by a digit or 'X'"
        )
    # GB 11643-1999 §5.2: positions 1-6 are a GB/T 2260 division code; those never start
    # with 0.
    if value[0] == "0":
        raise IdentifierError(
            "address_code", f"{_RID_NAME}: the address code (positions 1-6) cannot start with 0"
        )
    _birth_date_of(value)
    # GB 11643-1999 §5.5: position 18 is the MOD 11-2 check character of positions 1-17.
    if value[17] != resident_id_check_character(value[:17]):
        raise IdentifierError(
            "check_character",
            f"{_RID_NAME}: position 18 does not match the check character of positions 1-17",
        )


@dataclass(frozen=True, slots=True, repr=False)
class ResidentIdNumber:
    """A valid GB 11643-1999 resident identity number, in canonical form (upper-case "X").

    The constructor validates everything that does not need a clock; :meth:`parse`
    additionally rejects a birth date after ``today``. ``repr()`` and ``str()`` are masked
    because the number is personal data; read ``.value`` deliberately when it is needed.
    """

    value: str

    def __post_init__(self) -> None:
        _validate_resident_id(self.value)

    @classmethod
    def parse(cls, text: str, *, today: datetime.date) -> ResidentIdNumber:
        """Upper-case ASCII letters ("x" -> "X"), validate, reject births after ``today``.

        A ``datetime.datetime`` is accepted for ``today`` and reduced to its date.
        """
        number = cls(_normalise_case(text))
        if isinstance(today, datetime.datetime):
            today = today.date()
        if number.birth_date > today:
            raise IdentifierError("birth_date", f"{_RID_NAME}: birth date is in the future")
        return number

    @property
    def address_code(self) -> str:
        """Positions 1-6: administrative division code of the registered residence."""
        return self.value[:6]

    @property
    def birth_date(self) -> datetime.date:
        """Positions 7-14."""
        return _birth_date_of(self.value)

    @property
    def sequence(self) -> str:
        """Positions 15-17, as the 3-digit string (leading zeros kept)."""
        return self.value[14:17]

    @property
    def is_male(self) -> bool:
        # GB 11643-1999 §5.4: odd sequence codes are assigned to men, even to women.
        return int(self.sequence) % 2 == 1

    def masked(self) -> str:
        """The number with positions 7-14 (the birth date) replaced by ``*``."""
        return f"{self.value[:6]}{'*' * 8}{self.value[14:]}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()


# ------------------------------------------------------------------ either identifier


def uscc_subject_kind(uscc: UnifiedSocialCreditCode) -> SubjectKind:
    """The kind of subject a USCC's registration authority and category say it registers."""
    if uscc.registration_authority == "9":
        if uscc.organisation_category == "2":
            return SubjectKind.INDIVIDUAL_BUSINESS
        if uscc.organisation_category == "3":
            return SubjectKind.OTHER_ORGANISATION
    return SubjectKind.LEGAL_PERSON


def parse_subject_code(
    text: str, *, today: datetime.date, kind: SubjectKind | None = None
) -> tuple[SubjectKind, UnifiedSocialCreditCode | ResidentIdNumber]:
    """Parse an 18-character subject code as the kind of subject the caller says it names.

    A code is read both ways: as a resident identity number (``NATURAL_PERSON``) and as a USCC,
    whose authority and category give its kind (:func:`uscc_subject_kind`: 92 is
    ``INDIVIDUAL_BUSINESS``, 93 ``OTHER_ORGANISATION``, any other ``LEGAL_PERSON``).

    * ``kind`` given: the reading of that kind, or ``kind_mismatch`` (SUBJECT_KIND_MISMATCH)
      when the code is valid but names another kind.
    * ``kind`` omitted: the one valid reading; an all-digit code valid both ways is
      ``ambiguous_kind`` (SUBJECT_KIND_REQUIRED). The kind is never guessed.

    If neither reading is valid, the error raised is the one of the more plausible reading: the
    resident-id error when every character but the last is an ASCII digit, else the USCC error.
    """
    readings: dict[SubjectKind, UnifiedSocialCreditCode | ResidentIdNumber] = {}
    # Only a code whose characters but the last are ASCII digits can be a resident id, and only
    # such a code's resident-id error is ever raised: the others are not read that way.
    body = text[:-1]
    plausibly_resident = bool(body) and _DIGITS.issuperset(body)
    if plausibly_resident:
        try:
            readings[SubjectKind.NATURAL_PERSON] = ResidentIdNumber.parse(text, today=today)
        except IdentifierError as error:
            resident_error = error
    try:
        uscc = UnifiedSocialCreditCode.parse(text)
        readings[uscc_subject_kind(uscc)] = uscc
    except IdentifierError as uscc_error:
        if not readings:
            if plausibly_resident:
                raise resident_error from None
            raise uscc_error from None
    if kind is not None:
        if kind not in readings:
            raise IdentifierError("kind_mismatch", f"the code is not valid for a {kind.value}")
        return kind, readings[kind]
    if len(readings) > 1:
        raise IdentifierError(
            "ambiguous_kind",
            "the code is valid both as a resident identity number and as a USCC: "
            "say which kind of subject it names (subject_kind)",
        )
    ((only_kind, parsed),) = readings.items()
    return only_kind, parsed


def birth_date(kind: SubjectKind, code: str) -> datetime.date | None:
    """A natural person's birth date from its (parsed, normalised) resident ID; None for any
    other kind of subject."""
    return _birth_date_of(code) if kind is SubjectKind.NATURAL_PERSON else None
