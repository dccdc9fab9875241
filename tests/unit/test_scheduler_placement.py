"""The emulator scheduler's placement decision as a table: nodeSelector, required node affinity, taints and
tolerations, required pod anti-affinity; and the Unschedulable message a Deployment's third replica gets."""

from __future__ import annotations

import pytest

from sandbox.kube.controllers.base import K_NODE, K_POD, Context
from sandbox.kube.controllers.scheduler import ANTI_AFFINITY, NODE_AFFINITY, Scheduler, fits

HOST = "kubernetes.io/hostname"


def node(name, labels=None, taints=None):
    return {"metadata": {"name": name, "labels": {HOST: name, **(labels or {})}}, "spec": {"taints": taints or []}}


def pod(name="p", labels=None, node_name=None, namespace="default", **spec):
    s = dict(spec)
    if node_name:
        s["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": s, "status": {}}


def required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key, op, *values):
    return {"matchExpressions": [{"key": key, "operator": op, **({"values": list(values)} if values else {})}]}


ANTI = {
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "op"}}, "topologyKey": HOST}
        ]
    }
}
ZONE_A = node("a", {"zone": "a", "gpu": "1"})
TAINTED = node("t", taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
EXECUTE = node("x", taints=[{"key": "gone", "effect": "NoExecute"}])
SOFT = node("s", taints=[{"key": "soft", "effect": "PreferNoSchedule"}])

CASES = [
    ("no constraints", pod(), ZONE_A, [], ""),
    ("nodeSelector match", pod(nodeSelector={"zone": "a"}), ZONE_A, [], ""),
    ("nodeSelector miss", pod(nodeSelector={"zone": "b"}), ZONE_A, [], NODE_AFFINITY),
    ("In match", pod(affinity=required(expr("zone", "In", "a", "b"))), ZONE_A, [], ""),
    ("In miss", pod(affinity=required(expr("zone", "In", "b"))), ZONE_A, [], NODE_AFFINITY),
    ("NotIn match", pod(affinity=required(expr("zone", "NotIn", "b"))), ZONE_A, [], ""),
    ("NotIn miss", pod(affinity=required(expr("zone", "NotIn", "a"))), ZONE_A, [], NODE_AFFINITY),
    ("Exists match", pod(affinity=required(expr("gpu", "Exists"))), ZONE_A, [], ""),
    ("Exists miss", pod(affinity=required(expr("tpu", "Exists"))), ZONE_A, [], NODE_AFFINITY),
    ("DoesNotExist match", pod(affinity=required(expr("tpu", "DoesNotExist"))), ZONE_A, [], ""),
    ("DoesNotExist miss", pod(affinity=required(expr("gpu", "DoesNotExist"))), ZONE_A, [], NODE_AFFINITY),
    ("terms are ORed", pod(affinity=required(expr("zone", "In", "b"), expr("gpu", "Exists"))), ZONE_A, [], ""),
    ("empty term matches nothing", pod(affinity=required({})), ZONE_A, [], NODE_AFFINITY),
    (
        "matchFields metadata.name",
        pod(affinity=required({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]})),
        ZONE_A,
        [],
        "",
    ),
    ("untolerated NoSchedule", pod(), TAINTED, [], "had untolerated taint {dedicated: infra}"),
    (
        "Equal toleration",
        pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "infra"}]),
        TAINTED,
        [],
        "",
    ),
    (
        "Equal wrong value",
        pod(tolerations=[{"key": "dedicated", "value": "x"}]),
        TAINTED,
        [],
        "had untolerated taint {dedicated: infra}",
    ),
    (
        "Exists toleration",
        pod(tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]),
        TAINTED,
        [],
        "",
    ),
    (
        "Exists wrong effect",
        pod(tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
        TAINTED,
        [],
        "had untolerated taint {dedicated: infra}",
    ),
    ("empty key Exists tolerates all", pod(tolerations=[{"operator": "Exists"}]), EXECUTE, [], ""),
    ("untolerated NoExecute", pod(), EXECUTE, [], "had untolerated taint {gone: }"),
    ("PreferNoSchedule never blocks", pod(), SOFT, [], ""),
    (
        "anti-affinity: peer on the node",
        pod(labels={"app": "op"}, affinity=ANTI),
        ZONE_A,
        [(pod("o", {"app": "op"}), ZONE_A)],
        ANTI_AFFINITY,
    ),
    (
        "anti-affinity: peer elsewhere",
        pod(labels={"app": "op"}, affinity=ANTI),
        ZONE_A,
        [(pod("o", {"app": "op"}), node("b"))],
        "",
    ),
    (
        "anti-affinity: other namespace",
        pod(labels={"app": "op"}, affinity=ANTI),
        ZONE_A,
        [(pod("o", {"app": "op"}, namespace="x"), ZONE_A)],
        "",
    ),
    (
        "anti-affinity: other labels",
        pod(labels={"app": "op"}, affinity=ANTI),
        ZONE_A,
        [(pod("o", {"app": "web"}), ZONE_A)],
        "",
    ),
    (
        "anti-affinity: placed pod's term",
        pod(labels={"app": "op"}),
        ZONE_A,
        [(pod("o", {"app": "x"}, affinity=ANTI), ZONE_A)],
        ANTI_AFFINITY,
    ),
]


@pytest.mark.parametrize(("pod_", "node_", "placed", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fits(pod_, node_, placed, why):
    assert fits(pod_, node_, placed) == (why == "", why)


def test_three_replicas_with_hostname_anti_affinity_on_two_nodes_leave_one_pending():
    ctx = Context.fresh()
    for name in ("n1", "n2"):
        ctx.store.create(K_NODE, node(name))
    for i in range(3):
        ctx.store.create(K_POD, pod(f"op-{i}", {"app": "op"}, affinity=ANTI))
    Scheduler(ctx).reconcile()
    pods = {p["metadata"]["name"]: p for p in ctx.store.list(K_POD)}
    assert sorted(p["spec"].get("nodeName", "") for p in pods.values()) == ["", "n1", "n2"]
    pending = next(p for p in pods.values() if not p["spec"].get("nodeName"))
    (condition,) = pending["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("PodScheduled", "False", "Unschedulable")
    assert condition["message"] == "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."
