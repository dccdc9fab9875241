"""The nodegroup (pure): the runbook's eksctl ClusterConfig -> an EKS CreateNodegroup request.

eksctl is not needed: the managed nodegroup is mapped onto the native API (shared/design.md section 3).
Keys we cannot honour are rejected rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.errors import ConfigError
from tasks.model import Nodegroup, Stack
from tasks.network import pick_node_role, private_subnets

_SUPPORTED_NG_KEYS = {
    "name",
    "instanceType",
    "instanceTypes",
    "desiredCapacity",
    "minSize",
    "maxSize",
    "volumeSize",
    "amiFamily",
    "labels",
    "taints",
    "privateNetworking",
    "subnets",
    "iam",
    "tags",
}
_AMI_FAMILY = {
    "AmazonLinux2023": "AL2023_x86_64_STANDARD",
    "AmazonLinux2": "AL2_x86_64",
    "Bottlerocket": "BOTTLEROCKET_x86_64",
}
_EFFECT = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


@dataclass(frozen=True)
class NodegroupPlan:
    """What to create; subnets and role are resolved from AWS by the task."""

    name: str
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    desired_size: int
    private_networking: bool
    disk_size_gib: int
    ami_type: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[tuple[str, str, str], ...] = ()
    subnets: tuple[str, ...] = ()
    node_role: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def plan_nodegroup(doc: Any, stack: Stack, source: str = "nodegroup file") -> NodegroupPlan:
    """Validate the eksctl file against the stack and map it; ConfigError names the key path."""
    ng = _the_nodegroup(doc, stack, source)
    key = _Keys(ng, source, "managedNodeGroups[0]")
    defaults: Nodegroup = stack.nodegroup
    name = _name(key)
    types = _instance_types(key)
    min_size, desired, max_size = _sizes(key)
    ami = _ami_type(key, defaults.ami_type)
    labels = dict(defaults.labels)
    labels.update({str(k): str(v) for k, v in (ng.get("labels") or {}).items()})
    taints = _taints(key, [(t.key, t.value, t.effect.value) for t in defaults.taints])
    iam = ng.get("iam") or {}
    role = str(iam["instanceRoleARN"]) if iam.get("instanceRoleARN") else defaults.node_role
    subnets = ng.get("subnets") or []
    private = ng.get("privateNetworking", False)
    if not isinstance(private, bool):
        raise ConfigError(f"{source}: {key.path}.privateNetworking must be true or false", observed=f"got {private!r}")
    return NodegroupPlan(
        name=name,
        instance_types=types,
        disk_size_gib=key.integer("volumeSize", defaults.disk_size_gib) or defaults.disk_size_gib,
        min_size=min_size,
        max_size=max_size,
        desired_size=desired,
        subnets=tuple(str(s) for s in subnets),
        private_networking=private,
        ami_type=ami,
        labels=labels,
        taints=taints,
        node_role=role,
        tags={str(k): str(v) for k, v in (ng.get("tags") or {}).items()},
    )


def _the_nodegroup(doc: Any, stack: Stack, source: str) -> dict[str, Any]:
    """The one managed nodegroup of an eksctl ClusterConfig for the stack's cluster, with only keys we honour."""
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != "ClusterConfig"
        or not str(doc.get("apiVersion", "")).startswith("eksctl.io/")
    ):
        shown = doc if isinstance(doc, dict) else {}
        raise ConfigError(
            f"{source}: not an eksctl ClusterConfig",
            observed=f"apiVersion={shown.get('apiVersion')!r}, kind={shown.get('kind')!r}",
            hint="use the runbook's nodegroup.yaml (apiVersion: eksctl.io/v1alpha5, kind: ClusterConfig)",
        )
    meta = doc.get("metadata") or {}
    if meta.get("name") != stack.cluster.name:
        raise ConfigError(
            f"{source}: metadata.name is {meta.get('name')!r} but the stack's cluster is {stack.cluster.name!r}",
            hint="make both name the same cluster",
        )
    if meta.get("region") != stack.cluster.region:
        raise ConfigError(
            f"{source}: metadata.region is {meta.get('region')!r} but the stack's region is {stack.cluster.region!r}",
            hint="make both name the same region",
        )
    groups = doc.get("managedNodeGroups")
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        raise ConfigError(
            f"{source}: managedNodeGroups must list exactly one nodegroup",
            observed=f"got {groups!r}"[:200],
            hint="one nodegroup per stack, as in the runbook",
        )
    ng: dict[str, Any] = groups[0]
    unknown = sorted(set(ng) - _SUPPORTED_NG_KEYS)
    if unknown:
        raise ConfigError(
            f"{source}: managedNodeGroups[0] has keys this flow cannot honour: {', '.join(unknown)}",
            hint=f"remove them, or use nodegroup_method=eksctl; supported: {', '.join(sorted(_SUPPORTED_NG_KEYS))}",
        )
    return ng


@dataclass(frozen=True)
class _Keys:
    """The nodegroup's keys, and where they are (for the errors)."""

    ng: dict[str, Any]
    source: str
    path: str

    def where(self, key: str) -> str:
        return f"{self.source}: {self.path}.{key}"

    def integer(self, key: str, default: int | None) -> int | None:
        v = self.ng.get(key, default)
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"{self.where(key)} must be a non-negative integer", observed=f"got {v!r}")
        return v


def _name(key: _Keys) -> str:
    name = key.ng.get("name")
    if (
        not isinstance(name, str)
        or not name
        or not name[0].isalnum()
        or not all(c.isalnum() or c in "-_" for c in name)
        or len(name) > 63
    ):
        raise ConfigError(f"{key.where('name')} must be 1-63 letters, digits, '-' or '_'", observed=f"got {name!r}")
    return name


def _instance_types(key: _Keys) -> tuple[str, ...]:
    ng = key.ng
    types = ng.get("instanceTypes") or ([ng["instanceType"]] if "instanceType" in ng else None)
    if not types or not all(isinstance(t, str) and t.replace(".", "").replace("-", "").isalnum() for t in types):
        raise ConfigError(
            f"{key.where('instanceType')} is missing or malformed",
            observed=f"got {types!r}",
            hint="e.g. instanceType: m5.xlarge",
        )
    return tuple(types)


def _sizes(key: _Keys) -> tuple[int, int, int]:
    """(minSize, desiredCapacity, maxSize); min and max default to desired."""
    desired = key.integer("desiredCapacity", None)
    min_size = key.integer("minSize", desired)
    max_size = key.integer("maxSize", desired)
    if desired is None or min_size is None or max_size is None:
        raise ConfigError(f"{key.where('desiredCapacity')} is required", hint="e.g. desiredCapacity: 2")
    if not (min_size <= desired <= max_size) or max_size < 1:
        raise ConfigError(
            f"{key.source}: {key.path}: need minSize <= desiredCapacity <= maxSize and maxSize >= 1",
            observed=f"min={min_size} desired={desired} max={max_size}",
        )
    return min_size, desired, max_size


def _ami_type(key: _Keys, default: str) -> str:
    if "amiFamily" not in key.ng:
        return default
    family = key.ng["amiFamily"]
    if family not in _AMI_FAMILY:
        raise ConfigError(
            f"{key.where('amiFamily')} {family!r} is not supported",
            hint=f"use one of {', '.join(_AMI_FAMILY)}",
        )
    return _AMI_FAMILY[family]


def _taints(key: _Keys, defaults: list[tuple[str, str, str]]) -> tuple[tuple[str, str, str], ...]:
    """The stack's default taints, then the file's (key, value, EKS effect)."""
    taints = list(defaults)
    for i, t in enumerate(key.ng.get("taints") or []):
        if not isinstance(t, dict) or t.get("effect") not in _EFFECT or not t.get("key"):
            raise ConfigError(
                f"{key.source}: {key.path}.taints[{i}] needs key and effect (NoSchedule|NoExecute|PreferNoSchedule)",
                observed=f"got {t!r}",
            )
        taints.append((str(t["key"]), str(t.get("value", "")), _EFFECT[t["effect"]]))
    return tuple(taints)


def create_nodegroup_request(plan: NodegroupPlan, cluster: str, subnets: list[str], role_arn: str) -> dict[str, Any]:
    """Keyword arguments for boto3 `eks.create_nodegroup`."""
    req: dict[str, Any] = {
        "clusterName": cluster,
        "nodegroupName": plan.name,
        "scalingConfig": {"minSize": plan.min_size, "maxSize": plan.max_size, "desiredSize": plan.desired_size},
        "subnets": list(subnets),
        "instanceTypes": list(plan.instance_types),
        "amiType": plan.ami_type,
        "diskSize": plan.disk_size_gib,
        "nodeRole": role_arn,
        "labels": dict(plan.labels),
        "taints": [{"key": k, "value": v, "effect": e} for k, v, e in plan.taints],
        "capacityType": "ON_DEMAND",
    }
    if plan.tags:
        req["tags"] = dict(plan.tags)
    return req


def nodegroup_spec_differences(plan: NodegroupPlan, live: dict[str, Any]) -> list[str]:
    """Differences between the plan and a described nodegroup (empty = same spec)."""
    diffs = []
    sc = live.get("scalingConfig") or {}
    for key, want in (("minSize", plan.min_size), ("maxSize", plan.max_size), ("desiredSize", plan.desired_size)):
        if sc.get(key) != want:
            diffs.append(f"scalingConfig.{key}: live {sc.get(key)!r}, wanted {want!r}")
    if list(live.get("instanceTypes") or []) != list(plan.instance_types):
        diffs.append(f"instanceTypes: live {live.get('instanceTypes')!r}, wanted {list(plan.instance_types)!r}")
    if live.get("amiType") and live.get("amiType") != plan.ami_type:
        diffs.append(f"amiType: live {live.get('amiType')!r}, wanted {plan.ami_type!r}")
    if live.get("diskSize") is not None and live.get("diskSize") != plan.disk_size_gib:
        diffs.append(f"diskSize: live {live.get('diskSize')!r}, wanted {plan.disk_size_gib!r}")
    live_labels = live.get("labels") or {}
    if any(live_labels.get(k) != v for k, v in plan.labels.items()):
        diffs.append(f"labels: live {live_labels!r}, wanted {plan.labels!r}")
    live_taints = {(t.get("key"), t.get("value", ""), t.get("effect")) for t in live.get("taints") or []}
    if live.get("taints") is not None and live_taints != set(plan.taints):
        diffs.append(f"taints: live {sorted(live_taints)!r}, wanted {sorted(plan.taints)!r}")
    return diffs


@dataclass(frozen=True)
class NodegroupFacts:
    """What the account says about where the nodegroup goes and which role its nodes take (read by the step)."""

    cluster_subnets: tuple[str, ...]  # the cluster's own subnets (DescribeCluster)
    described_subnets: tuple[dict[str, Any], ...] = ()  # DescribeSubnets of those
    route_tables: tuple[dict[str, Any], ...] = ()  # the VPC's route tables (privateNetworking only)
    role_arns: dict[str, str | None] = field(default_factory=dict)  # role name -> ARN, None = no such role
    role_names: tuple[str, ...] = ()  # every role in the account (automatic choice only)


@dataclass(frozen=True)
class NodegroupResolution:
    """The CreateNodegroup request, or every problem that prevents it."""

    request: dict[str, Any] | None
    problems: tuple[str, ...] = ()


def role_candidates(plan: NodegroupPlan, cluster: str, role_names: list[str]) -> list[str]:
    """The role names whose ARN must be looked up: the configured one, else the automatic candidates."""
    if plan.node_role:
        return [] if plan.node_role.startswith("arn:") else [plan.node_role]
    return pick_node_role(role_names, cluster)


def _subnets(plan: NodegroupPlan, facts: NodegroupFacts) -> tuple[list[str], list[str]]:
    if plan.subnets:
        return list(plan.subnets), []
    described = list(facts.described_subnets)
    if not plan.private_networking:
        return [s["SubnetId"] for s in described], []
    chosen = private_subnets(described, list(facts.route_tables))
    if chosen:
        return chosen, []
    return [], [
        f"nodegroup {plan.name}: privateNetworking is true but none of the cluster's subnets "
        f"({', '.join(facts.cluster_subnets) or 'none'}) is private (each routes 0.0.0.0/0 to an internet "
        "gateway). Fix: add private subnets to the cluster, or list subnets in the nodegroup file"
    ]


def _role(plan: NodegroupPlan, cluster: str, facts: NodegroupFacts) -> tuple[str | None, list[str]]:
    role = plan.node_role
    if role and role.startswith("arn:"):
        return role, []
    if role:
        arn = facts.role_arns.get(role)
        if arn is None:
            return None, [
                f"nodegroup {plan.name}: IAM role {role!r} does not exist. Fix: create it with "
                "AmazonEKSWorkerNodePolicy, AmazonEC2ContainerRegistryPullOnly and AmazonEKS_CNI_Policy"
            ]
        return arn, []
    candidates = pick_node_role(list(facts.role_names), cluster)
    if len(candidates) == 1 and facts.role_arns.get(candidates[0]):
        return facts.role_arns[candidates[0]], []
    found = "candidates: " + ", ".join(candidates) if candidates else "no role name contains the cluster name and node"
    return None, [
        f"nodegroup {plan.name}: cannot choose the node IAM role automatically ({found}). "
        "Fix: set nodegroup.node_role in the stack to the role's name or ARN"
    ]


def resolve_nodegroup(plan: NodegroupPlan, cluster: str, facts: NodegroupFacts) -> NodegroupResolution:
    """Subnets (the plan's, else the cluster's, private ones for privateNetworking) and the node role (the plan's
    name or ARN, else the one role named after the cluster and 'node') -> the CreateNodegroup request."""
    subnets, problems = _subnets(plan, facts)
    role, role_problems = _role(plan, cluster, facts)
    problems += role_problems
    if problems or role is None:
        return NodegroupResolution(None, tuple(problems))
    return NodegroupResolution(create_nodegroup_request(plan, cluster, subnets, role))
