import datetime

from credit_gateway.adapters.grpc.v1 import submission_pb2 as _submission_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileObjectionRequest(_message.Message):
    __slots__ = ("record_id", "reason", "evidence_reference")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    reason: str
    evidence_reference: str
    def __init__(self, record_id: _Optional[str] = ..., reason: _Optional[str] = ..., evidence_reference: _Optional[str] = ...) -> None: ...

class ObjectionRef(_message.Message):
    __slots__ = ("objection_id",)
    OBJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    objection_id: str
    def __init__(self, objection_id: _Optional[str] = ...) -> None: ...

class ListObjectionsRequest(_message.Message):
    __slots__ = ("states", "limit")
    STATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[Objection.State]
    limit: int
    def __init__(self, states: _Optional[_Iterable[_Union[Objection.State, str]]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListObjectionsResponse(_message.Message):
    __slots__ = ("objections",)
    OBJECTIONS_FIELD_NUMBER: _ClassVar[int]
    objections: _containers.RepeatedCompositeFieldContainer[Objection]
    def __init__(self, objections: _Optional[_Iterable[_Union[Objection, _Mapping]]] = ...) -> None: ...

class Objection(_message.Message):
    __slots__ = ("objection_id", "record_id", "item_code", "state", "reason", "evidence_reference", "filed_at", "due_at", "suspended_at", "answered_at", "answer", "replacement_record_id", "provider_record_id", "result")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Objection.State]
        STATE_PENDING: _ClassVar[Objection.State]
        STATE_SUSPENDED: _ClassVar[Objection.State]
        STATE_UPHELD: _ClassVar[Objection.State]
        STATE_REJECTED: _ClassVar[Objection.State]
    STATE_UNSPECIFIED: Objection.State
    STATE_PENDING: Objection.State
    STATE_SUSPENDED: Objection.State
    STATE_UPHELD: Objection.State
    STATE_REJECTED: Objection.State
    OBJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FILED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_AT_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    objection_id: str
    record_id: str
    item_code: str
    state: Objection.State
    reason: str
    evidence_reference: str
    filed_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    suspended_at: _timestamp_pb2.Timestamp
    answered_at: _timestamp_pb2.Timestamp
    answer: str
    replacement_record_id: str
    provider_record_id: str
    result: WrittenResult
    def __init__(self, objection_id: _Optional[str] = ..., record_id: _Optional[str] = ..., item_code: _Optional[str] = ..., state: _Optional[_Union[Objection.State, str]] = ..., reason: _Optional[str] = ..., evidence_reference: _Optional[str] = ..., filed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., answer: _Optional[str] = ..., replacement_record_id: _Optional[str] = ..., provider_record_id: _Optional[str] = ..., result: _Optional[_Union[WrittenResult, _Mapping]] = ...) -> None: ...

class WrittenResult(_message.Message):
    __slots__ = ("text", "audit_entry_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    audit_entry_id: str
    def __init__(self, text: _Optional[str] = ..., audit_entry_id: _Optional[str] = ...) -> None: ...

class AnswerObjectionRequest(_message.Message):
    __slots__ = ("objection_id", "upheld", "rejected")
    class Upheld(_message.Message):
        __slots__ = ("corrected", "reasons")
        CORRECTED_FIELD_NUMBER: _ClassVar[int]
        REASONS_FIELD_NUMBER: _ClassVar[int]
        corrected: _submission_pb2.SubmittedRecord
        reasons: str
        def __init__(self, corrected: _Optional[_Union[_submission_pb2.SubmittedRecord, _Mapping]] = ..., reasons: _Optional[str] = ...) -> None: ...
    class Rejected(_message.Message):
        __slots__ = ("reasons",)
        REASONS_FIELD_NUMBER: _ClassVar[int]
        reasons: str
        def __init__(self, reasons: _Optional[str] = ...) -> None: ...
    OBJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    UPHELD_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    objection_id: str
    upheld: AnswerObjectionRequest.Upheld
    rejected: AnswerObjectionRequest.Rejected
    def __init__(self, objection_id: _Optional[str] = ..., upheld: _Optional[_Union[AnswerObjectionRequest.Upheld, _Mapping]] = ..., rejected: _Optional[_Union[AnswerObjectionRequest.Rejected, _Mapping]] = ...) -> None: ...

class RestorationDecision(_message.Message):
    __slots__ = ("provider_record_id", "decision_number", "decided_at", "basis", "signature", "key_id")
    PROVIDER_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    provider_record_id: str
    decision_number: str
    decided_at: _timestamp_pb2.Timestamp
    basis: str
    signature: bytes
    key_id: str
    def __init__(self, provider_record_id: _Optional[str] = ..., decision_number: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., basis: _Optional[str] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class ApplyDeletionRequest(_message.Message):
    __slots__ = ("record_id",)
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    def __init__(self, record_id: _Optional[str] = ...) -> None: ...

class ArchivedRecord(_message.Message):
    __slots__ = ("record_id", "item_code", "archived_at", "archive_reason", "audit_entry_id")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_AT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_REASON_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    item_code: str
    archived_at: _timestamp_pb2.Timestamp
    archive_reason: str
    audit_entry_id: str
    def __init__(self, record_id: _Optional[str] = ..., item_code: _Optional[str] = ..., archived_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., archive_reason: _Optional[str] = ..., audit_entry_id: _Optional[str] = ...) -> None: ...
