"""Tests for credit_gateway.domain.identifiers (GB 32100, GB 11714, GB 11643)."""

from __future__ import annotations

import dataclasses
import datetime
import pickle
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import vectors
from support.vectors import Case

from credit_gateway.domain.identifiers import (
    IdentifierError,
    ResidentIdNumber,
    SubjectKind,
    UnifiedSocialCreditCode,
    organisation_code_check_character,
    parse_subject_code,
    resident_id_check_character,
    uscc_check_character,
    uscc_subject_kind,
)
from credit_gateway.errors import InvalidArgument

TODAY = datetime.date(2025, 1, 1)

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
DIGITS = "0123456789"
RESIDENT_ALPHABET = DIGITS + "X"
RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

# The published examples (tests/vectors/identifiers.json), valid ones by scheme.
USCC_EXAMPLES = [c["code"] for c in vectors.load("identifiers", scheme="uscc") if "fields" in c]
RESIDENT_EXAMPLES = [c["code"] for c in vectors.load("identifiers", scheme="resident_id")]


def make_uscc(head: str, org_body: str) -> str:
    """Build a USCC from positions 1-8 and the 8-char organisation code body."""
    first17 = head + org_body + organisation_code_check_character(org_body)
    return first17 + uscc_check_character(first17)


def make_resident_id(first17: str) -> str:
    return first17 + resident_id_check_character(first17)


def substitutions(code: str, alphabet: str) -> list[tuple[int, str]]:
    """Every (position, char) that changes exactly one character of ``code``."""
    return [(i, c) for i in range(len(code)) for c in alphabet if c != code[i]]


def substituted(code: str, position: int, char: str) -> str:
    return code[:position] + char + code[position + 1 :]


# ---------------------------------------------------------------- strategies


def uscc_chars(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=USCC_ALPHABET, min_size=size, max_size=size)


def digit_chars(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=DIGITS, min_size=size, max_size=size)


@st.composite
def valid_usccs(draw: st.DrawFn) -> str:
    head = draw(uscc_chars(2)) + draw(digit_chars(6))
    return make_uscc(head, draw(uscc_chars(8)))


@st.composite
def valid_resident_ids(draw: st.DrawFn) -> str:
    address = draw(st.sampled_from("123456789")) + draw(digit_chars(5))
    birth = draw(st.dates(min_value=datetime.date(1800, 1, 1), max_value=TODAY))
    sequence = draw(digit_chars(3))
    return make_resident_id(f"{address}{birth:%Y%m%d}{sequence}")


# ------------------------------------------------------------------- USCC


@given(valid_usccs())
def test_generated_uscc_parses_and_exposes_its_fields(code: str) -> None:
    uscc = UnifiedSocialCreditCode.parse(code)
    assert uscc == UnifiedSocialCreditCode(code)
    assert uscc.value == code
    assert str(uscc) == code
    assert uscc.registration_authority == code[0]
    assert uscc.organisation_category == code[1]
    assert uscc.division_code == code[2:8]
    assert uscc.organisation_code == code[8:17]


@given(valid_usccs())
def test_uscc_every_single_substitution_is_rejected(code: str) -> None:
    for position, char in substitutions(code, USCC_ALPHABET):
        mutated = substituted(code, position, char)
        # The mod-31 check character alone already catches it ...
        assert uscc_check_character(mutated[:17]) != mutated[17]
        # ... and so the parser rejects it (possibly on an earlier rule).
        with pytest.raises(IdentifierError):
            UnifiedSocialCreditCode.parse(mutated)


def test_uscc_weights_detect_every_single_substitution() -> None:
    # Why the property above holds for all codes: 31 is prime and no weight is 0 mod 31,
    # so a change of value by d (1..30) at one position changes the sum by W_i*d != 0 mod 31.
    assert tuple(pow(3, i, 31) for i in range(17)) == USCC_WEIGHTS
    assert all((w * d) % 31 for w in USCC_WEIGHTS for d in range(1, 31))


@vectors.parametrize("identifiers", scheme="uscc")
def test_published_uscc_examples(case: Case) -> None:
    code = case["code"]
    if "refused" in case:
        with pytest.raises(IdentifierError) as excinfo:
            UnifiedSocialCreditCode.parse(code)
        assert excinfo.value.rule == case["refused"]
        return
    uscc = UnifiedSocialCreditCode.parse(code)
    assert uscc.value == code
    assert uscc_check_character(code[:17]) == code[17]
    assert organisation_code_check_character(code[8:16]) == code[16]
    assert {name: getattr(uscc, name) for name in case["fields"]} == case["fields"]


def test_uscc_lowercase_is_normalised_by_parse_only() -> None:
    assert UnifiedSocialCreditCode.parse("91350100m000100y43").value == "91350100M000100Y43"
    assert UnifiedSocialCreditCode.parse("91110000600037341l").value == "91110000600037341L"
    with pytest.raises(IdentifierError) as excinfo:
        UnifiedSocialCreditCode("91350100m000100y43")
    assert excinfo.value.rule == "alphabet"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (" 91350100M000100Y43", "whitespace"),
        ("91350100M000100Y43\n", "whitespace"),
        ("\t91350100M000100Y43 ", "whitespace"),
        ("", "length"),
        ("91350100M000100Y4", "length"),
        ("91350100M000100Y433", "length"),
        ("91350100 000100Y43", "alphabet"),
        *[(substituted("91350100M000100Y43", 8, c), "alphabet") for c in "IOSVZ"],
        ("91350100M000100Y4-", "alphabet"),
        ("91350100M000100Y4\uff13", "alphabet"),  # full-width digit three
        ("9135010ßM000100Y43", "alphabet"),  # non-ASCII must not be case-mapped
        (make_uscc("913501A0", "M000100Y"), "division_code"),
        (make_uscc("91JJJJJJ", "M000100Y"), "division_code"),
        # Wrong organisation-code check char at position 17, position 18 recomputed.
        (
            "91350100M000100Y5" + uscc_check_character("91350100M000100Y5"),
            "organisation_code_check",
        ),
        ("91350100M000100Y4Y", "check_character"),
        ("91350100M000100Y40", "check_character"),
    ],
)
def test_uscc_failure_names_the_rule(text: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        UnifiedSocialCreditCode.parse(text)
    assert excinfo.value.rule == rule
    assert excinfo.value.message == str(excinfo.value)
    assert excinfo.value.message


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        ("1" + "0" * 16, "Y"),  # sum 1 -> 31 - 1 = 30, the last character of the set
        ("0" * 17, "0"),  # sum 0 -> 31 - 0 = 31, written "0"
        ("0" * 16 + "1", "3"),  # W_17 = 28 -> 31 - 28 = 3
    ],
)
def test_uscc_check_character_values(first17: str, expected: str) -> None:
    assert uscc_check_character(first17) == expected


@pytest.mark.parametrize(
    ("first8", "expected"),
    [
        ("00000001", "9"),  # sum 2 -> 11 - 2 = 9
        ("00000005", "1"),  # sum 10 -> 11 - 10 = 1
        ("00000030", "X"),  # sum 12, 12 mod 11 = 1 -> 11 - 1 = 10, written "X"
        ("00000000", "0"),  # sum 0 -> 11 - 0 = 11, written "0"
        # Letters take their full-Latin value (A=10 .. Z=35), not their GB 32100 value:
        ("J0000000", "9"),  # J = 19 (18 in GB 32100): 3 * 19 = 57, 57 mod 11 = 2 -> 9
        ("Z0000000", "5"),  # Z (not in GB 32100) is legal in a bare GB 11714 body: 105 -> 5
    ],
)
def test_organisation_code_check_character(first8: str, expected: str) -> None:
    assert organisation_code_check_character(first8) == expected


@pytest.mark.parametrize(
    ("function", "text", "rule"),
    [
        (organisation_code_check_character, "1234567", "length"),
        (organisation_code_check_character, "1234567a", "alphabet"),
        (uscc_check_character, "9135010", "length"),
        (uscc_check_character, "91350100M000100I4", "alphabet"),
        (uscc_check_character, "91350100m000100Y4", "alphabet"),
        (resident_id_check_character, "1101051949123100", "length"),
        (resident_id_check_character, "1101051949123100X", "alphabet"),
    ],
)
def test_check_character_functions_validate_their_input(
    function: Callable[[str], str], text: str, rule: str
) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        function(text)
    assert excinfo.value.rule == rule


# ------------------------------------------------------------ resident id


@given(valid_resident_ids())
def test_generated_resident_id_parses_and_exposes_its_fields(code: str) -> None:
    number = ResidentIdNumber.parse(code, today=TODAY)
    assert number == ResidentIdNumber(code)
    assert number.value == code
    assert number.address_code == code[:6]
    assert number.birth_date == datetime.date(int(code[6:10]), int(code[10:12]), int(code[12:14]))
    assert number.sequence == code[14:17]
    assert number.is_male is (int(code[16]) % 2 == 1)


@given(valid_resident_ids())
def test_resident_id_every_single_substitution_is_rejected(code: str) -> None:
    for position, char in substitutions(code, RESIDENT_ALPHABET):
        mutated = substituted(code, position, char)
        if position < 17 and char != "X":
            # MOD 11-2 alone already catches any digit change in the body.
            assert resident_id_check_character(mutated[:17]) != mutated[17]
        with pytest.raises(IdentifierError):
            ResidentIdNumber.parse(mutated, today=TODAY)


def test_resident_weights_detect_every_single_substitution() -> None:
    # W_i = 2^(18-i) mod 11; 11 is prime and no weight is 0 mod 11, and digit changes are
    # 1..9, so W_i*d != 0 mod 11 for every position and change.
    assert tuple(pow(2, 17 - i, 11) for i in range(17)) == RESIDENT_WEIGHTS
    assert all((w * d) % 11 for w in RESIDENT_WEIGHTS for d in range(1, 10))


@vectors.parametrize("identifiers", scheme="resident_id")
def test_published_resident_id_examples(case: Case) -> None:
    code = case["code"]
    number = ResidentIdNumber.parse(code, today=TODAY)
    assert number.value == code
    assert resident_id_check_character(code[:17]) == code[17]
    fields = {name: getattr(number, name) for name in case["fields"]}
    assert {**fields, "birth_date": fields["birth_date"].isoformat()} == case["fields"]


def test_resident_id_lowercase_x_is_normalised() -> None:
    assert ResidentIdNumber.parse("11010519491231002x", today=TODAY).value == ("11010519491231002X")
    with pytest.raises(IdentifierError) as excinfo:
        ResidentIdNumber("11010519491231002x")
    assert excinfo.value.rule == "alphabet"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (" 11010519491231002X", "whitespace"),
        ("11010519491231002X\n", "whitespace"),
        ("", "length"),
        ("110105491231002", "length"),  # first-generation 15-digit numbers are not accepted
        ("11010519491231002X0", "length"),
        ("1101051949123100-X", "alphabet"),
        ("11010519491231002A", "alphabet"),
        ("1101051949123100\uff12X", "alphabet"),  # full-width digit two
        ("X10105194912310021", "x_position"),
        ("1101051949123100X2", "x_position"),
        ("1101051949123100x2", "x_position"),  # lowercase is normalised first
        (make_resident_id("01010519491231002"), "address_code"),
        (make_resident_id("11010519490230002"), "birth_date"),  # 30 February
        (make_resident_id("11010519000229002"), "birth_date"),  # 1900 is not a leap year
        (make_resident_id("11010519491301002"), "birth_date"),  # month 13
        (make_resident_id("11010519491200002"), "birth_date"),  # day 0
        (make_resident_id("11010517991231002"), "birth_date"),  # before the 1800 floor
        (make_resident_id("11010500000101002"), "birth_date"),  # year 0
        (make_resident_id("11010520250102002"), "birth_date"),  # after TODAY
        ("110105194912310021", "check_character"),
        ("11010519491231003X", "check_character"),
    ],
)
def test_resident_id_failure_names_the_rule(text: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        ResidentIdNumber.parse(text, today=TODAY)
    assert excinfo.value.rule == rule
    assert excinfo.value.message == str(excinfo.value)
    # Messages never echo the (personal) number.
    if len(text.strip()) >= 14:
        assert text.strip()[:14] not in excinfo.value.message


def test_leap_day_is_a_valid_birth_date() -> None:
    code = make_resident_id("11010520000229002")
    assert ResidentIdNumber.parse(code, today=TODAY).birth_date == datetime.date(2000, 2, 29)


def test_future_birth_date_is_checked_by_parse_against_today() -> None:
    code = make_resident_id("11010520250102002")
    with pytest.raises(IdentifierError) as excinfo:
        ResidentIdNumber.parse(code, today=TODAY)
    assert excinfo.value.rule == "birth_date"
    assert "future" in excinfo.value.message
    # Born today is fine; the constructor has no clock and does not check the future.
    assert ResidentIdNumber.parse(code, today=datetime.date(2025, 1, 2)).value == code
    assert ResidentIdNumber(code).value == code


def test_parse_accepts_a_datetime_for_today() -> None:
    code = make_resident_id("11010520250101002")
    now = datetime.datetime(2025, 1, 1, 12, 30)
    assert ResidentIdNumber.parse(code, today=now).birth_date == TODAY
    with pytest.raises(IdentifierError):
        ResidentIdNumber.parse(code, today=datetime.datetime(2024, 12, 31, 23, 59))


def test_resident_id_repr_and_str_are_masked() -> None:
    number = ResidentIdNumber.parse("11010519491231002X", today=TODAY)
    assert number.masked() == "110105********002X"
    assert repr(number) == "ResidentIdNumber('110105********002X')"
    assert str(number) == "110105********002X"
    assert f"{number}" == "110105********002X"
    assert "19491231" not in repr((SubjectKind.NATURAL_PERSON, number))
    assert "19491231" not in repr([number])
    assert number.value == "11010519491231002X"


@given(valid_resident_ids())
def test_masked_keeps_first_six_and_last_four(code: str) -> None:
    masked = ResidentIdNumber(code).masked()
    assert masked == code[:6] + "********" + code[14:]
    assert repr(ResidentIdNumber(code)) == f"ResidentIdNumber({masked!r})"


# --------------------------------------------------------- shared behaviour


def test_values_are_frozen_and_slotted() -> None:
    uscc = UnifiedSocialCreditCode.parse(USCC_EXAMPLES[0])
    number = ResidentIdNumber.parse(RESIDENT_EXAMPLES[0], today=TODAY)
    for instance in (uscc, number):
        with pytest.raises(dataclasses.FrozenInstanceError):
            instance.value = "x"  # type: ignore[misc]
        assert not hasattr(instance, "__dict__")
    assert hash(uscc) == hash(UnifiedSocialCreditCode(USCC_EXAMPLES[0]))


def test_replace_cannot_build_an_invalid_instance() -> None:
    uscc = UnifiedSocialCreditCode.parse(USCC_EXAMPLES[0])
    with pytest.raises(IdentifierError):
        dataclasses.replace(uscc, value="91350100M000100Y4Y")


def test_identifier_error_is_an_invalid_argument_and_pickles() -> None:
    with pytest.raises(InvalidArgument, match="position 18") as excinfo:
        UnifiedSocialCreditCode.parse("91350100M000100Y4Y")
    error = excinfo.value
    assert isinstance(error, IdentifierError)
    assert error.reason == "BAD_IDENTIFIER"
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - round-trip of our own object
    assert isinstance(copy, IdentifierError)
    assert (copy.rule, copy.message, copy.reason) == (error.rule, error.message, error.reason)
    assert "check_character" in repr(error)


# ------------------------------------------------------- parse_subject_code


@pytest.mark.parametrize("code", RESIDENT_EXAMPLES)
def test_subject_code_resident_id_is_a_natural_person(code: str) -> None:
    kind, subject = parse_subject_code(code.lower(), today=TODAY)
    assert kind is SubjectKind.NATURAL_PERSON
    assert subject == ResidentIdNumber(code)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        ("91350100", SubjectKind.LEGAL_PERSON),  # enterprise
        ("92350100", SubjectKind.INDIVIDUAL_BUSINESS),  # individually-owned business
        ("93350100", SubjectKind.OTHER_ORGANISATION),  # farmers' cooperative
        ("99350100", SubjectKind.LEGAL_PERSON),
        ("12350100", SubjectKind.LEGAL_PERSON),  # authority 1, category 2: not 9/2
        ("13350100", SubjectKind.LEGAL_PERSON),
        ("51350100", SubjectKind.LEGAL_PERSON),
        ("Y1350100", SubjectKind.LEGAL_PERSON),
    ],
)
def test_subject_code_uscc_mapping(head: str, kind: SubjectKind) -> None:
    code = make_uscc(head, "M000100Y")
    assert parse_subject_code(code, today=TODAY) == (kind, UnifiedSocialCreditCode(code))


@given(valid_usccs())
def test_subject_code_generated_uscc_mapping(code: str) -> None:
    uscc = UnifiedSocialCreditCode(code)
    expected = uscc_subject_kind(uscc)
    # Said explicitly, the USCC's own kind always reads as the USCC.
    assert parse_subject_code(code, today=TODAY, kind=expected) == (expected, uscc)
    try:
        ResidentIdNumber.parse(code, today=TODAY)
    except IdentifierError:
        assert parse_subject_code(code, today=TODAY) == (expected, uscc)
    else:  # valid both ways: never guessed
        with pytest.raises(IdentifierError) as excinfo:
            parse_subject_code(code, today=TODAY)
        assert excinfo.value.reason == "SUBJECT_KIND_REQUIRED"
    assert expected is {
        "92": SubjectKind.INDIVIDUAL_BUSINESS,
        "93": SubjectKind.OTHER_ORGANISATION,
    }.get(code[:2], SubjectKind.LEGAL_PERSON)


def test_subject_code_all_digit_uscc_is_a_legal_person() -> None:
    code = "911101082283038843"  # resident-id reading fails: birth year 0822
    with pytest.raises(IdentifierError):
        ResidentIdNumber.parse(code, today=TODAY)
    assert parse_subject_code(code, today=TODAY) == (
        SubjectKind.LEGAL_PERSON,
        UnifiedSocialCreditCode(code),
    )


@pytest.mark.parametrize("code", ["110105195006087684", "121101190408136711"])
def test_subject_code_valid_as_both_needs_its_kind(code: str) -> None:
    assert UnifiedSocialCreditCode(code).value == code
    assert ResidentIdNumber(code).value == code
    with pytest.raises(IdentifierError) as excinfo:
        parse_subject_code(code, today=TODAY)
    assert (excinfo.value.rule, excinfo.value.reason) == ("ambiguous_kind", "SUBJECT_KIND_REQUIRED")
    assert code not in excinfo.value.message  # never echoes personal data
    assert parse_subject_code(code, today=TODAY, kind=SubjectKind.NATURAL_PERSON) == (
        SubjectKind.NATURAL_PERSON,
        ResidentIdNumber(code),
    )
    assert parse_subject_code(code, today=TODAY, kind=SubjectKind.LEGAL_PERSON) == (
        SubjectKind.LEGAL_PERSON,
        UnifiedSocialCreditCode(code),
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("110105195006087684", SubjectKind.OTHER_ORGANISATION),  # its USCC is a legal person's
        ("911101082283038843", SubjectKind.NATURAL_PERSON),  # no resident-id reading
        (RESIDENT_EXAMPLES[0], SubjectKind.LEGAL_PERSON),
        (make_uscc("92350100", "M000100Y"), SubjectKind.LEGAL_PERSON),  # an individual business
    ],
)
def test_subject_code_of_another_kind_is_a_mismatch(code: str, kind: SubjectKind) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        parse_subject_code(code, today=TODAY, kind=kind)
    assert (excinfo.value.rule, excinfo.value.reason) == ("kind_mismatch", "SUBJECT_KIND_MISMATCH")


def test_an_invalid_code_reports_its_own_error_whatever_kind_is_said() -> None:
    with pytest.raises(IdentifierError) as excinfo:
        parse_subject_code("110105194912310021", today=TODAY, kind=SubjectKind.LEGAL_PERSON)
    assert excinfo.value.reason == "BAD_IDENTIFIER"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        # All-digit bodies report the resident-id error ...
        ("110105194912310021", "check_character"),
        (make_resident_id("11010519490230002"), "birth_date"),
        (make_resident_id("01010519491231002"), "address_code"),
        ("1101051949123100", "length"),
        # ... anything else reports the USCC error.
        ("91350100M000100Y4Y", "check_character"),
        (
            "91350100M000100Y5" + uscc_check_character("91350100M000100Y5"),
            "organisation_code_check",
        ),
        (" 91350100M000100Y43", "whitespace"),
        ("1101051949123100X2", "organisation_code_check"),
        ("", "length"),
        ("hello", "length"),
    ],
)
def test_subject_code_reports_the_more_plausible_error(text: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        parse_subject_code(text, today=TODAY)
    assert excinfo.value.rule == rule
