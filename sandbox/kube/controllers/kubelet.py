"""The kubelet of every node: starts the Pods bound to it once the node has a CNI (is Ready) and their Secrets
exist, after an image pull delay; runs Job Pods to completion (writing the Secrets a certificate-generator Job
names); crash-loops the Pods a `crashloop` pod policy matches. What each container's program does is simulated
per image (sandbox/kube/images): while it runs, and when a Job's container completes."""

from __future__ import annotations

import random

from sandbox.kube.controllers.base import K_NODE, K_POD, K_SECRET, Context, node_ready
from sandbox.kube.controllers.config import PodFaultMode, PodPolicy
from sandbox.kube.controllers.podstatus import CONTAINER_CREATING, PodState, changed, pod_status
from sandbox.kube.images import Images
from sandbox.kube.objects import Obj, set_status

CRASH_BACKOFF_SECONDS = 0.5  # times (restarts + 1) between two restarts of a crash-looping container
NO_CNI_MESSAGE = 'Failed to create pod sandbox: plugin type="cilium-cni" failed: unable to connect to Cilium agent'
CREATING = PodState("Pending", False, waiting=(CONTAINER_CREATING, ""))


def secret_refs(pod: Obj) -> list[tuple[str, dict[str, object]]]:
    """(volume name, {secretName, optional}) for every Secret the Pod's volumes mount."""
    refs = []
    for vol in pod["spec"].get("volumes") or []:
        if "secret" in vol:
            refs.append((vol.get("name", ""), vol["secret"]))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if "secret" in src:
                ref = {"secretName": src["secret"].get("name"), "optional": src["secret"].get("optional")}
                refs.append((vol.get("name", ""), ref))
    return refs


class Kubelet:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.images = Images(ctx)  # what each container's image does (sandbox/kube/images)

    def reconcile(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.ctx.store.list(K_NODE)}
        for pod in self.ctx.store.list(K_POD):
            node = nodes.get(pod.get("spec", {}).get("nodeName") or "")
            if node is not None and pod.get("status", {}).get("phase", "Pending") not in ("Succeeded", "Failed"):
                self.sync(pod, node)

    def report(self, pod: Obj, node: Obj, state: PodState) -> None:
        status = pod_status(pod, node, state)
        if changed(pod.get("status", {}), status):
            set_status(self.ctx.store, K_POD, pod, status)

    def warn_once(self, pod: Obj, reason: str, message: str) -> None:
        if not self.ctx.events.has(pod, reason):
            self.ctx.events.record(pod, "Pod", reason, message, "Warning")

    def sync(self, pod: Obj, node: Obj) -> None:
        if not pod["spec"].get("hostNetwork") and not node_ready(node):
            self.report(pod, node, CREATING)  # no CNI on the node yet: the sandbox cannot be created
            self.warn_once(pod, "FailedCreatePodSandBox", NO_CNI_MESSAGE)
            return
        missing = self.missing_secret(pod)
        if missing:
            self.report(pod, node, CREATING)
            msg = f'MountVolume.SetUp failed for volume "{missing[0]}" : secret "{missing[1]}" not found'
            self.warn_once(pod, "FailedMount", msg)
            return
        due = self._started_at(pod, node["metadata"]["name"])
        now = self.ctx.clock.monotonic()
        if now < due:
            self.report(pod, node, CREATING)
            return
        policy = self.ctx.config.policy_for(pod)
        if policy is not None and policy.mode == PodFaultMode.CRASHLOOP:
            self._crashloop(pod, node, policy, due)
        elif any(r.get("kind") == "Job" for r in pod["metadata"].get("ownerReferences") or []):
            self._run_job_pod(pod, node)
        else:
            self.report(pod, node, PodState("Running", True))
            self.ctx.timers.pop(pod["metadata"]["uid"], None)
            self.images.running(pod)

    def missing_secret(self, pod: Obj) -> tuple[str, str] | None:
        ns = pod["metadata"]["namespace"]
        for volume, ref in secret_refs(pod):
            name = ref.get("secretName")
            if name and not ref.get("optional") and self.ctx.store.get(K_SECRET, ns, str(name)) is None:
                return volume, str(name)
        return None

    def _started_at(self, pod: Obj, node_name: str) -> float:
        """When the Pod's containers start (monotonic): a Pod that has not run yet first waits for its image."""
        uid = pod["metadata"]["uid"]
        due = self.ctx.timers.get(uid)
        if due is None:
            lo, hi = self.ctx.config.pod_start_seconds
            running = pod.get("status", {}).get("phase") == "Running"
            delay = self.pull_delay(pod, node_name, lo, hi) if hi > 0 and not running else 0.0
            due = self.ctx.clock.monotonic() + delay
            self.ctx.timers[uid] = due
            if delay:
                self.ctx.pulls.append(
                    (self.ctx.clock.time(), pod["metadata"]["namespace"], pod["metadata"]["name"], delay)
                )
        return due

    def pull_delay(self, pod: Obj, node_name: str, lo: float, hi: float) -> float:
        if self.ctx.config.pull_seed is None:
            return random.uniform(lo, hi)
        image = ((pod["spec"].get("containers") or [{}])[0]).get("image", "")
        return random.Random(f"{self.ctx.config.pull_seed}:{image}:{node_name}").uniform(lo, hi)

    def _crashloop(self, pod: Obj, node: Obj, policy: PodPolicy, due: float) -> None:
        status = pod.get("status", {})
        restarts = int(max([c.get("restartCount", 0) for c in status.get("containerStatuses") or [{}]] or [0]))
        running = status.get("phase") == "Running"
        if running and self.ctx.clock.monotonic() - due <= CRASH_BACKOFF_SECONDS * (restarts + 1):
            return
        waiting = ("CrashLoopBackOff", f"back-off restarting failed container: {policy.message}")
        self.report(pod, node, PodState("Running", False, waiting=waiting, restarts=restarts + (1 if running else 0)))
        containers = pod["spec"].get("containers") or []
        first = containers[0]["name"] if containers else ""
        self.warn_once(pod, "BackOff", f"Back-off restarting failed container {first}: {policy.message}")
        self.ctx.timers[pod["metadata"]["uid"]] = due

    def _run_job_pod(self, pod: Obj, node: Obj) -> None:
        uid = pod["metadata"]["uid"]
        now = self.ctx.clock.monotonic()
        started = self.ctx.timers.setdefault("run:" + uid, now)
        if now - started >= self.ctx.config.job_run_seconds:
            self.images.completed(pod)
            self.report(pod, node, PodState("Succeeded", False, terminated=True))
            self.ctx.timers.pop(uid, None)
            self.ctx.timers.pop("run:" + uid, None)
        else:
            self.report(pod, node, PodState("Running", True))
            self.ctx.timers[uid] = started + self.ctx.config.job_run_seconds
