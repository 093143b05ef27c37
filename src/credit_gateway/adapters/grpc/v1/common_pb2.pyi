import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubjectKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBJECT_KIND_UNSPECIFIED: _ClassVar[SubjectKind]
    SUBJECT_KIND_NATURAL_PERSON: _ClassVar[SubjectKind]
    SUBJECT_KIND_LEGAL_PERSON: _ClassVar[SubjectKind]
    SUBJECT_KIND_OTHER_ORGANISATION: _ClassVar[SubjectKind]
    SUBJECT_KIND_INDIVIDUAL_BUSINESS: _ClassVar[SubjectKind]

class DisclosureLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISCLOSURE_LEVEL_UNSPECIFIED: _ClassVar[DisclosureLevel]
    DISCLOSURE_LEVEL_OPEN: _ClassVar[DisclosureLevel]
    DISCLOSURE_LEVEL_AUTHORIZED: _ClassVar[DisclosureLevel]
    DISCLOSURE_LEVEL_GOVERNMENT: _ClassVar[DisclosureLevel]
    DISCLOSURE_LEVEL_SELF: _ClassVar[DisclosureLevel]
SUBJECT_KIND_UNSPECIFIED: SubjectKind
SUBJECT_KIND_NATURAL_PERSON: SubjectKind
SUBJECT_KIND_LEGAL_PERSON: SubjectKind
SUBJECT_KIND_OTHER_ORGANISATION: SubjectKind
SUBJECT_KIND_INDIVIDUAL_BUSINESS: SubjectKind
DISCLOSURE_LEVEL_UNSPECIFIED: DisclosureLevel
DISCLOSURE_LEVEL_OPEN: DisclosureLevel
DISCLOSURE_LEVEL_AUTHORIZED: DisclosureLevel
DISCLOSURE_LEVEL_GOVERNMENT: DisclosureLevel
DISCLOSURE_LEVEL_SELF: DisclosureLevel

class ReleasedRecord(_message.Message):
    __slots__ = ("record_id", "item_code", "provider_code", "payload_json", "occurred_at", "labels")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    item_code: str
    provider_code: str
    payload_json: bytes
    occurred_at: _timestamp_pb2.Timestamp
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, record_id: _Optional[str] = ..., item_code: _Optional[str] = ..., provider_code: _Optional[str] = ..., payload_json: _Optional[bytes] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class Withheld(_message.Message):
    __slots__ = ("item_code", "reason", "count")
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    item_code: str
    reason: str
    count: int
    def __init__(self, item_code: _Optional[str] = ..., reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("inquiry_id", "records", "withheld", "conditions", "consent_id", "agreement_id")
    INQUIRY_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    inquiry_id: str
    records: _containers.RepeatedCompositeFieldContainer[ReleasedRecord]
    withheld: _containers.RepeatedCompositeFieldContainer[Withheld]
    conditions: _containers.RepeatedScalarFieldContainer[str]
    consent_id: str
    agreement_id: str
    def __init__(self, inquiry_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[ReleasedRecord, _Mapping]]] = ..., withheld: _Optional[_Iterable[_Union[Withheld, _Mapping]]] = ..., conditions: _Optional[_Iterable[str]] = ..., consent_id: _Optional[str] = ..., agreement_id: _Optional[str] = ...) -> None: ...
