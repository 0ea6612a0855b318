import datetime

from synth._proto.flow import flow_pb2 as _flow_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from synth._proto.relay import relay_pb2 as _relay_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Batch(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[Response]
    def __init__(self, responses: _Optional[_Iterable[_Union[Response, _Mapping]]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("flow", "node_status", "lost_events", "node_name", "time")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    NODE_STATUS_FIELD_NUMBER: _ClassVar[int]
    LOST_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    node_status: _relay_pb2.NodeStatusEvent
    lost_events: _flow_pb2.LostEvent
    node_name: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., node_status: _Optional[_Union[_relay_pb2.NodeStatusEvent, _Mapping]] = ..., lost_events: _Optional[_Union[_flow_pb2.LostEvent, _Mapping]] = ..., node_name: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("time", "uuid", "verdict", "drop_reason", "IP", "l4", "source", "destination", "Type", "node_name", "destination_names", "l7", "reply", "destination_service", "traffic_direction", "drop_reason_desc", "is_reply", "egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by", "aggregate")
    TIME_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    L4_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_NAMES_FIELD_NUMBER: _ClassVar[int]
    L7_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_SERVICE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_DESC_FIELD_NUMBER: _ClassVar[int]
    IS_REPLY_FIELD_NUMBER: _ClassVar[int]
    EGRESS_ALLOWED_BY_FIELD_NUMBER: _ClassVar[int]
    INGRESS_ALLOWED_BY_FIELD_NUMBER: _ClassVar[int]
    EGRESS_DENIED_BY_FIELD_NUMBER: _ClassVar[int]
    INGRESS_DENIED_BY_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    uuid: str
    verdict: int
    drop_reason: int
    IP: bytes
    l4: bytes
    source: bytes
    destination: bytes
    Type: int
    node_name: str
    destination_names: _containers.RepeatedScalarFieldContainer[str]
    l7: bytes
    reply: bool
    destination_service: bytes
    traffic_direction: int
    drop_reason_desc: int
    is_reply: _wrappers_pb2.BoolValue
    egress_allowed_by: _containers.RepeatedScalarFieldContainer[bytes]
    ingress_allowed_by: _containers.RepeatedScalarFieldContainer[bytes]
    egress_denied_by: _containers.RepeatedScalarFieldContainer[bytes]
    ingress_denied_by: _containers.RepeatedScalarFieldContainer[bytes]
    aggregate: bytes
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uuid: _Optional[str] = ..., verdict: _Optional[int] = ..., drop_reason: _Optional[int] = ..., IP: _Optional[bytes] = ..., l4: _Optional[bytes] = ..., source: _Optional[bytes] = ..., destination: _Optional[bytes] = ..., Type: _Optional[int] = ..., node_name: _Optional[str] = ..., destination_names: _Optional[_Iterable[str]] = ..., l7: _Optional[bytes] = ..., reply: _Optional[bool] = ..., destination_service: _Optional[bytes] = ..., traffic_direction: _Optional[int] = ..., drop_reason_desc: _Optional[int] = ..., is_reply: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., egress_allowed_by: _Optional[_Iterable[bytes]] = ..., ingress_allowed_by: _Optional[_Iterable[bytes]] = ..., egress_denied_by: _Optional[_Iterable[bytes]] = ..., ingress_denied_by: _Optional[_Iterable[bytes]] = ..., aggregate: _Optional[bytes] = ...) -> None: ...

class Endpoints(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Endpoint]
    def __init__(self, items: _Optional[_Iterable[_Union[_flow_pb2.Endpoint, _Mapping]]] = ...) -> None: ...

class Layer4s(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Layer4]
    def __init__(self, items: _Optional[_Iterable[_Union[_flow_pb2.Layer4, _Mapping]]] = ...) -> None: ...

class Layer7s(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Layer7]
    def __init__(self, items: _Optional[_Iterable[_Union[_flow_pb2.Layer7, _Mapping]]] = ...) -> None: ...

class IPs(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_flow_pb2.IP]
    def __init__(self, items: _Optional[_Iterable[_Union[_flow_pb2.IP, _Mapping]]] = ...) -> None: ...

class Services(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Service]
    def __init__(self, items: _Optional[_Iterable[_Union[_flow_pb2.Service, _Mapping]]] = ...) -> None: ...

class Policies(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Policy]
    def __init__(self, items: _Optional[_Iterable[_Union[_flow_pb2.Policy, _Mapping]]] = ...) -> None: ...

class Aggregates(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Aggregate]
    def __init__(self, items: _Optional[_Iterable[_Union[_flow_pb2.Aggregate, _Mapping]]] = ...) -> None: ...
