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

class ConsentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_STATUS_UNSPECIFIED: _ClassVar[ConsentStatus]
    CONSENT_STATUS_ACTIVE: _ClassVar[ConsentStatus]
    CONSENT_STATUS_PAUSED: _ClassVar[ConsentStatus]
    CONSENT_STATUS_REVOKED: _ClassVar[ConsentStatus]
    CONSENT_STATUS_EXPIRED: _ClassVar[ConsentStatus]
    CONSENT_STATUS_EXHAUSTED: _ClassVar[ConsentStatus]

class ConsentRequestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_REQUEST_STATUS_UNSPECIFIED: _ClassVar[ConsentRequestStatus]
    CONSENT_REQUEST_STATUS_PENDING: _ClassVar[ConsentRequestStatus]
    CONSENT_REQUEST_STATUS_APPROVED: _ClassVar[ConsentRequestStatus]
    CONSENT_REQUEST_STATUS_REJECTED: _ClassVar[ConsentRequestStatus]
CONSENT_STATUS_UNSPECIFIED: ConsentStatus
CONSENT_STATUS_ACTIVE: ConsentStatus
CONSENT_STATUS_PAUSED: ConsentStatus
CONSENT_STATUS_REVOKED: ConsentStatus
CONSENT_STATUS_EXPIRED: ConsentStatus
CONSENT_STATUS_EXHAUSTED: ConsentStatus
CONSENT_REQUEST_STATUS_UNSPECIFIED: ConsentRequestStatus
CONSENT_REQUEST_STATUS_PENDING: ConsentRequestStatus
CONSENT_REQUEST_STATUS_APPROVED: ConsentRequestStatus
CONSENT_REQUEST_STATUS_REJECTED: ConsentRequestStatus

class ConsentTerms(_message.Message):
    __slots__ = ("grantee", "purpose_code", "purpose_text", "item_codes", "categories", "data_from", "data_to", "valid_from", "valid_until", "max_uses")
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_CODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_TEXT_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    DATA_FROM_FIELD_NUMBER: _ClassVar[int]
    DATA_TO_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    grantee: str
    purpose_code: str
    purpose_text: str
    item_codes: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    data_from: _timestamp_pb2.Timestamp
    data_to: _timestamp_pb2.Timestamp
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    max_uses: int
    def __init__(self, grantee: _Optional[str] = ..., purpose_code: _Optional[str] = ..., purpose_text: _Optional[str] = ..., item_codes: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., data_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_uses: _Optional[int] = ...) -> None: ...

class GrantConsentRequest(_message.Message):
    __slots__ = ("terms", "subject_signature", "subject_key_id", "guardian")
    TERMS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    GUARDIAN_FIELD_NUMBER: _ClassVar[int]
    terms: ConsentTerms
    subject_signature: bytes
    subject_key_id: str
    guardian: Guardian
    def __init__(self, terms: _Optional[_Union[ConsentTerms, _Mapping]] = ..., subject_signature: _Optional[bytes] = ..., subject_key_id: _Optional[str] = ..., guardian: _Optional[_Union[Guardian, _Mapping]] = ...) -> None: ...

class Guardian(_message.Message):
    __slots__ = ("subject_code", "signature", "key_id")
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    subject_code: str
    signature: bytes
    key_id: str
    def __init__(self, subject_code: _Optional[str] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class GrantConsentResponse(_message.Message):
    __slots__ = ("consent", "token")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    token: ConsentToken
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ..., token: _Optional[_Union[ConsentToken, _Mapping]] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("consent_id", "subject_code", "terms", "status", "uses", "granted_at", "status_changed_at", "evidence", "conditions")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    subject_code: str
    terms: ConsentTerms
    status: ConsentStatus
    uses: int
    granted_at: _timestamp_pb2.Timestamp
    status_changed_at: _timestamp_pb2.Timestamp
    evidence: str
    conditions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, consent_id: _Optional[str] = ..., subject_code: _Optional[str] = ..., terms: _Optional[_Union[ConsentTerms, _Mapping]] = ..., status: _Optional[_Union[ConsentStatus, str]] = ..., uses: _Optional[int] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., evidence: _Optional[str] = ..., conditions: _Optional[_Iterable[str]] = ...) -> None: ...

class ConsentRef(_message.Message):
    __slots__ = ("consent_id",)
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    def __init__(self, consent_id: _Optional[str] = ...) -> None: ...

class ConsentToken(_message.Message):
    __slots__ = ("consent_id", "token", "expires_at")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, consent_id: _Optional[str] = ..., token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListConsentsRequest(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[ConsentStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[ConsentStatus, str]]] = ...) -> None: ...

class ListConsentsResponse(_message.Message):
    __slots__ = ("consents",)
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    def __init__(self, consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ...) -> None: ...

class ListInquiriesRequest(_message.Message):
    __slots__ = ("consent_id", "limit")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    limit: int
    def __init__(self, consent_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class InquiryEntry(_message.Message):
    __slots__ = ("inquiry_id", "caller", "method", "purpose", "item_codes", "outcome", "reasons", "consent_id", "agreement_id", "at", "released_count", "leaf_index")
    INQUIRY_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_COUNT_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    inquiry_id: str
    caller: str
    method: str
    purpose: str
    item_codes: _containers.RepeatedScalarFieldContainer[str]
    outcome: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    consent_id: str
    agreement_id: str
    at: _timestamp_pb2.Timestamp
    released_count: int
    leaf_index: int
    def __init__(self, inquiry_id: _Optional[str] = ..., caller: _Optional[str] = ..., method: _Optional[str] = ..., purpose: _Optional[str] = ..., item_codes: _Optional[_Iterable[str]] = ..., outcome: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., consent_id: _Optional[str] = ..., agreement_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., released_count: _Optional[int] = ..., leaf_index: _Optional[int] = ...) -> None: ...

class ListInquiriesResponse(_message.Message):
    __slots__ = ("inquiries",)
    INQUIRIES_FIELD_NUMBER: _ClassVar[int]
    inquiries: _containers.RepeatedCompositeFieldContainer[InquiryEntry]
    def __init__(self, inquiries: _Optional[_Iterable[_Union[InquiryEntry, _Mapping]]] = ...) -> None: ...

class RequestConsentRequest(_message.Message):
    __slots__ = ("subject_code", "terms", "subject_kind")
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    subject_code: str
    terms: ConsentTerms
    subject_kind: _common_pb2.SubjectKind
    def __init__(self, subject_code: _Optional[str] = ..., terms: _Optional[_Union[ConsentTerms, _Mapping]] = ..., subject_kind: _Optional[_Union[_common_pb2.SubjectKind, str]] = ...) -> None: ...

class ConsentRequest(_message.Message):
    __slots__ = ("request_id", "subject_code", "terms", "status", "requested_at", "consent_id", "subject_kind")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CODE_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_code: str
    terms: ConsentTerms
    status: ConsentRequestStatus
    requested_at: _timestamp_pb2.Timestamp
    consent_id: str
    subject_kind: _common_pb2.SubjectKind
    def __init__(self, request_id: _Optional[str] = ..., subject_code: _Optional[str] = ..., terms: _Optional[_Union[ConsentTerms, _Mapping]] = ..., status: _Optional[_Union[ConsentRequestStatus, str]] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consent_id: _Optional[str] = ..., subject_kind: _Optional[_Union[_common_pb2.SubjectKind, str]] = ...) -> None: ...

class ConsentRequestRef(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class ListConsentRequestsRequest(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[ConsentRequestStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[ConsentRequestStatus, str]]] = ...) -> None: ...

class ListConsentRequestsResponse(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ConsentRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[ConsentRequest, _Mapping]]] = ...) -> None: ...

class ApproveConsentRequestRequest(_message.Message):
    __slots__ = ("request_id", "subject_signature", "subject_key_id", "guardian")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    GUARDIAN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_signature: bytes
    subject_key_id: str
    guardian: Guardian
    def __init__(self, request_id: _Optional[str] = ..., subject_signature: _Optional[bytes] = ..., subject_key_id: _Optional[str] = ..., guardian: _Optional[_Union[Guardian, _Mapping]] = ...) -> None: ...

class WatchConsentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConsentEvent(_message.Message):
    __slots__ = ("consent", "request")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    request: ConsentRequest
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ..., request: _Optional[_Union[ConsentRequest, _Mapping]] = ...) -> None: ...
