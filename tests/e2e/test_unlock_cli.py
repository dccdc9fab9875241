"""`eks-cilium unlock --confirm CLUSTER`: the operators' force-unlock, like `terraform force-unlock`. It refuses
a confirmation that is not the stack's cluster name, shows who held the lock and deletes the Lease; it needs no
Prefect server (the cluster is reached the way the flows reach it: DescribeCluster + the exec credential plugin)."""

from __future__ import annotations

import re

import pytest

from flows.cli import main
from tests.support.leases import current_lease, write_foreign_lease

HOLDER = "install-stack/stuck-run (00000000-0000-4000-8000-000000000000) on build-agent-7 pid 4242"


def test_unlock_refuses_a_wrong_cluster_name_then_shows_the_holder_and_removes_the_lock(sandbox, capsys):
    write_foreign_lease(sandbox, holder=HOLDER, host="build-agent-7", pid=4242, renewed_ago=2)

    assert main(["unlock", "--confirm", "isovalent-dem0", "--env", "sandbox"]) == 1
    err = capsys.readouterr().err
    assert "force-unlock of isovalent-demo was not confirmed" in err and "--confirm isovalent-demo" in err, err
    assert current_lease(sandbox) is not None, "a refused unlock changes nothing"

    assert main(["unlock", "--confirm", "isovalent-demo", "--env", "sandbox"]) == 0
    out = capsys.readouterr().out
    assert f"the lock (Lease kube-system/eks-cilium-lock) is held by {HOLDER}" in out, out
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, renewed \d+ s ago", out), out
    assert "may still be running" in out and "lock removed" in out, out
    assert current_lease(sandbox) is None

    assert main(["unlock", "--confirm", "isovalent-demo", "--env", "sandbox"]) == 0
    assert "no lock" in capsys.readouterr().out


def test_unlock_needs_the_confirmation(capsys):
    with pytest.raises(SystemExit) as e:
        main(["unlock"])
    assert e.value.code == 2 and "--confirm" in capsys.readouterr().err
