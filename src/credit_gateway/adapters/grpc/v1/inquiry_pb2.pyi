from credit_gateway.adapters.grpc.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryRequest(_message.Message):
    __slots__ = ("subject_code", "item_codes", "purpose", "agreement_id", "subject_kind")
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODES_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    subject_code: str
    item_codes: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    agreement_id: str
    subject_kind: _common_pb2.SubjectKind
    def __init__(self, subject_code: _Optional[str] = ..., item_codes: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., agreement_id: _Optional[str] = ..., subject_kind: _Optional[_Union[_common_pb2.SubjectKind, str]] = ...) -> None: ...

class AuthorizedQueryRequest(_message.Message):
    __slots__ = ("query", "consent_token")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query: QueryRequest
    consent_token: str
    def __init__(self, query: _Optional[_Union[QueryRequest, _Mapping]] = ..., consent_token: _Optional[str] = ...) -> None: ...

class OwnQueryRequest(_message.Message):
    __slots__ = ("item_codes",)
    ITEM_CODES_FIELD_NUMBER: _ClassVar[int]
    item_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_codes: _Optional[_Iterable[str]] = ...) -> None: ...
