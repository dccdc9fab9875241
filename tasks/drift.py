"""Drift verdicts (pure): live state vs the desired stack, one row per check, each ok / drifted / broken with a
path-level diff and the install step that repairs it; the report (markdown, a one-sentence summary, JSON rows).
Known noise is not drift (the certificate hook Job deletes itself 30 minutes after finishing; generated certificate
Secrets are not part of any values; see tasks.object_drift for the object-level rules)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tasks import markdown as md
from tasks import readiness, verify
from tasks.diff import diff_values
from tasks.model import Stack
from tasks.names import KUBE_SYSTEM
from tasks.nodegroup_plan import NodegroupPlan, nodegroup_spec_differences
from tasks.object_drift import FieldDrift
from tasks.preflight import CONFLICTING_ADDONS, CONFLICTING_DAEMONSETS
from tasks.results import LiveRelease

OK, DRIFTED, BROKEN = "ok", "drifted", "broken"


@dataclass(frozen=True)
class ReinstallRelease:
    """`helm upgrade --install` the release with the desired chart and values (even when helm's record already has
    them: the upgrade is what reverts live edits), then server-side apply what helm left drifted."""

    release: str

    def __str__(self) -> str:
        return f"release:{self.release}"


@dataclass(frozen=True)
class UpgradeRelease:
    """The release runs another chart version: the upgrade path (plan, pre-pull, verification, rollback)."""

    release: str

    def __str__(self) -> str:
        return f"upgrade:{self.release}"


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


@dataclass(frozen=True)
class RestartAgents:
    """Restart Cilium's agents (rollout restart of their DaemonSet) so that they load cilium-config."""

    release: str

    def __str__(self) -> str:
        return f"agents:{self.release}"


# What repairs a drifted check (str() is its name in the JSON report).
RepairAction = ReinstallRelease | UpgradeRelease | ScaleNodegroup | RemoveConflictingDaemonSets | RestartAgents


@dataclass(frozen=True)
class DriftItem:
    check: str
    status: str
    detail: str
    diffs: list[str] = field(default_factory=list)
    repair: RepairAction | None = None  # None: not repaired automatically
    rows: tuple[FieldDrift, ...] = ()  # object-level rows (the diffs of an objects check, structured)
    release: str | None = None  # the release the check is about, for grouping the report
    compared: int = 0  # objects compared with their live copies (an objects check)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "status": self.status,
            "detail": self.detail,
            "diffs": list(self.diffs),
            "repair": None if self.repair is None else str(self.repair),
        }
        if self.rows:
            out["objects"] = [r.as_dict() for r in self.rows]
        return out


def release_check(name: str) -> str:
    return f"release {name}"


def release_drift(name: str, version: str, live: LiveRelease | None, desired: dict[str, Any]) -> DriftItem:
    check = release_check(name)
    if live is None:
        return DriftItem(check, BROKEN, "not installed", repair=ReinstallRelease(name))
    version_diffs = [] if live.runs(version) else [f"chart version: live {live.version} -> desired {version}"]
    value_diffs = [str(d) for d in diff_values(live.config, desired)]
    diffs = version_diffs + value_diffs
    # Another chart version is an upgrade (or a downgrade), deployed or not: the upgrade path decides whether and how.
    repair: RepairAction = UpgradeRelease(name) if version_diffs else ReinstallRelease(name)
    if not live.deployed:
        return DriftItem(check, BROKEN, f"status {live.status} (revision {live.revision})", diffs, repair)
    if diffs:
        return DriftItem(check, DRIFTED, f"{len(diffs)} difference(s) from the desired chart and values", diffs, repair)
    return DriftItem(check, OK, f"deployed, chart {live.version}, values as desired (revision {live.revision})")


def objects_check(release: str) -> str:
    return f"release {release}: objects"


def objects_drift(release: str, rows: list[FieldDrift], compared: int) -> DriftItem:
    """The live objects of a release against its manifest: one check, a row per drifted field or missing object."""
    check = objects_check(release)
    if not rows:
        return DriftItem(
            check, OK, f"{compared} objects as the release renders them", release=release, compared=compared
        )
    objects = sorted({str(r.ref) for r in rows})
    missing = sum(1 for r in rows if r.missing and not r.path)
    parts = [f"{len(rows) - missing} field(s) differ"] if len(rows) > missing else []
    parts += [f"{missing} object(s) missing"] if missing else []
    detail = f"{', '.join(parts)} in {len(objects)} of {compared} objects: {', '.join(objects)}"
    return DriftItem(
        check,
        DRIFTED,
        detail,
        [str(r) for r in rows],
        ReinstallRelease(release),
        tuple(rows),
        release=release,
        compared=compared,
    )


DRIFT_METRIC = "cilium_drift_checker_config_delta"
DRIFT_CHECKER_KEY = "enable-drift-checker"


def metrics_port(config: dict[str, Any] | None) -> int | None:
    """The agents' Prometheus port when cilium-config turns their drift checker on (else None: nothing to read)."""
    config = config or {}
    addr = str(config.get("prometheus-serve-addr") or "")
    if config.get(DRIFT_CHECKER_KEY) != "true" or not addr.rpartition(":")[2].isdigit():
        return None
    return int(addr.rpartition(":")[2])


def config_delta(metrics: str) -> int | None:
    """The value of the drift checker's gauge in a Prometheus text exposition (summed over its series); None when
    the agent has none or its value is not a number."""
    total = 0.0
    found = False
    for line in metrics.splitlines():
        if not line.startswith(DRIFT_METRIC) or line[len(DRIFT_METRIC) : len(DRIFT_METRIC) + 1] not in (" ", "{"):
            continue
        # `name{labels} value [timestamp]`: the value follows the labels (which may hold spaces).
        rest = line[len(DRIFT_METRIC) :]
        rest = rest[rest.index("}") + 1 :] if rest.startswith("{") and "}" in rest else rest
        fields = rest.split()
        try:
            value = float(fields[0]) if fields else float("nan")
        except ValueError:
            return None
        if value != value:  # NaN
            return None
        total += value
        found = True
    return int(total) if found else None


def agent_config_drift(release: str, deltas: dict[str, int]) -> DriftItem:
    """Cilium's own signal: each agent's count of cilium-config keys it runs without (it reads them at start)."""
    check = f"{release}: agents' configuration ({DRIFT_METRIC})"
    behind = {pod: n for pod, n in sorted(deltas.items()) if n}
    if not behind:
        return DriftItem(check, OK, f"{len(deltas)} agent(s) run the configuration in cilium-config", release=release)
    return DriftItem(
        check,
        DRIFTED,
        f"{len(behind)} of {len(deltas)} agent(s) have not applied cilium-config (a restart loads it)",
        [f"{pod}: {DRIFT_METRIC} {n}" for pod, n in behind.items()],
        RestartAgents(release),
        release=release,
    )


def agents_need_restart(
    config_before: dict[str, Any] | None,
    config_after: dict[str, Any] | None,
    template_before: dict[str, Any] | None,
    template_after: dict[str, Any] | None,
) -> bool:
    """Cilium's agents read cilium-config only at start and the chart does not roll them when it changes: restart
    them when a repair changed the ConfigMap's data, unless it changed their pod template too (the DaemonSet rolls
    them then). A relay or operator change touches neither: no restart."""
    return config_before != config_after and template_before == template_after


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def sentence(cluster: str, items: list[DriftItem]) -> str:
    """The report in one sentence, for a notification body: what drifted where, what is broken."""
    bad = [i for i in items if not i.ok]
    if not bad:
        return f"{cluster}: no drift ({_plural(len(items), 'check')} ok)."
    parts = []
    for i in bad:
        if i.rows:
            objects = sorted({str(r.ref) for r in i.rows})
            shown = ", ".join(objects[:3]) + (f" and {len(objects) - 3} more" if len(objects) > 3 else "")
            parts.append(f"{_plural(len(objects), 'object')} of release {i.release} drifted ({shown})")
        else:
            parts.append(f"{i.check} {i.status} ({i.detail})")
    return f"{cluster}: " + "; ".join(parts) + "."


def summary(items: list[DriftItem], cluster: str = "") -> dict[str, Any]:
    counts = {s: sum(1 for i in items if i.status == s) for s in (OK, DRIFTED, BROKEN)}
    return {
        "clean": counts[DRIFTED] == 0 and counts[BROKEN] == 0,
        **counts,
        "problems": [f"{i.check}: {i.status}: {i.detail}" for i in items if not i.ok],
        "sentence": sentence(cluster or "the cluster", items),
        "objects": sum(len({r.ref for r in i.rows}) for i in items),
        "compared": sum(i.compared for i in items),
    }


def object_rows(items: list[DriftItem]) -> list[dict[str, Any]]:
    """Every object-level row of the report, each with its release (the event payload, the JSON)."""
    return [{"release": i.release, **r.as_dict()} for i in items for r in i.rows]


def markdown(title: str, items: list[DriftItem], cluster: str = "") -> str:
    s = summary(items, cluster)
    icon = {OK: "✅", DRIFTED: "🟠", BROKEN: "❌"}
    lead = f"**{'No drift' if s['clean'] else 'Drift detected'}**: {s[OK]} ok, {s[DRIFTED]} drifted, {s[BROKEN]} broken"
    rows = [(icon[i.status], i.check, i.status, i.detail) for i in items]
    lines = md.report(title, lead, ("", "check", "status", "detail"), rows)
    lines += ["", f"> {s['sentence']}"]
    lines += _objects_section(items)
    plain = [(i.check, i.diffs) for i in items if not i.rows]
    return "\n".join(lines + md.details(plain))


def _objects_section(items: list[DriftItem]) -> list[str]:
    """The object rows grouped by release, then by object: one table per release."""
    out: list[str] = []
    for i in items:
        if not i.rows:
            continue
        out += [
            "",
            f"### Release {i.release}: drifted objects",
            "",
            "| object | path | live | desired |",
            "|---|---|---|---|",
        ]
        for r in sorted(i.rows, key=lambda r: (str(r.ref), r.path)):
            if r.missing and not r.path:
                out.append(f"| {md.cell(str(r.ref))} | (whole object) | missing | as rendered |")
                continue
            live = "(absent)" if r.missing else md.cell(_short(r.live))
            out.append(f"| {md.cell(str(r.ref))} | `{md.cell(r.path)}` | {live} | {md.cell(_short(r.desired))} |")
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_dicts(items: list[DriftItem]) -> list[dict[str, Any]]:
    return [i.as_dict() for i in items]
