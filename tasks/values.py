"""Values rendering (pure): the runbook's values files + the cluster endpoint + overrides -> helm values.

Also owns the endpoint normalisation (k8sServiceHost / k8sServicePort) and the cross-checks between values
and the stack that must fail before anything runs.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from tasks.errors import ConfigError
from tasks.merge import deep_merge
from tasks.model import Component, Stack

ENDPOINT_PLACEHOLDER = "<YOUR-EKS-API-SERVER-ENDPOINT>"
# Enterprise feature gates this project knows (the runbook approves these two). Isovalent's chart ignores an approval
# it does not know, so a misspelt gate silently leaves its feature off: refuse anything else. A gate that your
# Isovalent release documents and this list lacks belongs here.
KNOWN_FEATURE_GATES = ("DNSProxyHA", "HubbleTimescape")
# Cilium's cluster-id rule: 0 (no Cluster Mesh) or 1..maxConnectedClusters, which is 255 (default) or 511.
MAX_CONNECTED_CLUSTERS = (255, 511)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class Endpoint:
    """The API server as Cilium's kube-proxy replacement must reach it."""

    host: str
    port: int = 443


def normalise_endpoint(url: str) -> Endpoint:
    """`https://ABC.gr7.us-east-1.eks.amazonaws.com/` -> Endpoint('ABC.gr7...amazonaws.com', 443).

    Accepts a bare host too. Rejects anything that is not a host name or an IP address (with optional port).
    """
    raw = (url or "").strip()
    if not raw:
        raise ConfigError(
            "the API server endpoint is empty",
            hint="pass the cluster's endpoint, e.g. https://ABC.gr7.us-east-1.eks.amazonaws.com",
        )
    candidate = raw if "://" in raw else f"https://{raw}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as e:
        raise ConfigError(
            f"endpoint {raw!r} is not a URL or host name", observed=str(e), hint="give https://HOST[:PORT] or HOST"
        ) from None
    if parts.scheme != "https":
        raise ConfigError(
            f"endpoint {raw!r} uses scheme {parts.scheme!r}", hint="the EKS API server is reached over https://"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(
            f"endpoint {raw!r} has a path, query or credentials",
            hint="give only the scheme, host and optional port: https://HOST[:PORT]",
        )
    # urlsplit lower-cases .hostname; keep the endpoint's own spelling (EKS hosts are upper-case hex).
    netloc = parts.netloc
    host = (
        netloc[1 : netloc.index("]")]
        if netloc.startswith("[") and "]" in netloc
        else netloc.rsplit(":", 1)[0]
        if parts.port
        else netloc
    )
    if not _is_host(host):
        raise ConfigError(
            f"endpoint {raw!r} does not name a host",
            observed=f"host part {host!r}",
            hint="give a DNS name or an IP address",
        )
    return Endpoint(host=host, port=port or 443)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()


def _substitute(obj: Any, placeholder: str, value: str) -> Any:
    if isinstance(obj, dict):
        return {k: _substitute(v, placeholder, value) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, placeholder, value) for v in obj]
    if isinstance(obj, str) and placeholder in obj:
        return obj.replace(placeholder, value)
    return obj


def contains_placeholder(obj: Any) -> bool:
    if isinstance(obj, dict):
        return any(contains_placeholder(v) for v in obj.values())
    if isinstance(obj, list):
        return any(contains_placeholder(v) for v in obj)
    return isinstance(obj, str) and ENDPOINT_PLACEHOLDER in obj


def render_values(
    base: dict[str, Any],
    *,
    component: Component,
    endpoint: Endpoint | None,
    cluster_name: str | None = None,
    cluster_id: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Values for one release: the file's values, the endpoint substituted, then the user's overrides.

    With `endpoint=None` the placeholder is left in place (for `render` before the cluster exists).
    For Cilium, a non-default port in the endpoint sets `k8sServicePort`, and `cluster_name` / `cluster_id` (the
    stack's) set `cluster.name` / `cluster.id` last: the stack is where the cluster's identity is decided
    (`cluster_identity_findings` refuses values that say otherwise).
    """
    if not isinstance(base, dict):
        raise ConfigError("a values file must hold a mapping", observed=f"got {type(base).__name__}")
    values = base
    if endpoint is not None:
        values = _substitute(values, ENDPOINT_PLACEHOLDER, endpoint.host)
        if (
            component is Component.cilium
            and "k8sServiceHost" in values
            and (endpoint.port != 443 or "k8sServicePort" not in values)
        ):
            values = {**values, "k8sServicePort": endpoint.port}
    if overrides:
        if not isinstance(overrides, dict):
            raise ConfigError("values overrides must be a mapping", observed=f"got {type(overrides).__name__}")
        values = deep_merge(values, overrides)
    if component is Component.cilium and (cluster_name is not None or cluster_id is not None):
        cluster = values.get("cluster")
        identity = {k: v for k, v in (("name", cluster_name), ("id", cluster_id)) if v is not None}
        values = {**values, "cluster": {**(cluster if isinstance(cluster, dict) else {}), **identity}}
    return values


class Severity(StrEnum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True)
class Finding:
    """One result of a cross-check: where, what is wrong, and how to fix it."""

    severity: Severity
    path: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} -> {self.hint}"


def _get(values: dict[str, Any], dotted: str) -> Any:
    cur: Any = values
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def cluster_identity_findings(
    stack: Stack, release: str, values_file: str, base: dict[str, Any], overrides: dict[str, Any] | None
) -> list[Finding]:
    """Errors for a values file or overrides whose cluster.name / cluster.id disagree with the stack's.

    Cilium's identity comes from the stack (`cluster.name` or `cluster.cilium_name`, `cluster.id`); a values file
    or override may repeat it, never contradict it (a contradiction means one of the two places is wrong).
    """
    findings: list[Finding] = []
    want = {
        "name": (
            stack.cluster.cilium_cluster_name,
            "cluster.cilium_name" if stack.cluster.cilium_name else "cluster.name",
        ),
        "id": (stack.cluster.id, "cluster.id"),
    }
    for place, vals in ((f"values file {values_file}", base), (f"values_overrides.{release}", overrides or {})):
        cluster = vals.get("cluster")
        if cluster is None:
            continue
        if not isinstance(cluster, dict):
            findings.append(
                Finding(
                    Severity.error,
                    f"{release}.cluster",
                    f"{place} sets cluster to {cluster!r}, not a mapping",
                    "remove it: cluster.name and cluster.id come from the stack",
                )
            )
            continue
        for key, (expected, stack_key) in want.items():
            got = cluster.get(key)
            if got is not None and str(got).strip() != str(expected):
                findings.append(
                    Finding(
                        Severity.error,
                        f"{release}.cluster.{key}",
                        f"{place} sets cluster.{key} {got!r} but the stack's {stack_key} is {expected!r}",
                        f"Cilium's cluster {key} comes from the stack: remove cluster.{key} from {place} (or set it to "
                        f"{expected!r}), or change {stack_key} in the stack if {got!r} is the one you meant",
                    )
                )
    return findings


def _closest(name: str, known: tuple[str, ...]) -> str | None:
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def feature_gate_findings(path: str, gates: list[Any]) -> list[Finding]:
    """Errors for approved feature gates that do not exist, each with the closest known gate when there is one."""
    findings = []
    for i, gate in enumerate(gates):
        if isinstance(gate, str) and gate in KNOWN_FEATURE_GATES:
            continue
        closest = _closest(gate, KNOWN_FEATURE_GATES) if isinstance(gate, str) else None
        fix = (
            f"did you mean {closest!r}? Replace {gate!r} with it"
            if closest
            else f"remove {gate!r}; the gates known here are {', '.join(KNOWN_FEATURE_GATES)}"
        )
        findings.append(
            Finding(
                Severity.error,
                f"{path}[{i}]",
                f"unknown enterprise feature gate {gate!r}",
                fix + " (a gate your Isovalent release documents and this project lacks belongs in "
                "tasks/values.py KNOWN_FEATURE_GATES)",
            )
        )
    return findings


def cluster_id_findings(stack: Stack, cilium_name: str, cil: dict[str, Any]) -> list[Finding]:
    """Cilium's cluster-id rules, checked before helm (its chart fails some only at install, the agent the rest)."""
    findings = []
    cid = stack.cluster.id
    raw_max = _get(cil, "clustermesh.maxConnectedClusters")
    max_cc = 255 if raw_max is None else raw_max
    if max_cc not in MAX_CONNECTED_CLUSTERS or isinstance(max_cc, bool):
        findings.append(
            Finding(
                Severity.error,
                f"{cilium_name}.clustermesh.maxConnectedClusters",
                f"is {raw_max!r}; Cilium accepts only 255 or 511",
                "set it to 255 (the default) or 511",
            )
        )
    elif cid > max_cc:
        findings.append(
            Finding(
                Severity.error,
                "cluster.id",
                f"the stack's cluster.id {cid} is above {max_cc}, the highest id Cilium accepts with "
                f"clustermesh.maxConnectedClusters {max_cc}",
                "pick an id in 1..255 (0 outside a Cluster Mesh), or set clustermesh.maxConnectedClusters: 511 "
                f"in the {cilium_name} values (it halves the cluster-local identities) to allow up to 511",
            )
        )
    eni = (
        _truthy(_get(cil, "eni.enabled"))
        or _get(cil, "ipam.mode") == "eni"
        or _get(cil, "cni.chainingMode") == "aws-cni"
    )
    if (
        (128 <= cid <= 255 or 384 <= cid <= 511)
        and eni
        and not _truthy(_get(cil, "extraConfig.allow-unsafe-policy-skb-usage"))
    ):
        findings.append(
            Finding(
                Severity.error,
                "cluster.id",
                f"the stack's cluster.id {cid} is in 128-255 / 384-511, which Cilium's chart refuses in ENI "
                "mode (network policy drops, cilium/cilium#21330)",
                "pick an id in 1..127 (or 256..383 with clustermesh.maxConnectedClusters: 511)",
            )
        )
    return findings


def check_values(stack: Stack, rendered: dict[str, dict[str, Any]]) -> list[Finding]:
    """Cross-checks between the rendered values and the stack. Errors block the run; warnings are logged."""
    cilium_name, _ = stack.cilium
    cil = rendered.get(cilium_name, {})
    prefix = f"{cilium_name}."
    gates, findings = _approved_gates(prefix, cil)
    findings += feature_gate_findings(prefix + "enterprise.featureGate.approved", gates)
    findings += cluster_id_findings(stack, cilium_name, cil)
    findings += _timescape_findings(prefix, cil, gates)
    findings += _dnsproxy_findings(stack, prefix, cil, gates)
    findings += _service_host_findings(prefix, cil)
    findings += _masquerade_findings(prefix, cil)
    return findings


def _one(severity: Severity, path: str, problem: str, fix: str) -> list[Finding]:
    return [Finding(severity, path, problem, fix)]


def _approved_gates(prefix: str, cil: dict[str, Any]) -> tuple[list[Any], list[Finding]]:
    """The approved feature gates ([] when they are not a list, which is an error)."""
    gates = _get(cil, "enterprise.featureGate.approved") or []
    if isinstance(gates, list):
        return gates, []
    problem = f"must be a list of feature gate names, got {type(gates).__name__}"
    fix = "write it as a YAML list, e.g. [DNSProxyHA, HubbleTimescape]"
    return [], _one(Severity.error, prefix + "enterprise.featureGate.approved", problem, fix)


def _timescape_findings(prefix: str, cil: dict[str, Any], gates: list[Any]) -> list[Finding]:
    if not _truthy(_get(cil, "hubble.timescape.enabled")) or "HubbleTimescape" in gates:
        return []
    problem = "Hubble Timescape is enabled but the HubbleTimescape feature gate is not approved"
    fix = "add HubbleTimescape to enterprise.featureGate.approved, or disable hubble.timescape"
    return _one(Severity.error, prefix + "hubble.timescape.enabled", problem, fix)


def _dnsproxy_findings(stack: Stack, prefix: str, cil: dict[str, Any], gates: list[Any]) -> list[Finding]:
    """The DNS proxy (in the values or as a release of the stack) needs the DNSProxyHA gate."""
    dnsproxy = stack.release_for(Component.dnsproxy)
    wants_dnsproxy = _truthy(_get(cil, "extraConfig.external-dns-proxy")) or (
        dnsproxy is not None and dnsproxy[1].enabled
    )
    if not wants_dnsproxy or "DNSProxyHA" in gates:
        return []
    why = (
        'extraConfig.external-dns-proxy is "true"'
        if _truthy(_get(cil, "extraConfig.external-dns-proxy"))
        else f"release {dnsproxy[0]!r} (cilium-dnsproxy) is enabled"
        if dnsproxy
        else ""
    )
    problem = f"{why} but the DNSProxyHA feature gate is not approved"
    fix = "add DNSProxyHA to enterprise.featureGate.approved"
    return _one(Severity.error, prefix + "enterprise.featureGate.approved", problem, fix)


def _service_host_findings(prefix: str, cil: dict[str, Any]) -> list[Finding]:
    """Without kube-proxy the agents reach the API server through k8sServiceHost: it must be the real endpoint."""
    if not _truthy(_get(cil, "kubeProxyReplacement")):
        return []
    host = _get(cil, "k8sServiceHost")
    if not host:
        problem = "kubeProxyReplacement is on but k8sServiceHost is not set"
        fix = "set k8sServiceHost to the cluster endpoint host (the flow fills it in from EKS)"
        return _one(Severity.error, prefix + "k8sServiceHost", problem, fix)
    if ENDPOINT_PLACEHOLDER in str(host):
        problem = f"still holds the placeholder {ENDPOINT_PLACEHOLDER}"
        fix = "render with the cluster endpoint (--endpoint URL) or let the flow discover it"
        return _one(Severity.error, prefix + "k8sServiceHost", problem, fix)
    return []


def _masquerade_findings(prefix: str, cil: dict[str, Any]) -> list[Finding]:
    native_eni = _get(cil, "ipam.mode") == "eni" and _get(cil, "routingMode") == "native"
    if not native_eni or _get(cil, "enableIPv4Masquerade") is False:
        return []
    problem = "ENI IPAM with native routing expects IPv4 masquerading off (pods use VPC addresses)"
    fix = "set enableIPv4Masquerade: false unless you need SNAT"
    return _one(Severity.warning, prefix + "enableIPv4Masquerade", problem, fix)


def errors_of(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.error]
