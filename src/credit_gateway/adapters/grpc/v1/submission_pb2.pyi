import datetime

from credit_gateway.adapters.grpc.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmittedRecord(_message.Message):
    __slots__ = ("provider_record_id", "item_code", "subject_code", "payload_json", "occurred_at", "signature", "key_id", "subject_kind", "notice")
    PROVIDER_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    provider_record_id: str
    item_code: str
    subject_code: str
    payload_json: bytes
    occurred_at: _timestamp_pb2.Timestamp
    signature: bytes
    key_id: str
    subject_kind: _common_pb2.SubjectKind
    notice: WrittenNotice
    def __init__(self, provider_record_id: _Optional[str] = ..., item_code: _Optional[str] = ..., subject_code: _Optional[str] = ..., payload_json: _Optional[bytes] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., subject_kind: _Optional[_Union[_common_pb2.SubjectKind, str]] = ..., notice: _Optional[_Union[WrittenNotice, _Mapping]] = ...) -> None: ...

class WrittenNotice(_message.Message):
    __slots__ = ("number", "delivered_at")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    number: str
    delivered_at: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[str] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Violation(_message.Message):
    __slots__ = ("reason", "field", "description")
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    reason: str
    field: str
    description: str
    def __init__(self, reason: _Optional[str] = ..., field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class RecordResult(_message.Message):
    __slots__ = ("provider_record_id", "outcome", "record_id", "violations", "index")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[RecordResult.Outcome]
        OUTCOME_ACCEPTED: _ClassVar[RecordResult.Outcome]
        OUTCOME_DUPLICATE: _ClassVar[RecordResult.Outcome]
        OUTCOME_REJECTED: _ClassVar[RecordResult.Outcome]
    OUTCOME_UNSPECIFIED: RecordResult.Outcome
    OUTCOME_ACCEPTED: RecordResult.Outcome
    OUTCOME_DUPLICATE: RecordResult.Outcome
    OUTCOME_REJECTED: RecordResult.Outcome
    PROVIDER_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    provider_record_id: str
    outcome: RecordResult.Outcome
    record_id: str
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    index: int
    def __init__(self, provider_record_id: _Optional[str] = ..., outcome: _Optional[_Union[RecordResult.Outcome, str]] = ..., record_id: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ..., index: _Optional[int] = ...) -> None: ...

class SubmissionResult(_message.Message):
    __slots__ = ("results", "accepted", "duplicates", "rejected")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordResult]
    accepted: int
    duplicates: int
    rejected: int
    def __init__(self, results: _Optional[_Iterable[_Union[RecordResult, _Mapping]]] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...
