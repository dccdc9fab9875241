"""Workload sensors: the Cilium objects applied, and each DaemonSet / Deployment / Job rolled out, available or
complete (`kubectl rollout status` rules), failing fast on objects the release does not render.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tasks import manifest, readiness
from tasks.adapters.kube import Kube
from tasks.model import Workload
from tasks.names import CILIUM_AGENT_DAEMONSET, CILIUM_CONFIG_MAP, FAILED
from tasks.readiness import Verdict
from tasks.results import CiliumObjects, WorkloadOutcome
from tasks.steps.releases import rendered_release
from tasks.steps.runtime import RunContext, sense, sensor


@sensor("wait_for_cilium_objects")
def wait_for_cilium_objects(ctx: RunContext, since_revision: int = 0) -> CiliumObjects:
    """Sensor: the Cilium DaemonSet and ConfigMap exist (helm has applied the chart's objects). The nodegroup
    waits only for this, not for the helm install, which cannot finish before nodes exist (design hazard 1).
    A failed release record counts only when it is newer than `since_revision` (a failed revision an earlier run
    left behind is what this run upgrades over)."""
    name, rel = ctx.stack.cilium
    agent = rel.workload("agent")
    ds_name = agent.name if agent else CILIUM_AGENT_DAEMONSET
    cm = rel.config_map or CILIUM_CONFIG_MAP

    def probe() -> Verdict:
        with ctx.kube() as kube:
            records = kube.helm_release_secrets(rel.namespace, name)
            latest = max(records, key=lambda r: int(r["metadata"]["labels"].get("version", "0")), default=None)
            if (
                latest
                and latest["metadata"]["labels"].get("status") == FAILED
                and int(latest["metadata"]["labels"].get("version", "0")) > since_revision
            ):
                return Verdict(False, f"helm release {name} failed", failed=True)
            ds = kube.get("DaemonSet", agent.namespace or rel.namespace if agent else rel.namespace, ds_name)
            cmap = kube.get("ConfigMap", rel.namespace, cm)
        missing = [n for n, o in ((f"DaemonSet {ds_name}", ds), (f"ConfigMap {cm}", cmap)) if o is None]
        return Verdict(not missing, "present" if not missing else "waiting for " + " and ".join(missing))

    sense(
        ctx,
        "Cilium objects applied",
        probe,
        ctx.options.timeouts.cilium_objects,
        hint=f"check the helm install of {name}: `helm status {name} -n {rel.namespace}`",
    )
    return CiliumObjects(ds_name, cm, time.time())


def _workload_diagnosis(ctx: RunContext, w: Workload, namespace: str) -> list[str]:
    with ctx.kube() as kube:
        pods = kube.list_pods(namespace, w.selector)
        lines = readiness.pod_problems(pods) if pods else [f"no pods match {w.selector}"]
        names = [w.name] + [p["metadata"]["name"] for p in pods]
        for e in kube.list_events(namespace, names, limit=8):
            lines.append(
                f"event {e.get('type')} {e.get('reason')} {e['involvedObject'].get('name')}: {e.get('message')}"
                + (f" (x{e.get('count')})" if (e.get("count") or 1) > 1 else "")
            )
    return lines


def workload_verdict(
    kube: Kube,
    w: Workload,
    namespace: str,
    expected_nodes: int | None,
    rendered: manifest.RenderedRelease | None = None,
) -> Verdict:
    """The workload's verdict (`kubectl rollout status` rules); with the release's rendered objects also: fewer
    replicas than the release renders fails, and an object the deployed release lacks fails at once."""
    obj = kube.get(w.kind.value, namespace, w.name)
    if obj is None and rendered is not None:
        absent = manifest.absent_workload(w.kind.value, namespace, w.name, rendered)
        if absent is not None:
            return absent
    if w.kind.value == "DaemonSet":
        return readiness.daemonset(obj, expected_nodes=expected_nodes if w.per_node else None)
    if w.kind.value == "Job":
        return readiness.job(obj)
    expected = rendered.expected_replicas(w.kind.value, namespace, w.name) if rendered is not None else None
    return readiness.deployment(obj, expected_replicas=expected)


# A workload still absent after this many polls and seconds (whichever is later) while its release is deployed is
# checked against the release's rendered objects: a name the release does not render fails at once.
ABSENT_POLLS = 3


ABSENT_SECONDS = 10.0


@dataclass
class AbsenceWatch:
    """When a sensor should ask helm why its object is missing: after ABSENT_POLLS polls and ABSENT_SECONDS
    seconds of absence, then at most every ABSENT_SECONDS (helm is asked only while the object is missing)."""

    polls: int = 0
    since: float | None = None
    asked: float | None = None

    def due(self, absent: bool, now: float) -> bool:
        if not absent:
            self.polls, self.since, self.asked = 0, None, None
            return False
        self.polls += 1
        self.since = now if self.since is None else self.since
        if self.polls < ABSENT_POLLS or now - self.since < ABSENT_SECONDS:
            return False
        if self.asked is not None and now - self.asked < ABSENT_SECONDS:
            return False
        self.asked = now
        return True


@sensor("check_workload")
def check_workload(ctx: RunContext, release: str, role: str, expected_nodes: int) -> WorkloadOutcome:
    """Sensor for one workload: DaemonSet rolled out, Deployment available or Job complete (Failed is terminal).
    An object that stays absent while its release is deployed fails fast, listing what the release renders."""
    rel = ctx.stack.releases[release]
    w = rel.workload(role)
    assert w is not None
    ns = w.namespace or rel.namespace
    kind_word = {"DaemonSet": "rolled out", "Deployment": "available", "Job": "complete", "StatefulSet": "ready"}[
        w.kind.value
    ]
    timeout = ctx.options.timeouts.job if w.kind.value == "Job" else ctx.options.timeouts.rollout
    absence = AbsenceWatch()

    def probe() -> Verdict:
        with ctx.kube() as kube:
            v = workload_verdict(kube, w, ns, expected_nodes)
        if absence.due(v.summary == "does not exist", time.monotonic()):
            rendered = rendered_release(ctx, release, rel)
            absent = manifest.absent_workload(w.kind.value, ns, w.name, rendered) if rendered is not None else None
            if absent is not None:
                return absent
        return v

    v = sense(
        ctx,
        f"{w.kind.value} {ns}/{w.name} {kind_word}",
        probe,
        timeout,
        hint=f"inspect with `kubectl -n {ns} describe {w.kind.value.lower()} {w.name}` and the pods listed "
        f"above; if it does not exist, compare its name (stack releases.{release}.workloads, role "
        f"{role}) with `helm get manifest {release} -n {rel.namespace}`",
        diagnose=lambda: _workload_diagnosis(ctx, w, ns),
    )
    return WorkloadOutcome(release, role, w.name, v.summary)
