"""Art 16 para 2 (1): the information that must never be aggregated ("religious beliefs,
genetics, fingerprints, blood types, illnesses, medical history and so forth"), by the names a
payload or a payload schema would give it, in English and in Chinese.

Names are compared as words, not as spellings. `words` takes a name through Unicode NFKC (so
full-width letters and the ideographic space read as ASCII), splits it at anything that
is not a letter, digit or combining mark (`_ - . space`, but also `/`, `:`, a zero-width space),
at camelCase and PascalCase humps (`DNASequence` -> `DNA Sequence`), between letters and digits
and between scripts, and case-folds each word. `normalise` joins the words with `_`.

A key names prohibited information when:
  - a run of its words, read together, spells a prohibited name (or its plural in -s):
    `blood_type`, `bloodType`, `BLOODTYPE`, `patient-blood-types`, `bl_ood_type` all spell
    `bloodtype`. Whole words only, so `religious_holiday_closure`, `general`, `bloodstock` and
    `medical_insurance_arrears` are not refused: "religious", "medical", "health" and the like
    describe a registered religious venue or a social insurance contribution as readily as a
    person's belief or condition;
  - it is, as a whole, one of those ambiguous words (`WHOLE_NAME_ONLY`): a key that is just
    `religious`, `Medical`, `健康` or `信仰` says nothing else;
  - a Chinese name (a script written without spaces) appears anywhere in it: `患者血型`,
    `宗教信仰情况`, `血_型`. Chinese does not mark the adjective, so `宗教` (religion) is refused
    in `宗教活动场所` (a religious venue) where English `religious_venue` passes: such a field is
    better named for what it records (`场所类别`); only `信仰`, `医疗`, `健康`, `遗传` wait for
    the whole name.
Refusing too much shows at once (the provider's record comes back ART16_PROHIBITED naming the
path; `catalog load` names the item and field) and is mended by a clearer name; refusing too
little aggregates what the law forbids, unseen. So the list leans wide where a word has one
meaning (`fingerprint` is refused even for a certificate's: call that a digest or thumbprint).

The list lives here, in code, not in the catalog file: it is the regulation's, not the catalog
publisher's (Art 9), and a catalog file that left it out would turn the check off. A catalog may
add names (`prohibited_fields`), never remove one. Not handled: look-alike letters of other
scripts (a Cyrillic o in a Latin word); a provider signs what it sends (Art 14).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_PARAGRAPH_1 = (
    # religious beliefs
    "religion",
    "religious belief",
    "religious affiliation",
    "religious denomination",
    "religious faith",
    "宗教",
    "宗教信仰",
    # genetics
    "gene",
    "genetic",
    "genetic information",
    "genome",
    "genomic",
    "genotype",
    "dna",
    "hereditary disease",
    "基因",
    "遗传信息",
    "遗传病",
    "脱氧核糖核酸",
    # fingerprints, and the biometrics they stand for
    "fingerprint",
    "finger print",
    "biometric",
    "指纹",
    "生物识别",
    # blood types
    "blood type",
    "blood group",
    "血型",
    # illnesses
    "illness",
    "illnesses",
    "disease",
    "sickness",
    "diagnosis",
    "diagnoses",
    "health condition",
    "health status",
    "疾病",
    "病情",
    "诊断",
    "健康状况",
    # medical history
    "medical history",
    "medical histories",
    "medical record",
    "medical condition",
    "case history",
    "case histories",
    "clinical history",
    "anamnesis",
    "health record",
    "病史",
    "既往病史",
    "病历",
    "医疗记录",
)
_AMBIGUOUS = ("religious", "belief", "faith", "medical", "health", "信仰", "医疗", "健康", "遗传")

WHOLE_NAME_ONLY: frozenset[str]  # set below, once normalise exists
PROHIBITED: frozenset[str]  # every name above, normalised


def words(name: str) -> tuple[str, ...]:
    """The words of a field name, case-folded (see the module's docstring)."""
    if name.isascii():  # almost every key: the same words, many times faster
        return tuple(w.lower() for w in _ASCII_WORD.findall(name))
    normal = _normalise_unicode(name)
    return tuple(normal.split("_")) if normal else ()


def normalise(name: str) -> str:
    """A field name as its words joined by `_`: `bloodType`, `Blood-Type`, `blood type` in
    full-width letters are all `blood_type`. Idempotent."""
    return "_".join(words(name))


# An ASCII word: capitals not followed by a small letter (an acronym), a word with at most one
# capital before its small letters, or digits. What _split makes of ASCII, as one expression.
_ASCII_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _normalise_unicode(name: str) -> str:
    # Case folding can itself make a hump (some scripts fold small letters to capitals) and
    # NFKC after it can make a separator: split again until nothing changes (two rounds for
    # almost every name; the bound only guards against a pathological string).
    normal = name
    for _ in range(8):
        again = "_".join(unicodedata.normalize("NFKC", w.casefold()) for w in _split(normal))
        if again == normal:
            break
        normal = again
    return normal


def _kind(c: str) -> str:
    category = unicodedata.category(c)
    if category[0] == "M":
        return "mark"  # a combining mark belongs to the letter before it
    if category == "Lu":
        return "upper"
    if category in ("Ll", "Lt", "Lm"):
        return "lower"
    if category[0] == "N":
        return "digit"
    if category[0] == "L":
        return "other"  # Lo: CJK and the other scripts without case
    return "separator"


def _split(name: str) -> Iterator[str]:
    word = ""
    last = "separator"
    for c in unicodedata.normalize("NFKC", name):
        kind = _kind(c)
        if kind == "mark":
            word += c  # glued to the word before, or a word of its own
            continue
        if kind == "separator":
            if word:
                yield word
            word, last = "", kind
            continue
        cased = {last, kind} <= {"upper", "lower"}
        if word and not cased and kind != last:
            yield word  # letters and digits, or two scripts, meet
            word = ""
        elif word and last == "lower" and kind == "upper":
            yield word  # camelCase
            word = ""
        elif word and last == "upper" and kind == "lower" and len(word) > 1 and _all_upper(word):
            yield word[:-1]  # an acronym ends where a capitalised word starts: DNA|Sequence
            word = word[-1]
        word += c
        last = kind
    if word:
        yield word


def _all_upper(word: str) -> bool:
    return all(_kind(c) in ("upper", "mark") for c in word)


def _unspaced(joined: str) -> bool:
    """Written without spaces between words (Chinese): a name matches anywhere inside a key."""
    return any(_kind(c) == "other" for c in joined)


_KEPT_KEYS = 4096
_KEPT_KEY_LENGTH = 64


@dataclass(frozen=True, slots=True)
class _Matcher:
    # Each maps a spelling (words run together) to the normalised prohibited name it spells.
    runs: Mapping[str, str]  # spelled by a run of a key's words
    whole: Mapping[str, str]  # spelled by all of a key's words
    inside: Mapping[str, str]  # found anywhere in a key's letters
    longest: int
    # Payloads repeat their keys record after record: each short key's answer, kept (bounded:
    # cleared when full, so hostile keys cannot grow it).
    _answers: dict[str, str | None] = field(default_factory=dict, compare=False)

    def names(self, key: str) -> str | None:
        """The prohibited name `key` names (the longest, when it names several), or None."""
        try:
            return self._answers[key]
        except KeyError:
            pass
        answer = self._names(key)
        if len(key) <= _KEPT_KEY_LENGTH:
            if len(self._answers) >= _KEPT_KEYS:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def _names(self, key: str) -> str | None:
        found = words(key)
        joined = "".join(found)
        if joined in self.whole:
            return self.whole[joined]
        spelled = [] if joined.isascii() else [s for s in self.inside if s in joined]
        for start in range(len(found)):
            run = ""
            for word in found[start:]:
                run += word
                if len(run) > self.longest:
                    break
                if run in self.runs:
                    spelled.append(run)
        if not spelled:
            return None
        longest = max(spelled, key=len)
        return self.inside.get(longest) or self.runs[longest]


def _matcher(prohibited: frozenset[str]) -> _Matcher:
    """The matcher of the regulation's names and `prohibited`'s. A catalog's list already holds
    the regulation's (domain/catalog.py): then the same set, and its cached matcher, each time."""
    if prohibited <= PROHIBITED:
        return _build(PROHIBITED)
    return _build(prohibited if prohibited >= PROHIBITED else PROHIBITED | prohibited)


@functools.lru_cache(maxsize=8)
def _build(prohibited: frozenset[str]) -> _Matcher:
    runs: dict[str, str] = {}
    whole: dict[str, str] = {}
    inside: dict[str, str] = {}
    # Where two names are spelled alike (`fingerprint`, `finger print`), the one with fewer
    # words is reported, whatever the set's order.
    for name in sorted(prohibited, key=lambda n: (len(normalise(n)), n)):
        normal = normalise(name)
        joined = normal.replace("_", "")
        if not joined:
            continue
        if _unspaced(joined):
            (whole if normal in WHOLE_NAME_ONLY else inside).setdefault(joined, normal)
        else:
            table = whole if normal in WHOLE_NAME_ONLY else runs
            for spelling in (joined, joined + "s"):  # and the plural most names take
                table.setdefault(spelling, normal)
    return _Matcher(runs, whole, inside, max((len(r) for r in runs), default=0))


def names_prohibited(key: str, prohibited: frozenset[str] = frozenset()) -> str | None:
    """The prohibited name (normalised) that `key` names, or None. The regulation's names
    always count; `prohibited` adds to them."""
    return _matcher(prohibited).names(key)


def prohibited_paths(payload: Any, prohibited: frozenset[str], path: str = "$") -> list[str]:
    """Art 16 para 2 (1): every place in the payload whose key names prohibited information, as
    JSON paths (`$.notes.bloodType`, `$.annex[1].宗教信仰`), at any depth, in lists too."""
    matcher = _matcher(prohibited)
    found: list[str] = []

    def walk(value: Any, here: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                there = f"{here}.{key}"
                if matcher.names(str(key)) is not None:
                    found.append(there)
                walk(inner, there)
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{here}[{i}]")

    walk(payload, path)
    return found


# JSON Schema (2020-12, and the older drafts' spellings) keywords, by what they hold.
_NAMING_MAPS = ("properties", "patternProperties", "dependentSchemas")  # field name -> schema
_SCHEMA_MAPS = ("$defs", "definitions")  # definition name (not a field) -> schema
_SCHEMAS = (
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "items",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
)
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")


@dataclass(frozen=True, slots=True)
class Named:
    path: str  # where in the schema, as a JSON path
    field: str  # the field name as the schema spells it
    reads_as: str = ""  # the prohibited name it names, normalised


def prohibited_in_schema(schema: Any, prohibited: frozenset[str] = frozenset()) -> list[Named]:
    """Every field name a JSON Schema gives that names prohibited information: property names
    (at any depth, in every subschema), patternProperties keys, required and dependentRequired
    lists, dependencies, and the names a propertyNames schema allows (const, enum)."""
    matcher = _matcher(prohibited)
    found = ((n, matcher.names(n.field)) for n in _field_names(schema, "$"))
    return [Named(n.path, n.field, name) for n, name in found if name is not None]


def _field_names(schema: Any, path: str) -> Iterator[Named]:
    if not isinstance(schema, Mapping):
        return  # true, false, or not a schema
    for keyword in _NAMING_MAPS:
        for name, inner in _mapping(schema.get(keyword)):
            yield Named(f"{path}.{keyword}.{name}", name)
            yield from _field_names(inner, f"{path}.{keyword}.{name}")
    for keyword in _SCHEMA_MAPS:
        for name, inner in _mapping(schema.get(keyword)):
            yield from _field_names(inner, f"{path}.{keyword}.{name}")
    yield from _names_in_list(schema.get("required"), f"{path}.required")
    for keyword in ("dependentRequired", "dependencies"):
        for name, inner in _mapping(schema.get(keyword)):
            yield Named(f"{path}.{keyword}.{name}", name)
            yield from _names_in_list(inner, f"{path}.{keyword}.{name}")
            yield from _field_names(inner, f"{path}.{keyword}.{name}")  # draft 7's schema form
    names = schema.get("propertyNames")
    if isinstance(names, Mapping):
        for keyword in ("const", "enum"):
            values = names.get(keyword)
            listed = values if isinstance(values, list) else [values]
            yield from _names_in_list(listed, f"{path}.propertyNames.{keyword}")
    for keyword in _SCHEMAS:
        yield from _field_names(schema.get(keyword), f"{path}.{keyword}")
    for keyword in _SCHEMA_LISTS:
        inner_list = schema.get(keyword)
        if isinstance(inner_list, list):
            for i, inner in enumerate(inner_list):
                yield from _field_names(inner, f"{path}.{keyword}[{i}]")


def _mapping(value: Any) -> Iterable[tuple[str, Any]]:
    return ((str(k), v) for k, v in value.items()) if isinstance(value, Mapping) else ()


def _names_in_list(value: Any, path: str) -> Iterator[Named]:
    if isinstance(value, list):
        for i, name in enumerate(value):
            if isinstance(name, str):
                yield Named(f"{path}[{i}]", name)


WHOLE_NAME_ONLY = frozenset(normalise(n) for n in _AMBIGUOUS)
PROHIBITED = frozenset(normalise(n) for n in _PARAGRAPH_1) | WHOLE_NAME_ONLY
