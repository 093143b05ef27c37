import datetime

from credit_gateway.adapters.grpc.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCatalogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ItemDisclosure(_message.Message):
    __slots__ = ("subject_kind", "level")
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    subject_kind: _common_pb2.SubjectKind
    level: _common_pb2.DisclosureLevel
    def __init__(self, subject_kind: _Optional[_Union[_common_pb2.SubjectKind, str]] = ..., level: _Optional[_Union[_common_pb2.DisclosureLevel, str]] = ...) -> None: ...

class CatalogItem(_message.Message):
    __slots__ = ("code", "title", "category", "info_kind", "polarity", "disclosure", "disclosure_period_days", "written_consent", "disclosure_period_field", "disclosure_periods", "open_to_minors_by_state_provision")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    INFO_KIND_FIELD_NUMBER: _ClassVar[int]
    POLARITY_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_PERIOD_DAYS_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_CONSENT_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_PERIOD_FIELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_PERIODS_FIELD_NUMBER: _ClassVar[int]
    OPEN_TO_MINORS_BY_STATE_PROVISION_FIELD_NUMBER: _ClassVar[int]
    code: str
    title: str
    category: str
    info_kind: str
    polarity: str
    disclosure: _containers.RepeatedCompositeFieldContainer[ItemDisclosure]
    disclosure_period_days: int
    written_consent: bool
    disclosure_period_field: str
    disclosure_periods: _containers.RepeatedCompositeFieldContainer[DisclosurePeriod]
    open_to_minors_by_state_provision: str
    def __init__(self, code: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., info_kind: _Optional[str] = ..., polarity: _Optional[str] = ..., disclosure: _Optional[_Iterable[_Union[ItemDisclosure, _Mapping]]] = ..., disclosure_period_days: _Optional[int] = ..., written_consent: _Optional[bool] = ..., disclosure_period_field: _Optional[str] = ..., disclosure_periods: _Optional[_Iterable[_Union[DisclosurePeriod, _Mapping]]] = ..., open_to_minors_by_state_provision: _Optional[str] = ...) -> None: ...

class DisclosurePeriod(_message.Message):
    __slots__ = ("value", "shortest_days", "longest_days")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SHORTEST_DAYS_FIELD_NUMBER: _ClassVar[int]
    LONGEST_DAYS_FIELD_NUMBER: _ClassVar[int]
    value: str
    shortest_days: int
    longest_days: int
    def __init__(self, value: _Optional[str] = ..., shortest_days: _Optional[int] = ..., longest_days: _Optional[int] = ...) -> None: ...

class Purpose(_message.Message):
    __slots__ = ("code", "title", "max_validity_days", "max_data_range_days", "max_uses")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALIDITY_DAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_DATA_RANGE_DAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    code: str
    title: str
    max_validity_days: int
    max_data_range_days: int
    max_uses: int
    def __init__(self, code: _Optional[str] = ..., title: _Optional[str] = ..., max_validity_days: _Optional[int] = ..., max_data_range_days: _Optional[int] = ..., max_uses: _Optional[int] = ...) -> None: ...

class Catalog(_message.Message):
    __slots__ = ("version", "items", "purposes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    version: str
    items: _containers.RepeatedCompositeFieldContainer[CatalogItem]
    purposes: _containers.RepeatedCompositeFieldContainer[Purpose]
    def __init__(self, version: _Optional[str] = ..., items: _Optional[_Iterable[_Union[CatalogItem, _Mapping]]] = ..., purposes: _Optional[_Iterable[_Union[Purpose, _Mapping]]] = ...) -> None: ...

class ListAgreementsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgreementSummary(_message.Message):
    __slots__ = ("agreement_id", "operations", "item_codes", "categories", "purposes", "levels", "subject_kinds", "calls_per_day", "records_per_day", "valid_from", "valid_until", "status")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KINDS_FIELD_NUMBER: _ClassVar[int]
    CALLS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    RECORDS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    operations: _containers.RepeatedScalarFieldContainer[str]
    item_codes: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    purposes: _containers.RepeatedScalarFieldContainer[str]
    levels: _containers.RepeatedScalarFieldContainer[_common_pb2.DisclosureLevel]
    subject_kinds: _containers.RepeatedScalarFieldContainer[_common_pb2.SubjectKind]
    calls_per_day: int
    records_per_day: int
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    status: str
    def __init__(self, agreement_id: _Optional[str] = ..., operations: _Optional[_Iterable[str]] = ..., item_codes: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., purposes: _Optional[_Iterable[str]] = ..., levels: _Optional[_Iterable[_Union[_common_pb2.DisclosureLevel, str]]] = ..., subject_kinds: _Optional[_Iterable[_Union[_common_pb2.SubjectKind, str]]] = ..., calls_per_day: _Optional[int] = ..., records_per_day: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ...) -> None: ...

class ListAgreementsResponse(_message.Message):
    __slots__ = ("agreements",)
    AGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    agreements: _containers.RepeatedCompositeFieldContainer[AgreementSummary]
    def __init__(self, agreements: _Optional[_Iterable[_Union[AgreementSummary, _Mapping]]] = ...) -> None: ...
