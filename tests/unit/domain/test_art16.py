"""Tests for credit_gateway.domain.art16: Art 16 para 2 (1)'s prohibited names, however a payload
or a schema spells them (case, separators, camelCase, full-width forms, Chinese), and the names
that only look like them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from credit_gateway.domain import art16
from credit_gateway.domain.art16 import names_prohibited, normalise, prohibited_paths, words

NONE: frozenset[str] = frozenset()


def wide(text: str) -> str:
    """`text` in full-width forms (U+FF01-FF5E for ASCII, the ideographic space for a space)."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


# ------------------------------------------------------------------ the normaliser

NORMALISED = {
    "bloodType": "blood_type",
    "BloodType": "blood_type",
    "blood-type": "blood_type",
    "blood.type": "blood_type",
    "blood type": "blood_type",
    "__Blood--TYPE__": "blood_type",
    wide("BloodType"): "blood_type",  # full-width letters
    "blood\u3000type": "blood_type",  # the ideographic space
    "blood" + wide("_") + "type": "blood_type",  # a full-width low line
    "blood\u200btype": "blood_type",  # a zero-width space separates too
    "DNASequence": "dna_sequence",  # an acronym ends where a capitalised word starts
    "HTTPServer2": "http_server_2",
    "medical_records": "medical_records",
    "宗教信仰": "宗教信仰",
    "患者bloodType": "患者_blood_type",  # scripts meet
    "Straße": "strasse",  # case folding, not lowering
    "": "",
    "_-. ": "",
}


@pytest.mark.parametrize(("name", "normal"), NORMALISED.items(), ids=list(NORMALISED))
def test_normalise(name: str, normal: str) -> None:
    assert normalise(name) == normal
    assert words(name) == (tuple(normal.split("_")) if normal else ())


SEPARATORS = st.sampled_from(["_", "-", ".", " ", "__", " - ", "\u3000", wide("_"), wide(".")])
ASCII_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_property_normalise_is_idempotent(name: str) -> None:
    once = normalise(name)
    assert normalise(once) == once
    assert words(once) == words(name)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_property_the_ascii_shortcut_splits_as_the_general_rule_does(name: str) -> None:
    # words() takes a regular expression for ASCII names (most keys); it must agree with the
    # character-by-character rule every other name goes through.
    assert normalise(name) == art16._normalise_unicode(name)


@settings(max_examples=300, deadline=None)
@given(st.lists(ASCII_WORDS, min_size=1, max_size=5), st.lists(SEPARATORS, min_size=2))
def test_property_separators_never_matter(parts: list[str], separators: list[str]) -> None:
    joined = parts[0] + "".join(
        separators[i % len(separators)] + p for i, p in enumerate(parts[1:])
    )
    assert normalise(joined) == "_".join(parts)
    assert normalise("_" + joined + separators[0]) == "_".join(parts)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ASCII_WORDS, min_size=1, max_size=5),
    SEPARATORS,
    st.sampled_from([str.upper, str.lower, str.title, str.capitalize]),
)
def test_property_case_never_matters_between_separated_words(
    parts: list[str], separator: str, case: Any
) -> None:
    assert normalise(separator.join(case(p) for p in parts)) == "_".join(parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(ASCII_WORDS.filter(lambda w: len(w) > 1), min_size=1, max_size=5))
def test_property_camel_and_pascal_case_are_words(parts: list[str]) -> None:
    # One-letter words in PascalCase read as an acronym (`AB`): words of two letters or more.
    camel = parts[0] + "".join(p.capitalize() for p in parts[1:])
    pascal = "".join(p.capitalize() for p in parts)
    assert normalise(camel) == normalise(pascal) == "_".join(parts)


# ------------------------------------------------------------------ names, both ways

# Art 16 para 2 (1): "religious beliefs, genetics, fingerprints, blood types, illnesses, medical
# history and so forth" - each spelled the ways a payload spells it, and what it reads as.
REFUSED = {
    # the five, which matched only exactly before
    "bloodType": "blood_type",
    "blood-type": "blood_type",
    "medical_records": "medical_record",
    "宗教信仰": "宗教信仰",
    "血型": "血型",
    # religious beliefs
    "religion": "religion",
    "Religions": "religion",
    "religiousBelief": "religious_belief",
    "religious": "religious",  # alone, it can be about nothing else
    "宗教": "宗教",
    "宗教活动场所": "宗教",  # Chinese does not mark the adjective: refused, unlike English
    "信仰": "信仰",
    # genetics
    "genes": "gene",
    "geneticTestResult": "genetic",
    "Genetics": "genetic",
    "DNASequence": "dna",
    "基因检测": "基因",
    "遗传病史": "遗传病",
    # fingerprints
    "fingerprint": "fingerprint",
    "finger_prints": "fingerprint",  # of two names spelled alike, the one with fewer words,
    "指纹": "指纹",
    # blood types
    "BLOODTYPE": "blood_type",
    wide("BloodType"): "blood_type",
    "patient_blood_group": "blood_group",
    "bl_ood_type": "blood_type",
    "blood\u200btype": "blood_type",
    "患者血型": "血型",
    "血_型": "血型",
    # illnesses
    "illness": "illness",
    "Illnesses": "illnesses",
    "chronicDiseases": "disease",
    "diagnosis": "diagnosis",
    "health_status": "health_status",
    "疾病": "疾病",
    "诊断结果": "诊断",
    # medical history
    "medicalHistory": "medical_history",
    "MedicalRecords": "medical_record",
    "case-history": "case_history",
    "病史": "病史",
    "既往病史": "既往病史",
    "病历": "病历",
    "Medical": "medical",
}
ALLOWED = (
    "religious_holiday_closure",  # a venue's opening hours, not a belief
    "religiousVenueRegistration",
    "medical_insurance_arrears",  # Art 10's social insurance, not a condition
    "medicalInstitutionLicence",
    "health_permit_no",
    "blood_donation_hours",  # a commendation (COM.VOLUNTEER)
    "general",  # contains "gene", is not the word
    "genesis",
    "bloodstock",
    "good_faith",
    "信仰自由",
    "name",
    "amount_cny",
    "decision_no",
    "typeOfBlood",  # not the name's word order: an honest limit, shown here
)


@pytest.mark.parametrize(("key", "reads_as"), REFUSED.items(), ids=list(REFUSED))
def test_names_that_are_refused(key: str, reads_as: str) -> None:
    assert names_prohibited(key) == reads_as
    assert prohibited_paths({"ok": 1, key: "x"}, NONE) == [f"$.{key}"]


@pytest.mark.parametrize("key", ALLOWED)
def test_names_that_pass(key: str) -> None:
    assert names_prohibited(key) is None
    assert prohibited_paths({key: {"note": "blood type A, religion x"}}, NONE) == []


def test_every_prohibited_name_is_refused_as_itself() -> None:
    for name in art16.PROHIBITED:
        reads_as = names_prohibited(name)
        assert reads_as is not None, name
        assert reads_as.replace("_", "") == name.replace("_", ""), name


def test_a_catalog_adds_names_never_removes_them() -> None:
    assert names_prohibited("ethnicGroup") is None
    assert names_prohibited("ethnicGroup", frozenset({"Ethnic Group"})) == "ethnic_group"
    assert names_prohibited("bloodType", frozenset({"ethnic_group"})) == "blood_type"


def test_prohibited_paths_at_any_depth_and_in_lists() -> None:
    payload = {
        "notes": {"Blood_Type": "A", "fine": 1},
        "annex": [{"page": 1}, {"RELIGION": "x", "inner": [{"病历": "y"}]}],
        "medical_history": "none",
    }
    assert prohibited_paths(payload, NONE) == [
        "$.notes.Blood_Type",
        "$.annex[1].RELIGION",
        "$.annex[1].inner[0].病历",
        "$.medical_history",
    ]
    assert prohibited_paths(payload, NONE, "$.payload") == [
        "$.payload.notes.Blood_Type",
        "$.payload.annex[1].RELIGION",
        "$.payload.annex[1].inner[0].病历",
        "$.payload.medical_history",
    ]
    assert prohibited_paths(["religion", 3, None, "x"], NONE) == []  # values are not names


# ------------------------------------------------------------------ properties of the matcher

LATIN_NAMES = sorted(n for n in art16.PROHIBITED - art16.WHOLE_NAME_ONLY if n.isascii())
CHINESE_NAMES = sorted(n for n in art16.PROHIBITED - art16.WHOLE_NAME_ONLY if not n.isascii())
# Words that spell nothing prohibited, alone or run together (no "case" + "history").
INNOCENT = st.sampled_from(
    [
        "name",
        "amount",
        "cny",
        "year",
        "decision",
        "no",
        "penalty",
        "authority",
        "religious",
        "holiday",
        "closure",
        "medical",
        "insurance",
        "arrears",
        "general",
        "blood",
        "donation",
        "health",
        "permit",
        "登记",
        "金额",
    ]
)


@st.composite
def _spelled(draw: st.DrawFn, name: str) -> str:
    """`name`'s letters in any case, any separators (or none) between any of them, some
    full-width."""
    out = ""
    for c in name.replace("_", ""):
        out += draw(st.sampled_from(["", "", "_", "-", ".", " ", "\u200b"]))
        c = draw(st.sampled_from([c, c.upper()]))
        out += wide(c) if draw(st.booleans()) else c
    return out


@st.composite
def _innocent_key(draw: st.DrawFn) -> str:
    parts = draw(st.lists(INNOCENT, min_size=2, max_size=4))
    case = draw(st.sampled_from([str.lower, str.upper, str.capitalize]))
    return (
        draw(SEPARATORS).join(case(p) for p in parts)
        if draw(st.booleans())
        else (parts[0] + "".join(p.capitalize() for p in parts[1:]))
    )


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_property_a_prohibited_name_is_found_however_spelled_and_wherever_in_the_key(
    data: st.DataObject,
) -> None:
    name = data.draw(st.sampled_from(LATIN_NAMES + CHINESE_NAMES))
    before = data.draw(st.lists(INNOCENT, max_size=2))
    after = data.draw(st.lists(INNOCENT, max_size=2))
    separator = data.draw(SEPARATORS)
    key = separator.join([*before, data.draw(_spelled(name)), *after])
    assert names_prohibited(key) is not None, key


@settings(max_examples=400, deadline=None)
@given(_innocent_key())
def test_property_innocent_words_are_never_refused(key: str) -> None:
    assert names_prohibited(key) is None, key


_JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_PAYLOADS = st.recursive(
    st.dictionaries(_innocent_key(), _JSON_LEAVES, max_size=3),
    lambda inner: st.dictionaries(_innocent_key(), inner | st.lists(inner, max_size=3), max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_PAYLOADS, st.data())
def test_property_the_one_prohibited_key_in_a_payload_is_the_one_path_reported(
    payload: dict[str, Any], data: st.DataObject
) -> None:
    assert prohibited_paths(payload, NONE) == []
    # Put a prohibited key into one of the payload's objects, and find it there alone.
    objects: list[tuple[dict[str, Any], str]] = []

    def collect(value: Any, path: str) -> None:
        if isinstance(value, dict):
            objects.append((value, path))
            for k, v in value.items():
                collect(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                collect(v, f"{path}[{i}]")

    collect(payload, "$")
    target, path = data.draw(st.sampled_from(objects))
    key = data.draw(_spelled(data.draw(st.sampled_from(LATIN_NAMES + CHINESE_NAMES))))
    assume(key not in target)
    target[key] = "x"
    assert prohibited_paths(payload, NONE) == [f"{path}.{key}"]


def test_a_kept_answer_is_the_answer_and_the_keeping_stays_bounded() -> None:
    keys = [f"note_{i}" for i in range(3 * art16._KEPT_KEYS)] + ["bloodType", "x" * 65]
    fresh = [art16._build(art16.PROHIBITED)._names(k) for k in keys]
    matcher = art16._build(art16.PROHIBITED)
    assert [matcher.names(k) for k in keys] == fresh
    assert [matcher.names(k) for k in keys] == fresh  # from what was kept
    assert len(matcher._answers) <= art16._KEPT_KEYS
    assert "x" * 65 not in matcher._answers  # long keys are not kept
