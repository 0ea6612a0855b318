"""Hubble's enums as `flow.proto` (Cilium v1.19.4) numbers them, and the FLOW_SCHEMA value each is stored as.

protojson prints an enum by name, or by number when the producer does not know the name (some
producers print numbers throughout), and the gRPC API carries numbers. Every table here answers
for the name and the number alike, so a value is stored the same whichever way it came. The file
importer (both paths) and the gRPC decoder look enums up only here; a test compares these tables
with the compiled proto, so new stubs with new values cannot slip past them. The tables are plain
data: importing them costs no protobuf import.
"""

from __future__ import annotations

from collections.abc import Iterable

from synth.sources.columns import DIRECTION_INDEX, PROTOCOL_INDEX, VERDICT_INDEX

# Verdict: number → (name, stored verdict). TRACED and TRANSLATED are observation points, not
# decisions: they prove nothing either way.
VERDICTS: dict[int, tuple[str, str]] = {
    0: ("VERDICT_UNKNOWN", "unknown"),
    1: ("FORWARDED", "forwarded"),
    2: ("DROPPED", "dropped"),
    3: ("ERROR", "error"),
    4: ("AUDIT", "audit"),
    5: ("REDIRECTED", "redirected"),
    6: ("TRACED", "unknown"),
    7: ("TRANSLATED", "unknown"),
}
# TrafficDirection: number → (name, stored direction).
TRAFFIC_DIRECTIONS: dict[int, tuple[str, str]] = {
    0: ("TRAFFIC_DIRECTION_UNKNOWN", "unknown"),
    1: ("INGRESS", "ingress"),
    2: ("EGRESS", "egress"),
}
# DropReason: number → name (stored by name; an unknown number is stored as its digits). 0 is
# DROP_REASON_UNKNOWN, which is no reason at all. 159 is unused upstream.
DROP_REASONS: dict[int, str] = {
    0: "DROP_REASON_UNKNOWN", 130: "INVALID_SOURCE_MAC", 131: "INVALID_DESTINATION_MAC", 132: "INVALID_SOURCE_IP",
    133: "POLICY_DENIED", 134: "INVALID_PACKET_DROPPED", 135: "CT_TRUNCATED_OR_INVALID_HEADER",
    136: "CT_MISSING_TCP_ACK_FLAG", 137: "CT_UNKNOWN_L4_PROTOCOL", 138: "CT_CANNOT_CREATE_ENTRY_FROM_PACKET",
    139: "UNSUPPORTED_L3_PROTOCOL", 140: "MISSED_TAIL_CALL", 141: "ERROR_WRITING_TO_PACKET",
    142: "UNKNOWN_L4_PROTOCOL", 143: "UNKNOWN_ICMPV4_CODE", 144: "UNKNOWN_ICMPV4_TYPE", 145: "UNKNOWN_ICMPV6_CODE",
    146: "UNKNOWN_ICMPV6_TYPE", 147: "ERROR_RETRIEVING_TUNNEL_KEY", 148: "ERROR_RETRIEVING_TUNNEL_OPTIONS",
    149: "INVALID_GENEVE_OPTION", 150: "UNKNOWN_L3_TARGET_ADDRESS", 151: "STALE_OR_UNROUTABLE_IP",
    152: "NO_MATCHING_LOCAL_CONTAINER_FOUND", 153: "ERROR_WHILE_CORRECTING_L3_CHECKSUM",
    154: "ERROR_WHILE_CORRECTING_L4_CHECKSUM", 155: "CT_MAP_INSERTION_FAILED", 156: "INVALID_IPV6_EXTENSION_HEADER",
    157: "IP_FRAGMENTATION_NOT_SUPPORTED", 158: "SERVICE_BACKEND_NOT_FOUND",
    160: "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT", 161: "FAILED_TO_INSERT_INTO_PROXYMAP",
    162: "REACHED_EDT_RATE_LIMITING_DROP_HORIZON", 163: "UNKNOWN_CONNECTION_TRACKING_STATE",
    164: "LOCAL_HOST_IS_UNREACHABLE", 165: "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION",
    166: "UNSUPPORTED_L2_PROTOCOL", 167: "NO_MAPPING_FOR_NAT_MASQUERADE",
    168: "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE", 169: "FIB_LOOKUP_FAILED",
    170: "ENCAPSULATION_TRAFFIC_IS_PROHIBITED", 171: "INVALID_IDENTITY", 172: "UNKNOWN_SENDER",
    173: "NAT_NOT_NEEDED", 174: "IS_A_CLUSTERIP", 175: "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND",
    176: "FORBIDDEN_ICMPV6_MESSAGE", 177: "DENIED_BY_LB_SRC_RANGE_CHECK", 178: "SOCKET_LOOKUP_FAILED",
    179: "SOCKET_ASSIGN_FAILED", 180: "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL", 181: "POLICY_DENY",
    182: "VLAN_FILTERED", 183: "INVALID_VNI", 184: "INVALID_TC_BUFFER", 185: "NO_SID", 186: "MISSING_SRV6_STATE",
    187: "NAT46", 188: "NAT64", 189: "AUTH_REQUIRED", 190: "CT_NO_MAP_FOUND", 191: "SNAT_NO_MAP_FOUND",
    192: "INVALID_CLUSTER_ID", 193: "UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP", 194: "NO_EGRESS_GATEWAY",
    195: "UNENCRYPTED_TRAFFIC", 196: "TTL_EXCEEDED", 197: "NO_NODE_ID", 198: "DROP_RATE_LIMITED",
    199: "IGMP_HANDLED", 200: "IGMP_SUBSCRIBED", 201: "MULTICAST_HANDLED", 202: "DROP_HOST_NOT_READY",
    203: "DROP_EP_NOT_READY", 204: "DROP_NO_EGRESS_IP", 205: "DROP_PUNT_PROXY",
}
# FlowType SOCK (socket-LB translation events: no packet, no edge) and L7FlowType RESPONSE, by name or number.
SOCK_FLOW_TYPES = ("SOCK", 3)
L7_RESPONSES = ("RESPONSE", 2)
# Layer4 oneof members that are stored as a protocol, and those that carry ports.
L4_PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMPv4", "ICMPv6")
PORTED_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})


class EnumRows(dict[object, int]):
    """Enum name or number → FLOW_SCHEMA dictionary row; anything else (absent, unknown) → the unknown row."""

    __slots__ = ("unknown",)

    def __init__(self, pairs: Iterable[tuple[object, int]], unknown: int) -> None:
        super().__init__(pairs)
        self.unknown = unknown

    def __missing__(self, key: object) -> int:
        return self.unknown


class DropReasonNames(dict[object, str | None]):
    """drop_reason_desc (name or number; absent or 0: None) → the stored reason: the DropReason name.

    DROP_REASON_UNKNOWN is no reason; a name this table does not know is kept as it is, an unknown
    number as its digits (which is how protojson prints a value newer than the producer's stubs).
    """

    def __init__(self) -> None:
        super().__init__({None: None, "": None, 0: None, "DROP_REASON_UNKNOWN": None})
        for number, name in DROP_REASONS.items():
            if number:
                self[number] = self[name] = name

    def __missing__(self, key: object) -> str | None:
        return key if isinstance(key, str) else str(key)


def _rows(table: dict[int, tuple[str, str]], index: dict[str, int]) -> EnumRows:
    pairs = [(key, index[stored]) for number, (name, stored) in table.items() for key in (number, name)]
    return EnumRows(pairs, index["unknown"])


VERDICT_ROWS = _rows(VERDICTS, VERDICT_INDEX)
DIRECTION_ROWS = _rows(TRAFFIC_DIRECTIONS, DIRECTION_INDEX)
PROTOCOL_ROWS = EnumRows(((name, PROTOCOL_INDEX[name]) for name in L4_PROTOCOLS), PROTOCOL_INDEX["unknown"])
DROPPED_ROW = VERDICT_INDEX["dropped"]
DROP_REASON_NAMES = DropReasonNames()
