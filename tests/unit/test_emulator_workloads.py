"""The emulator's workload controllers, garbage collector, namespace and TTL controllers, driven directly on
the store with a manual clock: no HTTP, no sleeps, no emulator loop."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sandbox.kube.controllers import K_DEPLOY, K_DS, K_JOB, K_NODE, K_NS, K_POD, K_RS, K_STS, Context, ManualClock
from sandbox.kube.controllers.config import NodegroupView
from sandbox.kube.controllers.daemonset import DaemonSetController
from sandbox.kube.controllers.deployment import DeploymentController
from sandbox.kube.controllers.gc import GarbageCollector
from sandbox.kube.controllers.job import JobController
from sandbox.kube.controllers.namespace import NamespaceController
from sandbox.kube.controllers.nodelifecycle import NodeLifecycle
from sandbox.kube.controllers.nodes import node_object
from sandbox.kube.controllers.replicaset import ReplicaSetController
from sandbox.kube.controllers.statefulset import StatefulSetController
from sandbox.kube.controllers.ttl import TtlAfterFinishedController
from sandbox.kube.objects import set_status

NS = "default"
LABELS = {"app": "web"}


def template(image: str = "nginx:1.27") -> dict[str, Any]:
    return {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "c", "image": image}]}}


def workload(ctx: Context, kind: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": LABELS}, "template": template(), **spec}}
    return ctx.objects.create_kind("batch/v1" if kind == "Job" else "apps/v1", kind, body, NS)


def pods(ctx: Context) -> list[dict[str, Any]]:
    return sorted(ctx.store.list(K_POD, NS), key=lambda p: p["metadata"]["name"])


def fresh(key: tuple[str, str], obj: dict[str, Any], ctx: Context) -> dict[str, Any]:
    live = ctx.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
    assert live is not None
    return live


def run_pod(ctx: Context, pod: dict[str, Any], phase: str = "Running", ready: bool = True) -> None:
    flag = "True" if ready else "False"
    set_status(ctx.store, K_POD, pod, {"phase": phase, "conditions": [{"type": "Ready", "status": flag}]})


@pytest.fixture
def ctx() -> Context:
    return Context.fresh(clock=ManualClock())


# ---- Deployment and ReplicaSet ----------------------------------------------------------------------------
def test_deployment_creates_one_replicaset_per_template_and_scales_the_old_one_to_zero(ctx):
    deployments = DeploymentController(ctx)
    d = workload(ctx, "Deployment", "web", replicas=3)
    deployments.reconcile()
    (first,) = ctx.store.list(K_RS, NS)
    assert first["spec"]["replicas"] == 3
    assert first["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    changed = copy.deepcopy(fresh(K_DEPLOY, d, ctx))
    changed["spec"]["template"] = template("nginx:1.28")
    ctx.store.update(K_DEPLOY, changed, bump_generation=True)
    deployments.reconcile()
    by_name = {rs["metadata"]["name"]: rs for rs in ctx.store.list(K_RS, NS)}
    assert len(by_name) == 2
    assert by_name[first["metadata"]["name"]]["spec"]["replicas"] == 0
    (new,) = [rs for n, rs in by_name.items() if n != first["metadata"]["name"]]
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


def test_replicaset_keeps_exactly_the_desired_number_of_pods(ctx):
    DeploymentController(ctx).reconcile()  # nothing to do without Deployments
    workload(ctx, "Deployment", "web", replicas=2)
    DeploymentController(ctx).reconcile()
    replicasets = ReplicaSetController(ctx)
    replicasets.reconcile()
    assert len(pods(ctx)) == 2
    (rs,) = ctx.store.list(K_RS, NS)
    smaller = copy.deepcopy(rs)
    smaller["spec"]["replicas"] = 1
    ctx.store.update(K_RS, smaller, bump_generation=True)
    replicasets.reconcile()
    assert len(pods(ctx)) == 1
    assert ctx.store.get(K_RS, NS, rs["metadata"]["name"])["status"]["replicas"] == 1


def test_deployment_is_available_and_complete_once_its_pods_are_ready(ctx):
    deployments, replicasets = DeploymentController(ctx), ReplicaSetController(ctx)
    d = workload(ctx, "Deployment", "web", replicas=2)
    deployments.reconcile()
    replicasets.reconcile()
    deployments.update_status()
    conds = {c["type"]: c for c in fresh(K_DEPLOY, d, ctx)["status"]["conditions"]}
    assert conds["Available"]["status"] == "False"
    assert conds["Progressing"]["reason"] == "ReplicaSetUpdated"
    for p in pods(ctx):
        run_pod(ctx, p)
    replicasets.reconcile()
    deployments.update_status()
    status = fresh(K_DEPLOY, d, ctx)["status"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert (status["readyReplicas"], status["availableReplicas"], status["unavailableReplicas"]) == (2, 2, 0)
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"


# ---- DaemonSet and StatefulSet ----------------------------------------------------------------------------
def add_nodes(ctx: Context, count: int, taints: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    group = NodegroupView("ng", count, "m5.large", {}, taints or [], created_at=0.0)
    first = len(ctx.store.list(K_NODE)) + 1
    return [ctx.objects.create_kind("v1", "Node", node_object(group, n)) for n in range(first, first + count)]


def test_daemonset_runs_one_pod_per_ready_node_it_tolerates(ctx):
    tainted = add_nodes(ctx, 1, [{"key": "dedicated", "value": "db", "effect": "NO_SCHEDULE"}])[0]
    plain = add_nodes(ctx, 2)
    lifecycle = NodeLifecycle(ctx)
    for node in [tainted, *plain]:
        lifecycle.set_ready(node, True)
    workload(ctx, "DaemonSet", "agent")
    daemonsets = DaemonSetController(ctx)
    daemonsets.reconcile()
    on = sorted(p["spec"]["nodeName"] for p in pods(ctx))
    assert on == sorted(n["metadata"]["name"] for n in plain)
    assert tainted["metadata"]["name"] not in on
    daemonsets.reconcile()
    assert len(pods(ctx)) == 2, "a second pass creates nothing more"


def test_daemonset_runs_only_on_nodes_its_required_node_affinity_selects(ctx):
    nodes = add_nodes(ctx, 3)
    lifecycle = NodeLifecycle(ctx)
    for node in nodes:
        lifecycle.set_ready(node, True)
    picked = nodes[1]["metadata"]["name"]
    term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [picked]}]}
    ds = workload(ctx, "DaemonSet", "agent")
    spec = copy.deepcopy(ds)
    spec["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }
    ctx.store.update(K_DS, spec, bump_generation=True)
    daemonsets = DaemonSetController(ctx)
    daemonsets.reconcile()
    on = sorted(p["spec"]["nodeName"] for p in pods(ctx))
    assert on == sorted(n["metadata"]["name"] for n in nodes if n["metadata"]["name"] != picked)


def test_an_agent_daemonset_runs_on_not_ready_nodes_and_replaces_its_pods_when_the_template_changes(ctx):
    add_nodes(ctx, 1)  # NotReady, with the not-ready taints: only an agent that tolerates everything runs there
    ds = workload(ctx, "DaemonSet", "agent")
    tolerant = copy.deepcopy(ds)
    tolerant["spec"]["template"]["spec"]["tolerations"] = [{"operator": "Exists"}]
    ds = ctx.store.update(K_DS, tolerant, bump_generation=False)
    daemonsets = DaemonSetController(ctx)
    daemonsets.reconcile()
    (old,) = pods(ctx)
    changed = copy.deepcopy(fresh(K_DS, ds, ctx))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
    ctx.store.update(K_DS, changed, bump_generation=True)
    daemonsets.reconcile()
    (new,) = pods(ctx)
    assert new["metadata"]["name"] != old["metadata"]["name"]
    assert new["metadata"]["labels"]["pod-template-generation"] == "2"
    daemonsets.update_status()
    status = fresh(K_DS, ds, ctx)["status"]
    assert (status["desiredNumberScheduled"], status["updatedNumberScheduled"], status["numberReady"]) == (1, 1, 0)


def test_daemonset_pods_leave_a_node_that_is_gone(ctx):
    (node,) = add_nodes(ctx, 1)
    NodeLifecycle(ctx).set_ready(node, True)
    workload(ctx, "DaemonSet", "agent")
    daemonsets = DaemonSetController(ctx)
    daemonsets.reconcile()
    assert len(pods(ctx)) == 1
    ctx.store.delete(K_NODE, "", node["metadata"]["name"])
    daemonsets.reconcile()
    assert pods(ctx) == []


def test_statefulset_names_its_pods_by_ordinal_and_removes_the_highest_on_scale_down(ctx):
    sts = workload(ctx, "StatefulSet", "db", replicas=3)
    statefulsets = StatefulSetController(ctx)
    statefulsets.reconcile()
    assert [p["metadata"]["name"] for p in pods(ctx)] == ["db-0", "db-1", "db-2"]
    smaller = copy.deepcopy(fresh(K_STS, sts, ctx))
    smaller["spec"]["replicas"] = 1
    ctx.store.update(K_STS, smaller, bump_generation=True)
    statefulsets.reconcile()
    statefulsets.reconcile()
    assert [p["metadata"]["name"] for p in pods(ctx)] == ["db-0"]
    assert fresh(K_STS, sts, ctx)["status"]["replicas"] == 1


# ---- Job and TTL ------------------------------------------------------------------------------------------
def conditions(ctx: Context, job: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in fresh(K_JOB, job, ctx).get("status", {}).get("conditions") or []}


def test_job_runs_a_pod_and_completes_when_it_succeeds(ctx):
    job = workload(ctx, "Job", "certs")
    jobs = JobController(ctx)
    jobs.reconcile()
    (pod,) = pods(ctx)
    assert fresh(K_JOB, job, ctx)["status"]["active"] == 1
    run_pod(ctx, pod, "Succeeded", ready=False)
    jobs.reconcile()
    status = fresh(K_JOB, job, ctx)["status"]
    assert conditions(ctx, job) == {"SuccessCriteriaMet": "True", "Complete": "True"}
    assert status["succeeded"] == 1 and status["completionTime"] == ctx.clock.iso()


def test_job_fails_once_more_pods_failed_than_the_backoff_limit(ctx):
    job = workload(ctx, "Job", "certs", backoffLimit=1)
    jobs = JobController(ctx)
    for _ in range(2):
        jobs.reconcile()
        (active,) = [p for p in pods(ctx) if p.get("status", {}).get("phase") != "Failed"]
        run_pod(ctx, active, "Failed", ready=False)
    jobs.reconcile()
    assert conditions(ctx, job) == {"FailureTarget": "True", "Failed": "True"}
    assert len(pods(ctx)) == 2, "no pod is started after the Job failed"


def test_a_suspended_job_starts_no_pod(ctx):
    workload(ctx, "Job", "later", suspend=True)
    JobController(ctx).reconcile()
    assert pods(ctx) == []


def test_a_finished_job_is_deleted_ttl_seconds_after_completion(ctx):
    job = workload(ctx, "Job", "certs", ttlSecondsAfterFinished=30)
    jobs, ttl = JobController(ctx), TtlAfterFinishedController(ctx)
    jobs.reconcile()
    run_pod(ctx, pods(ctx)[0], "Succeeded", ready=False)
    jobs.reconcile()
    ctx.clock.advance(29)  # type: ignore[attr-defined]
    ttl.reconcile()
    assert ctx.store.get(K_JOB, NS, "certs") is not None
    assert ctx.timers["ttl:" + job["metadata"]["uid"]] == pytest.approx(ctx.clock.monotonic() + 1)
    ctx.clock.advance(1)  # type: ignore[attr-defined]
    ttl.reconcile()
    assert ctx.store.get(K_JOB, NS, "certs") is None


# ---- garbage collection and namespaces --------------------------------------------------------------------
def test_garbage_collector_deletes_dependents_whose_owner_is_gone(ctx):
    workload(ctx, "Deployment", "web", replicas=1)
    DeploymentController(ctx).reconcile()
    ReplicaSetController(ctx).reconcile()
    ctx.store.delete(K_DEPLOY, NS, "web")
    gc = GarbageCollector(ctx)
    gc.reconcile()
    assert ctx.store.list(K_RS, NS) == []
    assert len(pods(ctx)) == 1, "one generation a pass, as owners disappear"
    gc.reconcile()
    assert pods(ctx) == []


def test_orphan_propagation_keeps_the_dependents(ctx):
    workload(ctx, "Deployment", "web", replicas=1)
    DeploymentController(ctx).reconcile()
    ctx.objects.delete(ctx.objects.kind("apps/v1", "Deployment"), NS, "web", propagation="Orphan")
    GarbageCollector(ctx).reconcile()
    (rs,) = ctx.store.list(K_RS, NS)
    assert rs["metadata"]["ownerReferences"] == []


def test_a_deleted_namespace_is_emptied_then_removed(ctx):
    ns_kind = ctx.objects.kind("v1", "Namespace")
    ctx.objects.create(ns_kind, {"metadata": {"name": "team"}}, None)
    ctx.objects.create_kind("v1", "ConfigMap", {"metadata": {"name": "cfg"}}, "team")
    ctx.objects.delete(ns_kind, "", "team")
    assert ctx.store.get(K_NS, "", "team")["status"]["phase"] == "Terminating"
    with pytest.raises(Exception, match="being terminated"):
        ctx.objects.create_kind("v1", "ConfigMap", {"metadata": {"name": "late"}}, "team")
    namespaces = NamespaceController(ctx)
    namespaces.reconcile()
    assert ctx.store.list(("", "configmaps"), "team") == []
    assert ctx.store.get(K_NS, "", "team") is not None
    namespaces.reconcile()
    assert ctx.store.get(K_NS, "", "team") is None


# ---- the manager -------------------------------------------------------------------------------------------
def test_one_manager_pass_takes_a_deployment_to_running_pods_on_ready_nodes_and_prunes_stale_timers(ctx):
    from collections import deque
    from types import SimpleNamespace

    from sandbox.kube.controllers import Controllers

    for node in add_nodes(ctx, 1):
        NodeLifecycle(ctx).set_ready(node, True)
    workload(ctx, "Deployment", "web", replicas=2)
    manager = Controllers(SimpleNamespace(objects=ctx.objects, request_log=deque()), ctx.config, clock=ctx.clock)
    manager.reconcile()
    assert [p["status"]["phase"] for p in pods(ctx)] == ["Running", "Running"]
    manager.timers.update({"gone-uid": 1.0, "run:gone-uid": 1.0, "node-ready:no-such-node": 1.0})
    manager.prune_timers()
    assert not {"gone-uid", "run:gone-uid", "node-ready:no-such-node"} & set(manager.timers)
