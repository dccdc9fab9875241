"""Readiness verdicts agree with `kubectl rollout status` (1.33): a table per class of known disagreement, and an
oracle that asks the real kubectl binary about objects whose status the test writes into the emulator."""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import subprocess
from typing import Any

import pytest

from tasks import readiness
from tests.conftest import TOOLS


# ---- tables (pure) -------------------------------------------------------------------------------------------
def ds(strategy: str | None = "RollingUpdate", gen=1, observed=1, desired=2, updated=2, available=2):
    spec: dict[str, Any] = {} if strategy is None else {"updateStrategy": {"type": strategy}}
    return {
        "metadata": {"name": "cilium", "generation": gen},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "desiredNumberScheduled": desired,
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
        },
    }


def verdict_class(v: readiness.Verdict) -> str:
    return "failed" if v.failed else "ready" if v.ready else "waiting"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (ds(), "ready"),
        (ds("OnDelete"), "failed"),  # kubectl: an error at once, whatever the counts
        (ds("OnDelete", updated=0, available=0), "failed"),
        (ds(None), "failed"),  # no strategy type is not RollingUpdate either
        (ds(gen=2, observed=1), "waiting"),
        (ds(gen=2, observed=1, updated=0), "waiting"),
        (ds(updated=1), "waiting"),
        (ds(available=1), "waiting"),
        (ds(desired=0, updated=0, available=0), "ready"),
    ],
)
def test_daemonset_verdict_matches_kubectl_rollout_status(obj, expected):
    assert verdict_class(readiness.daemonset(obj)) == expected


def test_daemonset_not_rolling_update_says_what_kubectl_says():
    v = readiness.daemonset(ds("OnDelete"))
    assert v.failed and "rollout status is only available for RollingUpdate strategy type" in v.summary
    assert "OnDelete" in v.summary


def test_daemonset_expected_nodes_stays_on_top_of_kubectl():
    assert verdict_class(readiness.daemonset(ds(desired=1, updated=1, available=1), expected_nodes=2)) == "waiting"
    assert verdict_class(readiness.daemonset(ds(), expected_nodes=2)) == "ready"


_MISSING = object()


def dep(replicas: Any = 2, *, gen=1, observed=1, total=None, updated=2, available=2, conditions=None):
    spec = {} if replicas is _MISSING else {"replicas": replicas}
    status = {
        "observedGeneration": observed,
        "replicas": updated if total is None else total,
        "updatedReplicas": updated,
        "readyReplicas": available,
        "availableReplicas": available,
    }
    if conditions is not None:
        status["conditions"] = conditions
    return {"metadata": {"name": "hubble-relay", "generation": gen}, "spec": spec, "status": status}


AVAILABLE = {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
PROGRESSED = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "hubble-relay-1" has timed out progressing.',
}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (dep(conditions=[AVAILABLE, PROGRESSED]), "ready"),
        # a stale ProgressDeadlineExceeded and a new generation: kubectl waits for the controller first
        (dep(gen=3, observed=2, conditions=[AVAILABLE, DEADLINE]), "waiting"),
        (dep(updated=1, available=1, conditions=[AVAILABLE, DEADLINE]), "failed"),
        (dep(conditions=[DEADLINE]), "failed"),
        # complete counts with the Available condition missing or False: kubectl never reads that condition
        (dep(conditions=[]), "ready"),
        (dep(conditions=None), "ready"),
        (dep(conditions=[{**AVAILABLE, "status": "False"}, PROGRESSED]), "ready"),
        # available is compared with the updated replicas, not with spec
        (dep(replicas=2, total=3, updated=3, available=2), "waiting"),
        (dep(replicas=2, updated=2, available=1), "waiting"),
        (dep(replicas=2, total=3, updated=2, available=2), "waiting"),  # an old replica pending termination
        (dep(replicas=2, updated=1, available=1), "waiting"),
        # spec.replicas null or missing: the replica check is skipped
        (dep(replicas=None, updated=1, available=1), "ready"),
        (dep(replicas=_MISSING, updated=0, available=0), "ready"),
        (dep(replicas=None, total=2, updated=1, available=1), "waiting"),
        (dep(replicas=0, updated=0, available=0), "ready"),
    ],
)
def test_deployment_verdict_matches_kubectl_rollout_status(obj, expected):
    assert verdict_class(readiness.deployment(obj)) == expected


def test_deployment_below_the_rendered_replicas_fails_naming_both_numbers():
    v = readiness.deployment(dep(replicas=0, updated=0, available=0), expected_replicas=1)
    assert verdict_class(v) == "failed"
    assert "0" in v.summary and "1" in v.summary and "renders" in v.summary
    assert readiness.deployment(dep(replicas=3, updated=3, available=3), expected_replicas=2).ready


# ---- oracle: the real kubectl against the emulator ------------------------------------------------------------
NS = "rollout-oracle"
K_DEPLOY, K_DS = ("apps", "deployments"), ("apps", "daemonsets")
TEMPLATE = {"metadata": {"labels": {"app": "oracle"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def _deployment_cases() -> list[dict[str, Any]]:
    cases = []
    gens = [(1, 1), (3, 2), (2, 5)]
    replicas: list[Any] = [_MISSING, 0, 2]
    counts = [(0, 0, 0), (2, 2, 2), (3, 2, 2), (2, 2, 1), (3, 3, 2), (2, 1, 1), (1, 1, 1)]
    conditions = [None, [AVAILABLE, PROGRESSED], [AVAILABLE, DEADLINE], [{**AVAILABLE, "status": "False"}, PROGRESSED]]
    for (gen, obs), rep, (total, updated, available), conds in itertools.product(gens, replicas, counts, conditions):
        spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "oracle"}}, "template": TEMPLATE}
        if rep is not _MISSING:
            spec["replicas"] = rep
        status: dict[str, Any] = {
            "observedGeneration": obs,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
        }
        if conds is not None:
            status["conditions"] = [{**c, "lastUpdateTime": "2025-01-01T00:00:00Z"} for c in conds]
        cases.append({"generation": gen, "spec": spec, "status": status})
    return cases


def _daemonset_cases() -> list[dict[str, Any]]:
    cases = []
    strategies: list[dict[str, Any] | None] = [
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        {"type": "OnDelete"},
        None,
    ]
    gens = [(1, 1), (2, 1), (1, 3)]
    counts = [(0, 0, 0), (2, 2, 2), (2, 1, 2), (2, 2, 1), (2, 1, 1), (1, 2, 2)]
    for strategy, (gen, obs), (desired, updated, available) in itertools.product(strategies, gens, counts):
        spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "oracle"}}, "template": TEMPLATE}
        if strategy is not None:
            spec["updateStrategy"] = strategy
        status = {
            "observedGeneration": obs,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": available,
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
        }
        cases.append({"generation": gen, "spec": spec, "status": status})
    return cases


def _write_objects(
    sandbox, cluster: str, kind_key: tuple[str, str], kind: str, prefix: str, cases: list[dict[str, Any]]
) -> list[str]:
    """Stored as given (no defaulting, the simulated controllers stopped): kubectl and the client read these bytes."""
    emu = sandbox.clusters[cluster].emulator
    names = [f"{prefix}{i}" for i in range(len(cases))]

    def write() -> None:
        for name, case in zip(names, cases, strict=True):
            obj = {
                "apiVersion": "apps/v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": NS},
                "spec": copy.deepcopy(case["spec"]),
            }
            stored = emu.store.create(kind_key, obj)
            stored["metadata"]["generation"] = case["generation"]
            stored["status"] = copy.deepcopy(case["status"])
            emu.store.update(kind_key, stored, bump_generation=False)

    sandbox.call(write)
    return names


def _kubectl_class(kubeconfig: str, resource: str, name: str) -> tuple[str, str]:
    proc = subprocess.run(
        [
            str(TOOLS / "kubectl"),
            "--kubeconfig",
            kubeconfig,
            "rollout",
            "status",
            f"{resource}/{name}",
            "-n",
            NS,
            "--watch=false",
            "--request-timeout=20s",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return "failed", out
    if "successfully rolled out" in proc.stdout:
        return "ready", out
    assert "Waiting" in proc.stdout, out
    return "waiting", out


def test_verdicts_agree_with_the_real_kubectl_on_every_status_tuple(sandbox):
    from tasks.adapters.kube import Kube

    cluster = "isovalent-demo"
    handle = sandbox.clusters[cluster]
    # The simulated controllers would rewrite every status: stop them, so the status stays what the test wrote.
    asyncio.run_coroutine_threadsafe(handle.controllers.stop(), sandbox.loop).result(10)
    rt = handle.emulator.registry.by_kind("v1", "Namespace")
    sandbox.call(lambda: handle.emulator.create_object(rt, {"metadata": {"name": NS}}, None))
    kubeconfig = str(handle.kubeconfig)
    deployments = _write_objects(sandbox, cluster, K_DEPLOY, "Deployment", "d", _deployment_cases())
    daemonsets = _write_objects(sandbox, cluster, K_DS, "DaemonSet", "ds", _daemonset_cases())

    disagreements = []
    seen: set[tuple[str, str]] = set()
    with Kube(kubeconfig) as kube:
        for kind, resource, names, judge in (
            ("Deployment", "deployment", deployments, readiness.deployment),
            ("DaemonSet", "daemonset", daemonsets, readiness.daemonset),
        ):
            for name in names:
                obj = kube.get(kind, NS, name)
                assert obj is not None
                try:
                    ours = verdict_class(judge(obj))
                except Exception as e:  # a crash is a disagreement too
                    ours = f"crash {type(e).__name__}: {e}"
                theirs, said = _kubectl_class(kubeconfig, resource, name)
                seen.add((kind, theirs))
                if ours != theirs:
                    disagreements.append(
                        f"{kind} {name} spec={obj.get('spec', {}).get('replicas', '-')} "
                        f"strategy={(obj['spec'].get('updateStrategy') or {}).get('type')} "
                        f"gen={obj['metadata'].get('generation')} status={obj.get('status')}: "
                        f"ours {ours}, kubectl {theirs} ({said})"
                    )
    total = len(deployments) + len(daemonsets)
    assert not disagreements, f"{len(disagreements)} of {total} tuples disagree:\n" + "\n".join(disagreements)
    # The table reaches every verdict of kubectl for both kinds.
    assert seen == {(k, c) for k in ("Deployment", "DaemonSet") for c in ("ready", "waiting", "failed")}
