import datetime

from credit_gateway.adapters.grpc.v1 import common_pb2 as _common_pb2
from credit_gateway.adapters.grpc.v1 import submission_pb2 as _submission_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushedRecord(_message.Message):
    __slots__ = ("record", "provider_code", "provider_jwks", "origin_record_id", "origin_signature", "origin_key_id")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_JWKS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    record: _submission_pb2.SubmittedRecord
    provider_code: str
    provider_jwks: bytes
    origin_record_id: str
    origin_signature: bytes
    origin_key_id: str
    def __init__(self, record: _Optional[_Union[_submission_pb2.SubmittedRecord, _Mapping]] = ..., provider_code: _Optional[str] = ..., provider_jwks: _Optional[bytes] = ..., origin_record_id: _Optional[str] = ..., origin_signature: _Optional[bytes] = ..., origin_key_id: _Optional[str] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("agreement_id", "purpose", "subjects", "item_codes")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODES_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    purpose: str
    subjects: _containers.RepeatedCompositeFieldContainer[SubjectRef]
    item_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agreement_id: _Optional[str] = ..., purpose: _Optional[str] = ..., subjects: _Optional[_Iterable[_Union[SubjectRef, _Mapping]]] = ..., item_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class SubjectRef(_message.Message):
    __slots__ = ("subject_code", "subject_kind")
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    subject_code: str
    subject_kind: _common_pb2.SubjectKind
    def __init__(self, subject_code: _Optional[str] = ..., subject_kind: _Optional[_Union[_common_pb2.SubjectKind, str]] = ...) -> None: ...

class PulledSubject(_message.Message):
    __slots__ = ("index", "subject_code", "inquiry_id", "records", "withheld", "refused_reason", "refused_message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    REFUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    REFUSED_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    subject_code: str
    inquiry_id: str
    records: _containers.RepeatedCompositeFieldContainer[_common_pb2.ReleasedRecord]
    withheld: _containers.RepeatedCompositeFieldContainer[_common_pb2.Withheld]
    refused_reason: str
    refused_message: str
    def __init__(self, index: _Optional[int] = ..., subject_code: _Optional[str] = ..., inquiry_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[_common_pb2.ReleasedRecord, _Mapping]]] = ..., withheld: _Optional[_Iterable[_Union[_common_pb2.Withheld, _Mapping]]] = ..., refused_reason: _Optional[str] = ..., refused_message: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("agreement_id", "cursor", "purpose")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    cursor: str
    purpose: str
    def __init__(self, agreement_id: _Optional[str] = ..., cursor: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class ChangeBatch(_message.Message):
    __slots__ = ("cursor", "changes", "inquiry_ids")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_IDS_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    changes: _containers.RepeatedCompositeFieldContainer[RecordChange]
    inquiry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cursor: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[RecordChange, _Mapping]]] = ..., inquiry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordChange(_message.Message):
    __slots__ = ("kind", "record_id", "item_code", "record", "subject_code", "replaces", "changed_at")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[RecordChange.Kind]
        KIND_NEW: _ClassVar[RecordChange.Kind]
        KIND_CORRECTED: _ClassVar[RecordChange.Kind]
        KIND_SUSPENDED: _ClassVar[RecordChange.Kind]
        KIND_RESTORED: _ClassVar[RecordChange.Kind]
        KIND_DELETED: _ClassVar[RecordChange.Kind]
        KIND_EXPIRED: _ClassVar[RecordChange.Kind]
    KIND_UNSPECIFIED: RecordChange.Kind
    KIND_NEW: RecordChange.Kind
    KIND_CORRECTED: RecordChange.Kind
    KIND_SUSPENDED: RecordChange.Kind
    KIND_RESTORED: RecordChange.Kind
    KIND_DELETED: RecordChange.Kind
    KIND_EXPIRED: RecordChange.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    REPLACES_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    kind: RecordChange.Kind
    record_id: str
    item_code: str
    record: _common_pb2.ReleasedRecord
    subject_code: str
    replaces: str
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[RecordChange.Kind, str]] = ..., record_id: _Optional[str] = ..., item_code: _Optional[str] = ..., record: _Optional[_Union[_common_pb2.ReleasedRecord, _Mapping]] = ..., subject_code: _Optional[str] = ..., replaces: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
