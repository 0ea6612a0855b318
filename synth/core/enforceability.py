"""Which edges Calico data cannot turn into an exact rule, and which Felix setting would fix that.

Calico aggregates flow logs before synth sees them. At the default level for allowed flows
(`flowLogsFileAggregationKindForAllowed: 2`) addresses outside the cluster are folded into `pvt`/
`pub` buckets or a NetworkSet name, so the importer stores such a peer as kind `world` without an
IP; at level 3 the destination port is gone too. Goldmane and whisker-backend never carry IPs.
An edge built from such records has an empty world selector or no port: a rule written from it
would be either wrong (no address) or far too broad (every port), so generation reports it instead.
"""

from __future__ import annotations

from typing import Literal

from synth.core.aggregate import Edge

_PORT_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})


def _setting(edge: Edge) -> str:
    return "flowLogsFileAggregationKindForAllowed" if edge.allowed else "flowLogsFileAggregationKindForDenied"


def unenforceable_reason(edge: Edge) -> str | None:
    """Why no exact NetworkPolicy rule can be written for this edge, or None when one can.

    The answer names what is missing and how to get it: lower the Felix aggregation level in the
    `default` FelixConfiguration, wait for new flow logs, import again.
    """
    setting = _setting(edge)
    sides: tuple[tuple[Literal["src", "dst"], str], ...] = (("dst", "destination"), ("src", "source"))
    for side, role in sides:
        if edge.end(side).kind == "world" and not edge.end(side).selector:
            node = (
                " (if the source is the pod's own node, e.g. kubelet probes from a `pvt` address, NetworkPolicy "
                "allows it anyway)" if side == "src" else ""
            )
            return (
                f"the {role} is outside the cluster but its address is not in the flow records (Calico reports "
                "pub/pvt or a NetworkSet name instead of the IP when flows are aggregated at level 2 or 3; "
                "Goldmane and Whisker never carry IPs), so no ipBlock can be written and default-deny will "
                f"block this traffic{node}; set {setting} to 1 (or 0) in the default FelixConfiguration, then "
                "import Calico Enterprise flows.log or Elasticsearch records"
            )
    if edge.protocol in _PORT_PROTOCOLS and edge.port is None:
        return (
            "the destination port is not in the flow records (Calico aggregation level 3 drops it), so a rule "
            f"would have to open every port; set {setting} to 2 or lower in the default FelixConfiguration, "
            "then import new flow logs"
        )
    return None
