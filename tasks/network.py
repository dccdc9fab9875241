"""Which subnets of the cluster VPC are private (pure): eksctl's `privateNetworking: true` places nodes there.

A subnet is public when the route table that applies to it (its explicit association, else the VPC's main
table) sends 0.0.0.0/0 to an internet gateway. The `kubernetes.io/role/internal-elb` tag is only a hint.
"""

from __future__ import annotations

import re
from typing import Any


def route_table_for(subnet_id: str, route_tables: list[dict[str, Any]]) -> dict[str, Any] | None:
    for rt in route_tables:
        if any(a.get("SubnetId") == subnet_id for a in rt.get("Associations") or []):
            return rt
    return next((rt for rt in route_tables if any(a.get("Main") for a in rt.get("Associations") or [])), None)


def is_public(subnet_id: str, route_tables: list[dict[str, Any]]) -> bool:
    rt = route_table_for(subnet_id, route_tables)
    if rt is None:
        return False
    return any(
        r.get("DestinationCidrBlock") == "0.0.0.0/0" and str(r.get("GatewayId", "")).startswith("igw-")
        for r in rt.get("Routes") or []
    )


def private_subnets(subnets: list[dict[str, Any]], route_tables: list[dict[str, Any]]) -> list[str]:
    """Subnet ids without a route to an internet gateway, in a stable order (by availability zone, then id)."""
    chosen = [s for s in subnets if not is_public(s["SubnetId"], route_tables)]
    return [s["SubnetId"] for s in sorted(chosen, key=lambda s: (s.get("AvailabilityZone", ""), s["SubnetId"]))]


def pick_node_role(role_names: list[str], cluster: str) -> list[str]:
    """Candidate node roles: names containing the cluster name as a whole word and 'node' (eksctl and our docs
    name them so). Whole word: cluster `prod-1` must not pick `prod-10-node-role`."""
    whole = re.compile(rf"(?<![a-z0-9]){re.escape(cluster.lower())}(?![a-z0-9])")
    return sorted(n for n in role_names if whole.search(n.lower()) and "node" in n.lower())
