"""The cluster lock's pure decisions (tasks/lease.py): who may take the Lease, and what the Lease says."""

from __future__ import annotations

import pytest

from tasks.lease import (
    ANNOTATIONS,
    LEASE_SECONDS,
    Holder,
    LeaseView,
    lease_body,
    may_take,
    micro_time,
    read_lease,
    released_body,
)

NOW = 1_800_000_000.0
ME = Holder("install-stack", "brave-fox", "11111111-1111-1111-1111-111111111111", "host-a", 100)


def held(
    renewed_ago: float, host: str = "host-b", pid: int = 42, run_id: str | None = "run-2", holder: str = "other"
) -> LeaseView:
    return LeaseView(
        holder=holder,
        resource_version="7",
        renewed=NOW - renewed_ago,
        acquired=NOW - 300,
        duration=LEASE_SECONDS,
        transitions=3,
        host=host,
        pid=pid,
        flow_run_id=run_id,
    )


FREE = LeaseView(
    holder="", resource_version="8", renewed=NOW - 5, acquired=NOW - 300, duration=LEASE_SECONDS, transitions=4
)


@pytest.mark.parametrize(
    ("lease", "pid_alive", "run_state", "take", "kind", "reason"),
    [
        # free: no Lease yet, or released (holderIdentity cleared)
        (None, None, None, True, "free", "the lock is free"),
        (FREE, None, None, True, "free", "the lock is free"),
        # held and fresh, on another host: nothing can be known about its process; its run is not final here
        (held(5), None, None, False, "held", "held by other"),
        (held(5), None, "RUNNING", False, "held", "held by other"),
        (held(LEASE_SECONDS - 1), None, None, False, "held", "held by other"),
        # held and expired: the holder stopped renewing
        (held(LEASE_SECONDS), None, None, True, "expired", "its lease was not renewed: it expired 0 s ago"),
        (held(300), None, "RUNNING", True, "expired", "its lease was not renewed: it expired 240 s ago"),
        (
            LeaseView("other", "7", None, None, LEASE_SECONDS, 0),
            None,
            None,
            True,
            "expired",
            "its lease was not renewed: it was never renewed",
        ),
        # same host, pid gone: taken at once although fresh
        (held(1, host="host-a"), False, None, True, "process", "its process 42 on host-a no longer exists"),
        (held(1, host="host-a"), True, None, False, "held", "held by other"),
        # another host's "dead" pid proves nothing (pid_alive is only ever checked on the holder's own host)
        (held(1, host="host-b"), False, None, False, "held", "held by other"),
        # its flow run, readable on this run's API, is final
        (held(1), None, "CRASHED", True, "run", "its flow run is crashed"),
        (held(1), None, "COMPLETED", True, "run", "its flow run is completed"),
        (held(1), None, "CANCELLED", True, "run", "its flow run is cancelled"),
        (held(1), None, "PENDING", False, "held", "held by other"),
        # this run's own record (a re-take after a lost race on our own write)
        (held(1, holder=ME.identity), None, None, True, "mine", "this run holds it already"),
    ],
)
def test_who_may_take_the_lock(lease, pid_alive, run_state, take, kind, reason):
    d = may_take(lease, me=ME.identity, now=NOW, my_host="host-a", pid_alive=pid_alive, run_state=run_state)
    assert (d.take, d.kind, d.reason) == (take, kind, reason)


def test_micro_times_always_carry_six_digits_in_utc():
    assert micro_time(NOW) == "2027-01-15T08:00:00.000000Z"
    assert micro_time(NOW + 0.25) == "2027-01-15T08:00:00.250000Z"


def test_a_new_lease_records_the_holder_and_a_take_over_counts_a_transition():
    first = lease_body(ME, NOW, None)
    assert first["metadata"]["name"] == "eks-cilium-lock" and first["metadata"]["namespace"] == "kube-system"
    assert "resourceVersion" not in first["metadata"]
    assert first["spec"] == {
        "holderIdentity": "install-stack/brave-fox (11111111-1111-1111-1111-111111111111) on host-a pid 100",
        "leaseDurationSeconds": 60,
        "acquireTime": micro_time(NOW),
        "renewTime": micro_time(NOW),
        "leaseTransitions": 0,
    }
    notes = first["metadata"]["annotations"]
    assert notes[ANNOTATIONS + "host"] == "host-a" and notes[ANNOTATIONS + "pid"] == "100"
    assert notes[ANNOTATIONS + "flow-run-id"] == ME.run_id and notes[ANNOTATIONS + "flow"] == "install-stack"

    previous = {
        "metadata": {
            "name": "eks-cilium-lock",
            "namespace": "kube-system",
            "resourceVersion": "41",
            "annotations": {ANNOTATIONS + "pid": "42", ANNOTATIONS + "host": "host-b", "team": "net"},
        },
        "spec": {
            "holderIdentity": "other",
            "leaseDurationSeconds": 60,
            "renewTime": "2027-01-15T07:00:00.000000Z",
            "leaseTransitions": 3,
        },
    }
    taken = lease_body(ME, NOW, previous)
    assert taken["metadata"]["resourceVersion"] == "41", "the update is conditional on what was read"
    assert taken["spec"]["leaseTransitions"] == 4
    assert taken["metadata"]["annotations"]["team"] == "net", "other tools' annotations stay"
    assert taken["metadata"]["annotations"][ANNOTATIONS + "pid"] == "100"


def test_reading_a_lease_as_the_api_or_the_client_writes_it():
    raw = {
        "metadata": {
            "resourceVersion": "9",
            "annotations": {ANNOTATIONS + "host": "h", ANNOTATIONS + "pid": "77", ANNOTATIONS + "flow-run-id": "r"},
        },
        "spec": {
            "holderIdentity": "x",
            "leaseDurationSeconds": 30,
            "acquireTime": "2027-01-15T07:59:00+00:00",
            "renewTime": "2027-01-15T07:59:50.500000Z",
            "leaseTransitions": 2,
        },
    }
    view = read_lease(raw)
    assert view == LeaseView("x", "9", NOW - 9.5, NOW - 60, 30.0, 2, "h", 77, "r")
    assert view.describe(NOW) == "x, since 2027-01-15 07:59:00 UTC, renewed 10 s ago (lease 30 s)"
    assert read_lease({"metadata": {}, "spec": {}}).holder == ""


def test_releasing_clears_the_holder_and_keeps_the_record_of_who_held_it():
    mine = lease_body(ME, NOW, None)
    mine["metadata"]["resourceVersion"] = "12"
    free = released_body(mine, ME, NOW + 30)
    assert "holderIdentity" not in free["spec"] and free["metadata"]["resourceVersion"] == "12"
    assert free["spec"]["renewTime"] == micro_time(NOW + 30) and free["spec"]["leaseTransitions"] == 0
    assert free["metadata"]["annotations"] == {ANNOTATIONS + "last-holder": ME.identity}
    assert may_take(read_lease(free), me="someone", now=NOW, my_host="h", pid_alive=None, run_state=None).kind == "free"
