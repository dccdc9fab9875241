"""Drift verdicts (pure): live state vs the desired stack, one row per check, each ok / drifted / broken with a
path-level diff and the install step that repairs it. Known noise is not drift (the certificate hook Job
deletes itself 30 minutes after finishing; generated certificate Secrets are not part of any values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks import markdown as md
from tasks import readiness, verify
from tasks.diff import diff_values
from tasks.model import Stack
from tasks.names import KUBE_SYSTEM
from tasks.nodegroup_plan import NodegroupPlan, nodegroup_spec_differences
from tasks.preflight import CONFLICTING_ADDONS, CONFLICTING_DAEMONSETS
from tasks.results import LiveRelease

OK, DRIFTED, BROKEN = "ok", "drifted", "broken"


@dataclass(frozen=True)
class ReinstallRelease:
    """`helm upgrade --install` the release with the desired chart and values."""

    release: str
    values_only: bool = False  # the chart version is as desired: Cilium's agents must be restarted to load it

    def __str__(self) -> str:
        return f"release:{self.release}"


@dataclass(frozen=True)
class ScaleNodegroup:
    """Set the nodegroup's scaling back to the desired sizes and wait for the nodes."""

    def __str__(self) -> str:
        return "nodegroup:scale"


@dataclass(frozen=True)
class RemoveConflictingDaemonSets:
    """Delete aws-node / kube-proxy DaemonSets that came back in kube-system."""

    def __str__(self) -> str:
        return "cni:daemonsets"


# What repairs a drifted check (str() is its name in the JSON report).
RepairAction = ReinstallRelease | ScaleNodegroup | RemoveConflictingDaemonSets


@dataclass(frozen=True)
class DriftItem:
    check: str
    status: str
    detail: str
    diffs: list[str] = field(default_factory=list)
    repair: RepairAction | None = None  # None: not repaired automatically

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "detail": self.detail,
            "diffs": list(self.diffs),
            "repair": None if self.repair is None else str(self.repair),
        }


def release_drift(name: str, version: str, live: LiveRelease | None, desired: dict[str, Any]) -> DriftItem:
    check = f"release {name}"
    if live is None:
        return DriftItem(check, BROKEN, "not installed", repair=ReinstallRelease(name))
    version_diffs = [] if live.runs(version) else [f"chart version: live {live.version} -> desired {version}"]
    value_diffs = [str(d) for d in diff_values(live.config, desired)]
    diffs = version_diffs + value_diffs
    repair = ReinstallRelease(name, values_only=bool(value_diffs) and not version_diffs)
    if not live.deployed:
        return DriftItem(check, BROKEN, f"status {live.status} (revision {live.revision})", diffs, repair)
    if diffs:
        return DriftItem(check, DRIFTED, f"{len(diffs)} difference(s) from the desired chart and values", diffs, repair)
    return DriftItem(check, OK, f"deployed, chart {live.version}, values as desired (revision {live.revision})")


def workload_drift(
    release: str, kind: str, name: str, verdict: readiness.Verdict, *, ttl_noise: bool = False
) -> DriftItem:
    check = f"{release}: {kind} {name}"
    if verdict.ready:
        return DriftItem(check, OK, verdict.summary)
    if ttl_noise:
        return DriftItem(check, OK, "deleted by its ttlSecondsAfterFinished after completing (expected)")
    return DriftItem(check, BROKEN, verdict.summary)


def nodes_drift(ready: int, registered: int, desired: int) -> DriftItem:
    status = OK if ready == desired and registered == desired else (DRIFTED if ready >= 1 else BROKEN)
    return DriftItem(
        "nodes",
        status,
        f"{ready} Ready of {registered} registered, nodegroup desires {desired}",
        [] if status == OK else [f"nodes: live {registered} ({ready} Ready) -> desired {desired}"],
    )


def nodegroup_drift(plan: NodegroupPlan, live: dict[str, Any] | None) -> DriftItem:
    check = f"nodegroup {plan.name}"
    if live is None:
        return DriftItem(check, BROKEN, "does not exist", repair=None)
    diffs = nodegroup_spec_differences(plan, live)
    if live.get("status") != "ACTIVE":
        return DriftItem(check, BROKEN, f"status {live.get('status')}", diffs)
    if diffs:
        scaling_only = all(d.startswith("scalingConfig.") for d in diffs)
        return DriftItem(
            check,
            DRIFTED,
            f"{len(diffs)} difference(s) from configs/nodegroup.yaml",
            diffs,
            ScaleNodegroup() if scaling_only else None,
        )
    return DriftItem(check, OK, f"ACTIVE, {plan.desired_size} x {','.join(plan.instance_types)} as desired")


def cluster_identity_drift(stack: Stack, data: dict[str, Any] | None) -> DriftItem:
    """cilium-config's cluster-name / cluster-id against the stack. Not repaired automatically: when the release's
    values are as desired, someone edited the ConfigMap by hand (agents read it at start)."""
    check = verify.cluster_identity_check(stack, data)
    diffs = verify.cluster_identity_differences(stack, data)
    if not diffs:
        return DriftItem(check.name, OK, check.observed)
    if data is None:
        return DriftItem(check.name, BROKEN, "missing", diffs, ReinstallRelease(stack.cilium[0]))
    return DriftItem(check.name, DRIFTED, f"{check.observed}; the stack says {check.expected}", diffs)


def cni_drift(addons: list[str] | None, daemonsets: list[str]) -> DriftItem:
    bad_addons = [a for a in addons or [] if a in CONFLICTING_ADDONS]
    bad_ds = [d for d in daemonsets if d in CONFLICTING_DAEMONSETS]
    if not bad_addons and not bad_ds:
        return DriftItem("CNI conflicts", OK, "no aws-node / kube-proxy, no vpc-cni / kube-proxy add-ons")
    diffs = [f"{KUBE_SYSTEM}/{d}: live present -> desired absent" for d in bad_ds]
    diffs += [
        f"EKS add-on {a}: live installed -> desired absent (remove with `aws eks delete-addon`)" for a in bad_addons
    ]
    return DriftItem(
        "CNI conflicts",
        BROKEN,
        "conflicting CNI components are back",
        diffs,
        RemoveConflictingDaemonSets() if bad_ds and not bad_addons else None,
    )


def summary(items: list[DriftItem]) -> dict[str, Any]:
    counts = {s: sum(1 for i in items if i.status == s) for s in (OK, DRIFTED, BROKEN)}
    return {
        "clean": counts[DRIFTED] == 0 and counts[BROKEN] == 0,
        **counts,
        "problems": [f"{i.check}: {i.status}: {i.detail}" for i in items if not i.ok],
    }


def markdown(title: str, items: list[DriftItem]) -> str:
    s = summary(items)
    icon = {OK: "✅", DRIFTED: "🟠", BROKEN: "❌"}
    lead = f"**{'No drift' if s['clean'] else 'Drift detected'}**: {s[OK]} ok, {s[DRIFTED]} drifted, {s[BROKEN]} broken"
    rows = [(icon[i.status], i.check, i.status, i.detail) for i in items]
    lines = md.report(title, lead, ("", "check", "status", "detail"), rows)
    return "\n".join(lines + md.details([(i.check, i.diffs) for i in items]))


def as_dicts(items: list[DriftItem]) -> list[dict[str, Any]]:
    return [i.as_dict() for i in items]
