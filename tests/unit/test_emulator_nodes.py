"""The emulator's node lifecycle, scheduler and kubelet, driven directly on the store with a manual clock:
no HTTP, no sleeps, no emulator loop."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.kube.controllers import K_EVENT, K_NODE, K_POD, Context, ManualClock, PodPolicy, SimConfig, node_ready
from sandbox.kube.controllers.config import NodegroupView, PodFaultMode
from sandbox.kube.controllers.kubelet import Kubelet
from sandbox.kube.controllers.nodelifecycle import NodeLifecycle
from sandbox.kube.controllers.nodes import AGENT_NOT_READY_TAINT, NOT_READY_TAINT
from sandbox.kube.controllers.scheduler import Scheduler

NS = "kube-system"
AGENT = {"k8s-app": "cilium"}
AGENT_IMAGE = "quay.io/cilium/cilium:v1.18.4@sha256:49d87af187eeeb9e9e3ec2bc6bd372261a0b5cb2d845659463ba7cc10bb9e4f4"


class Groups:
    """A stand-in for the AWS side: the nodegroups of the cluster, changed by the test."""

    def __init__(self) -> None:
        self.groups: list[NodegroupView] = []

    def __call__(self) -> list[NodegroupView]:
        return list(self.groups)

    def set(self, desired: int, created_at: float, taints: list[dict[str, str]] | None = None) -> None:
        self.groups = [NodegroupView("ng-1", desired, "m5.large", {"role": "worker"}, taints or [], created_at)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ctx(clock) -> Context:
    return Context.fresh(SimConfig(), clock)


@pytest.fixture
def groups() -> Groups:
    return Groups()


@pytest.fixture
def lifecycle(ctx, groups) -> NodeLifecycle:
    return NodeLifecycle(ctx, groups)


def nodes(ctx: Context) -> list[dict[str, Any]]:
    return sorted(ctx.store.list(K_NODE), key=lambda n: n["metadata"]["name"])


def pod(
    ctx: Context, name: str, labels: dict[str, str] | None = None, image: str = "img:1", **spec: Any
) -> dict[str, Any]:
    body = {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": image}], **spec},
    }
    return ctx.objects.create_kind("v1", "Pod", body, NS)


def live(ctx: Context, name: str) -> dict[str, Any]:
    obj = ctx.store.get(K_POD, NS, name)
    assert obj is not None
    return obj


def reasons(ctx: Context, name: str) -> set[str]:
    uid = live(ctx, name)["metadata"]["uid"]
    return {e["reason"] for e in ctx.store.list(K_EVENT, NS) if e["involvedObject"]["uid"] == uid}


def ready_node(ctx: Context, lifecycle: NodeLifecycle, groups: Groups, count: int = 1) -> list[dict[str, Any]]:
    groups.set(count, created_at=ctx.clock.time())
    lifecycle.sync_nodes()
    return [lifecycle.set_ready(n, True) for n in nodes(ctx)]


# ---- node lifecycle ----------------------------------------------------------------------------------------
def test_nodes_register_only_after_the_join_delay_and_start_not_ready_and_tainted(ctx, clock, lifecycle, groups):
    ctx.config.node_join_seconds = 60
    groups.set(
        2, created_at=clock.time(), taints=[{"key": AGENT_NOT_READY_TAINT, "value": "true", "effect": "NO_EXECUTE"}]
    )
    lifecycle.sync_nodes()
    assert nodes(ctx) == []
    clock.advance(60)
    lifecycle.sync_nodes()
    registered = nodes(ctx)
    assert len(registered) == 2
    for n in registered:
        assert not node_ready(n)
        assert n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "ng-1"
        assert n["metadata"]["labels"]["role"] == "worker"
        keys = {(t["key"], t["effect"]) for t in n["spec"]["taints"]}
        assert {
            (NOT_READY_TAINT, "NoSchedule"),
            (NOT_READY_TAINT, "NoExecute"),
            (AGENT_NOT_READY_TAINT, "NoExecute"),
        } <= keys


def test_scaling_a_nodegroup_down_removes_the_newest_node_and_its_pods(ctx, clock, lifecycle, groups):
    groups.set(2, created_at=clock.time())
    lifecycle.sync_nodes()
    oldest, newest = sorted(nodes(ctx), key=lambda n: n["metadata"]["name"])
    pod(ctx, "on-newest", nodeName=newest["metadata"]["name"])
    groups.set(1, created_at=clock.time())
    lifecycle.sync_nodes()
    assert [n["metadata"]["name"] for n in nodes(ctx)] == [oldest["metadata"]["name"]]
    assert ctx.store.get(K_POD, NS, "on-newest") is None


def _ready(ctx: Context, p: dict[str, Any]) -> None:
    ctx.store.update(
        K_POD,
        {**p, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        bump_generation=False,
    )


def test_a_node_turns_ready_only_while_a_ready_agent_pod_runs_on_it(ctx, clock, lifecycle, groups):
    ctx.config.node_ready_seconds = 5
    groups.set(
        1, created_at=clock.time(), taints=[{"key": AGENT_NOT_READY_TAINT, "value": "true", "effect": "NO_EXECUTE"}]
    )
    lifecycle.sync_nodes()
    (node,) = nodes(ctx)
    name = node["metadata"]["name"]
    agent = pod(ctx, "cilium-x", AGENT, image=AGENT_IMAGE, nodeName=name)
    lifecycle.update_conditions()
    assert not node_ready(nodes(ctx)[0]), "an agent that is not Ready yet does not make the node Ready"
    ctx.store.update(
        K_POD,
        {**agent, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        bump_generation=False,
    )
    lifecycle.update_conditions()
    clock.advance(4.9)
    lifecycle.update_conditions()
    assert not node_ready(nodes(ctx)[0]), "node_ready_seconds have not passed"
    clock.advance(0.1)
    lifecycle.update_conditions()
    (ready,) = nodes(ctx)
    assert node_ready(ready)
    assert not {t["key"] for t in ready["spec"]["taints"]} & {NOT_READY_TAINT, AGENT_NOT_READY_TAINT}
    ctx.store.delete(K_POD, NS, "cilium-x")
    lifecycle.update_conditions()
    (again,) = nodes(ctx)
    assert not node_ready(again)
    _ready(ctx, pod(ctx, "labelled-only", AGENT, nodeName=name))
    lifecycle.update_conditions()
    assert not node_ready(nodes(ctx)[0]), "the agent's labels on another image do not make a node Ready"
    _ready(ctx, pod(ctx, "enterprise", {"app": "x"}, image="quay.io/isovalent/cilium:v1.18.4-cee.1", nodeName=name))
    lifecycle.update_conditions()
    clock.advance(5)
    lifecycle.update_conditions()
    assert node_ready(nodes(ctx)[0]), "the enterprise agent image makes the node Ready, whatever the Pod's labels"
    assert {(t["key"], t["effect"]) for t in again["spec"]["taints"]} == {
        (NOT_READY_TAINT, "NoSchedule"),
        (NOT_READY_TAINT, "NoExecute"),
    }


# ---- scheduler ---------------------------------------------------------------------------------------------
def test_scheduler_binds_to_the_least_loaded_fitting_node(ctx, lifecycle, groups):
    first, second = ready_node(ctx, lifecycle, groups, 2)
    pod(ctx, "existing", nodeName=first["metadata"]["name"])
    pod(ctx, "new")
    Scheduler(ctx).reconcile()
    assert live(ctx, "new")["spec"]["nodeName"] == second["metadata"]["name"]
    assert "Scheduled" in reasons(ctx, "new")


def test_scheduler_says_why_no_node_fits(ctx, lifecycle, groups):
    groups.set(1, created_at=ctx.clock.time())
    lifecycle.sync_nodes()  # NotReady: tainted not-ready
    pod(ctx, "web")
    Scheduler(ctx).reconcile()
    status = live(ctx, "web")["status"]
    assert status["phase"] == "Pending"
    assert status["conditions"][0]["message"] == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    )
    assert "FailedScheduling" in reasons(ctx, "web")


def test_scheduler_without_nodes_and_a_pending_pod_policy(ctx, lifecycle, groups):
    pod(ctx, "alone")
    Scheduler(ctx).reconcile()
    assert live(ctx, "alone")["status"]["conditions"][0]["message"] == "no nodes available to schedule pods"
    ready_node(ctx, lifecycle, groups)
    ctx.config.pod_policies.append(PodPolicy({"app": "stuck"}, "pending", message="quota"))
    pod(ctx, "stuck", {"app": "stuck"})
    Scheduler(ctx).reconcile()
    assert "nodeName" not in live(ctx, "stuck")["spec"]
    assert live(ctx, "stuck")["status"]["conditions"][0]["message"] == "0/1 nodes are available: quota."
    assert ctx.config.pod_policies[0].mode is PodFaultMode.PENDING


def test_pod_policy_modes_are_an_enum_and_unknown_modes_are_refused():
    assert PodPolicy({}, "crashloop").mode is PodFaultMode.CRASHLOOP
    with pytest.raises(ValueError):
        PodPolicy({}, "explode")  # type: ignore[arg-type]


# ---- kubelet -----------------------------------------------------------------------------------------------
def test_kubelet_cannot_start_pods_on_a_node_without_cni(ctx, lifecycle, groups):
    groups.set(1, created_at=ctx.clock.time())
    lifecycle.sync_nodes()
    pod(ctx, "web", nodeName=nodes(ctx)[0]["metadata"]["name"])
    Kubelet(ctx).reconcile()
    status = live(ctx, "web")["status"]
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert "FailedCreatePodSandBox" in reasons(ctx, "web")


def test_kubelet_starts_a_pod_after_its_image_pull_delay(ctx, clock, lifecycle, groups):
    ctx.config.pod_start_seconds = (2.0, 2.0)
    (node,) = ready_node(ctx, lifecycle, groups)
    pod(ctx, "web", nodeName=node["metadata"]["name"])
    kubelet = Kubelet(ctx)
    kubelet.reconcile()
    assert live(ctx, "web")["status"]["phase"] == "Pending"
    assert [p[2:] for p in ctx.pulls] == [("web", 2.0)]
    clock.advance(2.0)
    kubelet.reconcile()
    status = live(ctx, "web")["status"]
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["podIP"]


def test_a_seeded_pull_delay_depends_only_on_image_and_node(ctx):
    ctx.config.pull_seed = 7
    kubelet = Kubelet(ctx)
    web = {"spec": {"containers": [{"image": "img:1"}]}}
    assert kubelet.pull_delay(web, "n1", 0, 10) == kubelet.pull_delay(web, "n1", 0, 10)
    assert kubelet.pull_delay(web, "n1", 0, 10) != kubelet.pull_delay(web, "n2", 0, 10)


def test_kubelet_waits_for_a_mounted_secret(ctx, lifecycle, groups):
    (node,) = ready_node(ctx, lifecycle, groups)
    volumes = [{"name": "certs", "secret": {"secretName": "hubble-tls"}}]
    pod(ctx, "relay", nodeName=node["metadata"]["name"], volumes=volumes)
    kubelet = Kubelet(ctx)
    kubelet.reconcile()
    assert live(ctx, "relay")["status"]["phase"] == "Pending"
    assert "FailedMount" in reasons(ctx, "relay")
    ctx.objects.create_kind("v1", "Secret", {"metadata": {"name": "hubble-tls"}}, NS)
    kubelet.reconcile()
    assert live(ctx, "relay")["status"]["phase"] == "Running"


def test_a_job_pod_runs_for_job_run_seconds_then_succeeds_and_its_image_writes_the_secrets(
    ctx, clock, lifecycle, groups
):
    ctx.config.job_run_seconds = 3
    (node,) = ready_node(ctx, lifecycle, groups)
    owner = [{"apiVersion": "batch/v1", "kind": "Job", "name": "certs", "uid": "job-uid", "controller": True}]
    config = "certs:\n- {name: a-tls, commonName: a}\n- {name: b-tls, commonName: b}\n"
    certgen = {
        "name": "gen",
        "image": "quay.io/cilium/certgen:v0.2.4",
        "args": ["--ca-generate=true", f"--ca-secret-namespace={NS}"],
        "env": [{"name": "CILIUM_CERTGEN_CONFIG", "value": config}],
    }
    body = {
        "metadata": {"name": "certs-x", "ownerReferences": owner},
        "spec": {"nodeName": node["metadata"]["name"], "containers": [certgen]},
    }
    ctx.objects.create_kind("v1", "Pod", body, NS)
    kubelet = Kubelet(ctx)
    kubelet.reconcile()
    assert live(ctx, "certs-x")["status"]["phase"] == "Running"
    clock.advance(3)
    kubelet.reconcile()
    status = live(ctx, "certs-x")["status"]
    assert status["phase"] == "Succeeded"
    assert status["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert {s["metadata"]["name"] for s in ctx.store.list(("", "secrets"), NS)} >= {"cilium-ca", "a-tls", "b-tls"}
    assert not any(k.endswith("certs-x") or "run:" in k for k in ctx.timers)


def test_a_crashloop_policy_restarts_the_container_with_growing_backoff(ctx, clock, lifecycle, groups):
    (node,) = ready_node(ctx, lifecycle, groups)
    ctx.config.pod_policies.append(PodPolicy({"app": "tetragon"}, PodFaultMode.CRASHLOOP, message="no BTF"))
    pod(ctx, "tetragon-x", {"app": "tetragon"}, nodeName=node["metadata"]["name"])
    kubelet = Kubelet(ctx)

    def restarts() -> int:
        return int(live(ctx, "tetragon-x")["status"]["containerStatuses"][0]["restartCount"])

    kubelet.reconcile()
    waiting = live(ctx, "tetragon-x")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff" and "no BTF" in waiting["message"]
    assert restarts() == 0 and "BackOff" in reasons(ctx, "tetragon-x")
    clock.advance(0.5)
    kubelet.reconcile()
    assert restarts() == 0, "within the first back-off"
    clock.advance(0.01)
    kubelet.reconcile()
    assert restarts() == 1
    ready = {c["type"]: c["status"] for c in live(ctx, "tetragon-x")["status"]["conditions"]}["Ready"]
    assert ready == "False"
