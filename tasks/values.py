"""Values rendering (pure): the runbook's values files + the cluster endpoint + overrides -> helm values.

Also owns the endpoint normalisation (k8sServiceHost / k8sServicePort) and the cross-checks between values
and the stack that must fail before anything runs.
"""

from __future__ import annotations

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
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


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
        raise ConfigError("the API server endpoint is empty", hint="pass the cluster's endpoint, e.g. https://ABC.gr7.us-east-1.eks.amazonaws.com")
    candidate = raw if "://" in raw else f"https://{raw}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"endpoint {raw!r} is not a URL or host name", observed=str(e),
                          hint="give https://HOST[:PORT] or HOST") from None
    if parts.scheme != "https":
        raise ConfigError(f"endpoint {raw!r} uses scheme {parts.scheme!r}", hint="the EKS API server is reached over https://")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"endpoint {raw!r} has a path, query or credentials",
                          hint="give only the scheme, host and optional port: https://HOST[:PORT]")
    # urlsplit lower-cases .hostname; keep the endpoint's own spelling (EKS hosts are upper-case hex).
    netloc = parts.netloc
    host = netloc[1:netloc.index("]")] if netloc.startswith("[") and "]" in netloc else netloc.rsplit(":", 1)[0] if parts.port else netloc
    if not _is_host(host):
        raise ConfigError(f"endpoint {raw!r} does not name a host", observed=f"host part {host!r}",
                          hint="give a DNS name or an IP address")
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
    For Cilium, a non-default port in the endpoint sets `k8sServicePort`.
    """
    if not isinstance(base, dict):
        raise ConfigError("a values file must hold a mapping", observed=f"got {type(base).__name__}")
    values = base
    if endpoint is not None:
        values = _substitute(values, ENDPOINT_PLACEHOLDER, endpoint.host)
        if component is Component.cilium and "k8sServiceHost" in values and (endpoint.port != 443 or "k8sServicePort" not in values):
            values = {**values, "k8sServicePort": endpoint.port}
    if overrides:
        if not isinstance(overrides, dict):
            raise ConfigError("values overrides must be a mapping", observed=f"got {type(overrides).__name__}")
        values = deep_merge(values, overrides)
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


def check_values(stack: Stack, rendered: dict[str, dict[str, Any]]) -> list[Finding]:
    """Cross-checks between the rendered values and the stack. Errors block the run; warnings are logged."""
    findings: list[Finding] = []
    cilium_name, _ = stack.cilium
    cil = rendered.get(cilium_name, {})
    prefix = f"{cilium_name}."
    gates = _get(cil, "enterprise.featureGate.approved") or []
    if not isinstance(gates, list):
        findings.append(Finding(Severity.error, prefix + "enterprise.featureGate.approved",
                                f"must be a list of feature gate names, got {type(gates).__name__}",
                                "write it as a YAML list, e.g. [DNSProxyHA, HubbleTimescape]"))
        gates = []

    if _truthy(_get(cil, "hubble.timescape.enabled")) and "HubbleTimescape" not in gates:
        findings.append(Finding(Severity.error, prefix + "hubble.timescape.enabled",
                                "Hubble Timescape is enabled but the HubbleTimescape feature gate is not approved",
                                "add HubbleTimescape to enterprise.featureGate.approved, or disable hubble.timescape"))
    dnsproxy = stack.release_for(Component.dnsproxy)
    wants_dnsproxy = _truthy(_get(cil, "extraConfig.external-dns-proxy")) or (dnsproxy is not None and dnsproxy[1].enabled)
    if wants_dnsproxy and "DNSProxyHA" not in gates:
        why = ("extraConfig.external-dns-proxy is \"true\"" if _truthy(_get(cil, "extraConfig.external-dns-proxy"))
               else f"release {dnsproxy[0]!r} (cilium-dnsproxy) is enabled" if dnsproxy else "")
        findings.append(Finding(Severity.error, prefix + "enterprise.featureGate.approved",
                                f"{why} but the DNSProxyHA feature gate is not approved",
                                "add DNSProxyHA to enterprise.featureGate.approved"))
    kpr = _get(cil, "kubeProxyReplacement")
    if _truthy(kpr):
        host = _get(cil, "k8sServiceHost")
        if not host:
            findings.append(Finding(Severity.error, prefix + "k8sServiceHost",
                                    "kubeProxyReplacement is on but k8sServiceHost is not set",
                                    "set k8sServiceHost to the cluster endpoint host (the flow fills it in from EKS)"))
        elif ENDPOINT_PLACEHOLDER in str(host):
            findings.append(Finding(Severity.error, prefix + "k8sServiceHost",
                                    f"still holds the placeholder {ENDPOINT_PLACEHOLDER}",
                                    "render with the cluster endpoint (--endpoint URL) or let the flow discover it"))
    if _get(cil, "ipam.mode") == "eni" and _get(cil, "routingMode") == "native" and _get(cil, "enableIPv4Masquerade") is not False:
        findings.append(Finding(Severity.warning, prefix + "enableIPv4Masquerade",
                                "ENI IPAM with native routing expects IPv4 masquerading off (pods use VPC addresses)",
                                "set enableIPv4Masquerade: false unless you need SNAT"))
    return findings


def errors_of(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.error]
