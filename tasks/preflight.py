"""Preflight verdicts (pure): observed facts about the account and the cluster -> every problem, each with its fix.

Nothing is changed before these pass. All problems are reported together, so one run tells the user
everything to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tasks import helm_argv
from tasks.model import Component
from tasks.names import CONFLICTING_ADDONS, CONFLICTING_DAEMONSETS, DEPLOYED, FAILED, PENDING_PREFIX, SERVICEMONITOR_CRD

__all__ = ["CONFLICTING_ADDONS", "CONFLICTING_DAEMONSETS", "SERVICEMONITOR_CRD"]


@dataclass
class ReleaseState:
    name: str
    namespace: str
    status: str | None  # None = not installed
    revision: int | None = None
    chart_version: str | None = None
    last_deployed_revision: int | None = None


@dataclass
class ClusterFacts:
    cluster: str
    region: str
    principal: str
    addons: list[str] | None
    kube_system_daemonsets: list[str]
    nodes: list[str]
    servicemonitor_crd: bool
    admin_allowed: bool
    admin_reason: str
    releases: dict[str, ReleaseState] = field(default_factory=dict)
    cilium_release: str = "cilium"
    missing_chart_versions: dict[str, str] = field(default_factory=dict)  # release -> message
    render_errors: dict[str, str] = field(default_factory=dict)  # release -> helm's message
    values_errors: list[str] = field(default_factory=list)
    nodegroup_errors: list[str] = field(default_factory=list)
    recover_pending: bool = True  # releases left pending-* or failed are recovered by the flow instead of blocking
    node_nodegroups: dict[str, str] = field(default_factory=dict)  # node -> its eks.amazonaws.com/nodegroup label
    own_nodegroup: str | None = None  # the stack's nodegroup
    components: dict[str, Component] = field(default_factory=dict)  # release -> its component


def service_monitor_paths(values: Any, prefix: str = "") -> list[str]:
    """Paths of the enabled `serviceMonitor` blocks (each renders a monitoring.coreos.com/v1 ServiceMonitor)."""
    found: list[str] = []
    if isinstance(values, dict):
        for k, v in values.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if k == "serviceMonitor" and isinstance(v, dict) and v.get("enabled") is True:
                found.append(path)
            else:
                found.extend(service_monitor_paths(v, path))
    return found


# Cilium's chart (templates/validate.yaml) skips its ServiceMonitor CRD check when this one path is true, for a CRD
# that comes with the same install; the other charts have no such switch, and nested trustCRDsExist keys do nothing.
CILIUM_TRUST_CRDS = ("prometheus", "serviceMonitor", "trustCRDsExist")


def trusts_crds(component: Component | None, values: dict[str, Any]) -> bool:
    """Whether the release's chart was told the ServiceMonitor CRDs exist (only Cilium's chart can be)."""
    if component is not Component.cilium:
        return False
    node: Any = values
    for key in CILIUM_TRUST_CRDS:
        node = node.get(key) if isinstance(node, dict) else None
    return node is True


class RecoveryKind(StrEnum):
    rollback = "rollback"  # pending-* with a deployed revision: helm holds the release's lock; roll back to it
    uninstall = "uninstall"  # pending-* or failed that never deployed: nothing to roll back to or upgrade over
    upgrade_over = "upgrade-over"  # failed with a deployed revision: `helm upgrade` over it is helm's own recovery


@dataclass(frozen=True)
class Recovery:
    """What the flow does about a release an interrupted or failed run left behind, before installing it again."""

    kind: RecoveryKind
    release: str
    status: str
    revision: int | None
    last_deployed_revision: int | None

    def describe(self) -> str:
        if self.kind is RecoveryKind.rollback:
            return (
                f"release {self.release} was {self.status} (revision {self.revision}): "
                f"rolled back to revision {self.last_deployed_revision}"
            )
        if self.kind is RecoveryKind.upgrade_over:
            return (
                f"release {self.release} was {self.status} (revision {self.revision}): upgrading over it "
                f"(last deployed revision {self.last_deployed_revision})"
            )
        word = "failed" if self.status == "failed" else "pending"
        return f"release {self.release} was {self.status} with no deployed revision: uninstalled the {word} release"


def needs_recovery(status: str | None) -> bool:
    """A release helm left in a state the next install must deal with first (Ctrl-C, kill -9, a timed-out hook)."""
    return bool(status) and (str(status).startswith(PENDING_PREFIX) or status == FAILED)


def plan_recovery(name: str, status: str | None, revision: int | None, last_deployed: int | None) -> Recovery | None:
    """The recovery for a release in `status`, or None when it needs none (pure)."""
    if not status or not needs_recovery(status):
        return None
    if status == FAILED:
        kind = RecoveryKind.upgrade_over if last_deployed else RecoveryKind.uninstall
    else:
        kind = RecoveryKind.rollback if last_deployed else RecoveryKind.uninstall
    return Recovery(kind, name, status, revision, last_deployed)


def recovered_before_install(state: ReleaseState) -> bool:
    """A release the install recovers before anything else (rolled back or uninstalled): helm cannot render it
    until then. A failed release with a deployed revision is simply upgraded over."""
    recovery = plan_recovery(state.name, state.status, state.revision, state.last_deployed_revision)
    return recovery is not None and recovery.kind is not RecoveryKind.upgrade_over


def existing_nodegroup_problems(name: str, differences: list[str]) -> list[str]:
    """A nodegroup that exists with another spec blocks the install: it is never changed silently."""
    if not differences:
        return []
    return [
        f"nodegroup {name} exists with a different spec ({'; '.join(differences)}). This flow never changes "
        "a nodegroup silently. Fix: align configs/nodegroup.yaml with it, or replace the nodegroup deliberately"
    ]


def recovery_commands(state: ReleaseState, helm: str = "helm") -> list[str]:
    if state.last_deployed_revision:
        return [
            helm_argv.shell_line(
                helm_argv.rollback(helm, state.name, state.namespace, state.last_deployed_revision, timeout_seconds=600)
            )
        ]
    return [helm_argv.shell_line(helm_argv.uninstall(helm, state.name, state.namespace, timeout_seconds=600))]


def evaluate(facts: ClusterFacts, rendered_values: dict[str, dict[str, Any]]) -> list[str]:
    """Every problem that blocks the install, each with its fix (empty: go)."""
    return [
        *_default_addon_problems(facts),
        *_foreign_node_problems(facts),
        *_servicemonitor_problems(facts, rendered_values),
        *_admin_problems(facts),
        *_release_problems(facts),
        *facts.values_errors,
        *facts.nodegroup_errors,
    ]


def _default_addon_problems(facts: ClusterFacts) -> list[str]:
    """The default add-ons (vpc-cni, kube-proxy) as EKS add-ons or as their DaemonSets."""
    problems: list[str] = []
    present_addons = [a for a in (facts.addons or []) if a in CONFLICTING_ADDONS]
    if present_addons:
        problems.append(
            f"EKS managed add-on(s) {', '.join(present_addons)} are installed: they conflict with Cilium (ENI IPAM and "
            f"kube-proxy replacement). Fix: `aws eks delete-addon --cluster-name {facts.cluster} --addon-name NAME "
            f"--region {facts.region}` for each, or recreate the cluster with addonsConfig.disableDefaultAddons: true"
        )
    present_ds = [d for d in facts.kube_system_daemonsets if d in CONFLICTING_DAEMONSETS]
    if present_ds:
        problems.append(
            f"DaemonSet(s) kube-system/{', kube-system/'.join(present_ds)} exist: the cluster was created with default "
            f"add-ons. Fix: `kubectl -n kube-system delete daemonset {' '.join(present_ds)}` (on a cluster without "
            "workloads) or recreate it with addonsConfig.disableDefaultAddons: true"
        )
    return problems


def _foreign_node_problems(facts: ClusterFacts) -> list[str]:
    cilium = facts.releases.get(facts.cilium_release)
    cilium_installed = cilium is not None and cilium.status == DEPLOYED
    # Nodes of the stack's own nodegroup are a resumed install (a run that died after creating the nodegroup, which
    # it does only once Cilium's objects exist; without default add-ons no other CNI can have initialised them):
    # they stay NotReady until Cilium runs. Any other node may carry another CNI for good.
    foreign = [n for n in facts.nodes if not facts.own_nodegroup or facts.node_nodegroups.get(n) != facts.own_nodegroup]
    if not foreign or cilium_installed:
        return []
    shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
    return [
        f"{len(foreign)} node(s) outside the stack's nodegroup already exist ({shown}) but Cilium is "
        "not installed: a node initialised by "
        "another CNI keeps it. Fix: delete those nodegroups (and their nodes) before the install; they are "
        "replaced by the stack's nodegroup once Cilium is in place"
    ]


def _servicemonitor_problems(facts: ClusterFacts, rendered_values: dict[str, dict[str, Any]]) -> list[str]:
    if facts.servicemonitor_crd:
        return []
    by_release = {
        name: paths
        for name, values in sorted(rendered_values.items())
        if not trusts_crds(facts.components.get(name), values) and (paths := service_monitor_paths(values))
    }
    if not by_release:
        return []
    where = "; ".join(f"release {name} at {', '.join(paths)}" for name, paths in by_release.items())
    trust = ".".join(CILIUM_TRUST_CRDS)
    cilium = [n for n in by_release if facts.components.get(n) is Component.cilium]
    others = [n for n in by_release if n not in cilium]
    hint = ""
    if cilium:
        hint = (
            f" If the CRDs come with the same install, release {cilium[0]} (Cilium's chart) can be told so with "
            f"{trust}: true in its values (one path for all of its ServiceMonitors)"
        )
        if others:
            hint += f"; {', '.join(others)} ha{'s' if len(others) == 1 else 've'} no such switch"
    return [
        f"the ServiceMonitor CRD ({SERVICEMONITOR_CRD}) is missing but the values enable ServiceMonitors: {where}. "
        "Fix: install the Prometheus operator CRDs first, e.g. `helm install prometheus-operator-crds "
        f"prometheus-community/prometheus-operator-crds`, or set those paths' enabled: false.{hint}"
    ]


def _admin_problems(facts: ClusterFacts) -> list[str]:
    if facts.admin_allowed:
        return []
    return [
        f"the caller {facts.principal} is not cluster-admin in {facts.cluster} "
        "(SelfSubjectAccessReview for '*' on '*' "
        f"was denied{': ' + facts.admin_reason if facts.admin_reason else ''}). Fix: `aws eks create-access-entry "
        f"--cluster-name {facts.cluster} --principal-arn {facts.principal}` and `aws eks associate-access-policy "
        f"--cluster-name {facts.cluster} --principal-arn {facts.principal} --access-scope "
        "type=cluster --policy-arn "
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy`"
    ]


def _release_problems(facts: ClusterFacts) -> list[str]:
    """Releases stuck from an earlier run (unless the flow recovers them), missing chart versions, render errors."""
    problems: list[str] = []
    for name, state in facts.releases.items():
        if needs_recovery(state.status) and not facts.recover_pending:
            problems.append(
                f"release {name} in {state.namespace} is stuck in {state.status} (revision {state.revision}) from an "
                f"interrupted or failed run. Fix: {' ; '.join(recovery_commands(state))} and run again, "
                "or run with recover_pending: true"
            )
        elif state.status == "uninstalling":
            problems.append(
                f"release {name} in {state.namespace} is being uninstalled; wait for it to finish and run again"
            )
    for name, msg in facts.missing_chart_versions.items():
        problems.append(f"release {name}: {msg}")
    for name, msg in facts.render_errors.items():
        problems.append(f"release {name}: the chart does not render with these values against this cluster: {msg}")
    return problems
