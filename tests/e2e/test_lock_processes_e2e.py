"""The cluster lock across processes and Prefect servers, with the real CLI (`eks-cilium install`), each CLI run
with its own temporary Prefect server (its own PREFECT_HOME, no PREFECT_API_URL):

- a CLI run and an in-process run (the session's Prefect API) cannot both hold the lock: two Prefect servers
  share nothing, the cluster's Lease is what both see;
- kill -9 of a CLI run holding the lock, with its temporary server and helm: the next run on this host takes the
  lock over at once (the holder's pid is gone), logs it once and converges.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.install_stack import run_install
from tasks.adapters.processes import pid_alive
from tasks.errors import PermanentError
from tasks.lease import read_lease
from tests.conftest import CONFIGS, ROOT
from tests.support.flows import CLUSTER, options, stack_for
from tests.support.leases import current_lease, lease_requests, nodes_held_back, wait_for_holder

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "eks-cilium")


def start_cli_install(sb, tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    """`eks-cilium install` in its own process group, with its own temporary Prefect server and database."""
    stack_file = tmp_path / f"{name}-stack.json"
    stack_file.write_text(json.dumps(stack_for(sb).model_dump(mode="json")))
    home = tmp_path / f"{name}-prefect"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONWARNINGS": "ignore",
            "EKS_CILIUM_HELM": str(ROOT / ".tools" / "bin" / "helm3"),
        }
    )
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen(
        [CLI, "install", "--stack", str(stack_file), "--config-dir", str(CONFIGS), "--env", "sandbox"],
        env=env,
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def test_a_cli_run_and_a_run_through_another_prefect_server_cannot_both_hold_the_lock(
    sandbox, prefect_harness, tmp_path
):
    with nodes_held_back(sandbox):
        proc, log = start_cli_install(sandbox, tmp_path, "cli")
        try:
            holder = read_lease(wait_for_holder(sandbox, timeout=300, pid=proc.pid)).holder
            with pytest.raises(PermanentError) as e:
                run_install(stack_for(sandbox), options(lock_wait_seconds=5))
            assert f"is held by {holder}" in str(e.value), str(e.value)
        except BaseException:
            stop(proc)
            raise
        finally:
            sandbox.clusters[CLUSTER].controllers.config.node_join_seconds = 0.0
        try:
            code = proc.wait(400)
        finally:
            stop(proc)
    out = log.read_text()
    assert code == 0 and "all checks passed" in out, out[-4000:]
    assert holder.startswith("install-stack/") and f" pid {proc.pid}" in holder
    assert read_lease(current_lease(sandbox)).holder == "", "the CLI run released the lock"  # type: ignore[arg-type]


def test_kill_9_of_a_cli_run_holding_the_lock_is_taken_over_at_once_by_the_next_run(
    sandbox, prefect_harness, tmp_path, lock_log
):
    with nodes_held_back(sandbox):
        proc, log = start_cli_install(sandbox, tmp_path, "killed")
        try:
            held = read_lease(wait_for_holder(sandbox, timeout=300, pid=proc.pid))
            family = [proc.pid, *descendants(proc.pid)]
            assert any("uvicorn" in cmdline(p) for p in family), [cmdline(p) for p in family]  # its temporary server
        finally:
            stop(proc)  # SIGKILL to the CLI, its temporary Prefect server and helm: nothing runs a cleanup
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(pid_alive(p) for p in family):
            time.sleep(0.1)
        assert not [p for p in family if pid_alive(p)], "every process of the killed run is gone"
    assert proc.returncode == -signal.SIGKILL
    lease = read_lease(current_lease(sandbox))  # type: ignore[arg-type]
    assert lease.holder == held.holder, "nobody released the dead run's lock"

    killed_at = time.time()
    result = run_install(stack_for(sandbox), options(lock_wait_seconds=30))
    assert result["ok"] is True, result
    reads, writes = lease_requests(sandbox, killed_at, "GET"), lease_requests(sandbox, killed_at, "PUT")
    took = writes[0]["t"] - reads[0]["t"]
    assert took < 3, f"the take-over took {took:.1f} s after the first look at the Lease"
    assert writes[0]["t"] - lease.renewed < lease.duration, "taken before the dead run's lease expired"  # type: ignore[operator]
    takeovers = [m for _, m in lock_log if m.startswith("took over the cluster lock")]
    assert (
        len(takeovers) == 1 and f"its process {proc.pid} on " in takeovers[0] and "no longer exists" in takeovers[0]
    ), lock_log
    print(
        f"\nkill -9: lock taken over {took:.2f} s after the next run first read it; "
        f"converged {time.time() - killed_at:.1f} s after the kill"
    )
