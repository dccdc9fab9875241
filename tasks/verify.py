"""The verification report (pure): the runbook's "expected output" as checks with expected and observed values,
rendered as a markdown table for the Prefect UI and as structured data for the API and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tasks import markdown as md
from tasks import readiness
from tasks.model import Release, Stack, Workload
from tasks.names import CILIUM_CONFIG_MAP, DEPLOYED


@dataclass(frozen=True)
class Check:
    name: str
    expected: str
    observed: str
    ok: bool


@dataclass
class Observed:
    """What the verifier read from the cluster (filled by the task)."""

    nodes: list[dict[str, Any]]
    workloads: dict[tuple[str, str], readiness.Verdict]  # (release, role) -> verdict
    agent_pods: dict[str, list[dict[str, Any]]]  # release -> pods of its per-node workloads' agent
    service_monitors: dict[str, list[str] | None]  # namespace -> names (None = CRD missing)
    kube_system_daemonsets: list[str]
    releases: dict[str, dict[str, Any]]  # release -> {"status":..., "version":...}
    # (release, role) -> spec.replicas the release renders (`helm get manifest`), for the replicated workloads
    expected_replicas: dict[tuple[str, str], int] = field(default_factory=dict)
    cilium_config: dict[str, Any] | None = None  # data of the Cilium release's ConfigMap (None = it does not exist)


def _running_ready(p: dict[str, Any]) -> bool:
    st = p.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
    )


ROLE_TITLES = {
    "agent": "agent pods",
    "envoy": "Envoy",
    "operator": "operator",
    "relay": "Hubble Relay",
    "timescape": "Hubble Timescape",
    "certs": "Hubble certificate Job",
    "dnsproxy": "DNS proxy",
}


def cilium_config_map(stack: Stack) -> tuple[str, str]:
    """(namespace, name) of the ConfigMap the Cilium agents read their cluster identity from."""
    _, rel = stack.cilium
    return rel.namespace, rel.config_map or CILIUM_CONFIG_MAP


def cluster_identity_differences(stack: Stack, data: dict[str, Any] | None) -> list[str]:
    """cilium-config's `cluster-name` / `cluster-id` against the stack's, as `key: live X -> desired Y` lines."""
    ns, name = cilium_config_map(stack)
    if data is None:
        return [f"ConfigMap {ns}/{name}: live missing -> desired present"]
    want = {"cluster-name": stack.cluster.cilium_cluster_name, "cluster-id": str(stack.cluster.id)}
    return [
        f"{name} {key}: live {data.get(key)!r} -> desired {value!r}"
        for key, value in want.items()
        if str(data.get(key)) != value
    ]


def cluster_identity_check(stack: Stack, data: dict[str, Any] | None) -> Check:
    ns, name = cilium_config_map(stack)
    diffs = cluster_identity_differences(stack, data)
    observed = (
        "missing"
        if data is None
        else f"cluster-name {data.get('cluster-name')!r}, cluster-id {data.get('cluster-id')!r}"
    )
    return Check(
        f"{stack.cilium[0]}: cluster identity (ConfigMap {ns}/{name})",
        f"cluster-name {stack.cluster.cilium_cluster_name!r}, cluster-id '{stack.cluster.id}'",
        observed,
        not diffs,
    )


def build_checks(stack: Stack, expected_nodes: int, obs: Observed) -> list[Check]:
    """Every check of the report, in the order it shows them."""
    ready_nodes = [n for n in obs.nodes if readiness.node_ready(n)]
    checks = [
        Check(
            "nodes Ready",
            f"{expected_nodes} Ready",
            f"{len(ready_nodes)} Ready of {len(obs.nodes)}",
            len(ready_nodes) >= expected_nodes,
        )
    ]
    node_names = {n["metadata"]["name"] for n in ready_nodes}
    for rname, rel in stack.releases.items():
        if rel.enabled:
            checks += _release_checks(rname, rel, obs, node_names)
    if stack.cilium[1].enabled:
        checks.append(cluster_identity_check(stack, obs.cilium_config))
    conflicting = [d for d in obs.kube_system_daemonsets if d in ("aws-node", "kube-proxy")]
    checks.append(Check("no aws-node / kube-proxy", "absent", ", ".join(conflicting) or "absent", not conflicting))
    return checks


def _release_checks(rname: str, rel: Release, obs: Observed, node_names: set[str]) -> list[Check]:
    """The release deployed at its chart version, each of its workloads, its ServiceMonitors."""
    state = obs.releases.get(rname) or {}
    checks = [
        Check(
            f"{rname}: release",
            f"deployed, chart {rel.version}",
            f"{state.get('status', 'not installed')}, chart {state.get('version', '-')}",
            state.get("status") == DEPLOYED and str(state.get("version", "")).lstrip("v") == rel.version.lstrip("v"),
        )
    ]
    for w in rel.workloads:
        checks += _workload_checks(rname, w, obs, node_names)
    if rel.service_monitors:
        present = obs.service_monitors.get(rel.namespace)
        missing = sorted(set(rel.service_monitors) - set(present or []))
        checks.append(
            Check(
                f"{rname}: ServiceMonitors",
                ", ".join(rel.service_monitors),
                "CRD missing"
                if present is None
                else ("all present" if not missing else f"missing {', '.join(missing)}"),
                present is not None and not missing,
            )
        )
    return checks


_EXPECTED = {
    "DaemonSet": "rolled out on every node",
    "Deployment": "all replicas available",
    "Job": "complete",
    "StatefulSet": "all replicas ready",
}


def _workload_checks(rname: str, w: Workload, obs: Observed, node_names: set[str]) -> list[Check]:
    """The workload's rollout; for a per-node DaemonSet also one Running pod on every Ready node."""
    v = obs.workloads.get((rname, w.role))
    title = f"{rname}: {ROLE_TITLES.get(w.role, w.role)} ({w.kind.value} {w.name})"
    expected = _EXPECTED[w.kind.value]
    rendered = obs.expected_replicas.get((rname, w.role))
    if rendered is not None and w.kind.value in ("Deployment", "StatefulSet"):
        expected = f"{expected} ({rendered} rendered)"
    checks = [Check(title, expected, v.summary if v else "not checked", bool(v and v.ready))]
    if w.per_node and w.kind.value == "DaemonSet":
        pods = [p for p in obs.agent_pods.get(f"{rname}/{w.role}", []) if _running_ready(p)]
        per_node = {p["spec"].get("nodeName") for p in pods}
        one_each = node_names <= per_node and len(pods) == len(per_node)
        checks.append(
            Check(
                f"{rname}: one {w.name} pod Running per node",
                f"{len(node_names)} (one per Ready node)",
                f"{len(pods)} Running on {len(per_node & node_names)} of {len(node_names)} nodes",
                one_each and bool(node_names),
            )
        )
    return checks


def markdown(title: str, checks: list[Check], extra: list[str] | None = None) -> str:
    ok = all(c.ok for c in checks)
    lead = f"**{'All checks passed' if ok else 'Some checks failed'}** ({sum(c.ok for c in checks)}/{len(checks)})"
    rows = [("✅" if c.ok else "❌", c.name, c.expected, c.observed) for c in checks]
    lines = md.report(title, lead, ("", "check", "expected", "observed"), rows)
    if extra:
        lines += ["", *extra]
    return "\n".join(lines)


def text_table(checks: list[Check]) -> str:
    w1 = max(len(c.name) for c in checks)
    w2 = max(len(c.expected) for c in checks)
    rows = [f"{'':4} {'CHECK':<{w1}}  {'EXPECTED':<{w2}}  OBSERVED"]
    rows += [f"{'ok' if c.ok else 'FAIL':<4} {c.name:<{w1}}  {c.expected:<{w2}}  {c.observed}" for c in checks]
    return "\n".join(rows)


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
