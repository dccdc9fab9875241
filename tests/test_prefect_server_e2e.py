"""Operating through Prefect for real: a Prefect server, `prefect deploy --all`, process workers, runs started
through the API against the sandbox, and a fleet of clusters shared by two workers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, ROOT, start_sandbox, tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"prefect server did not start; see {home / 'server.log'}")
    cli(env, "work-pool", "create", "eks-cilium", "--type", "process")
    deploy = subprocess.run([str(ROOT / "scripts" / "deploy")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stderr
    assert "install-stack/install-stack" in deploy.stdout and "strict parameter schemas" in deploy.stdout
    yield env
    proc.terminate()
    proc.wait(30)


def cli(env, *args, check=True):
    proc = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


class Workers:
    def __init__(self, env: dict[str, str], count: int, home: Path) -> None:
        self.procs = []
        for i in range(count):
            log = (home / f"worker-{i}.log").open("w")
            self.procs.append(subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", "eks-cilium", "--limit", "1", "--name", f"test-worker-{i}"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def worker_env(server_env: dict[str, str], sandbox, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {**server_env, **{k: v for k, v in sandbox.env().items() if k != "KUBECONFIG"}, **tool_env(home),
           "EKS_CILIUM_HOME": str(ROOT), "EKS_CILIUM_HELM": str(ROOT / ".tools" / "bin" / "helm3")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def cluster_configs(tmp: Path, name: str, repo_url: str) -> tuple[Path, dict]:
    """A configs directory for cluster `name` (the nodegroup file names its cluster) and its stack."""
    cfg = tmp / f"configs-{name}"
    shutil.copytree(CONFIGS, cfg)
    ng = cfg / "nodegroup.yaml"
    ng.write_text(ng.read_text().replace("name: isovalent-demo", f"name: {name}"))
    from tasks.model import load_stack

    stack = load_stack(cfg, "sandbox", patch={"cluster": {"name": name}, "chart_repository": {"url": repo_url}})
    return cfg, stack.model_dump(mode="json")


def api_settings(env):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]})


def test_install_started_through_the_api_runs_on_a_worker_to_completion(prefect_server, tmp_path, monkeypatch, isolated_tools):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    sb = start_sandbox(tmp_path, monkeypatch)
    workers = Workers(worker_env(prefect_server, sb, tmp_path / "worker-home"), 1, tmp_path)
    try:
        cfg, stack = cluster_configs(tmp_path, "isovalent-demo", sb.chart_repo_url)
        params = {"stack": stack, "options": {"config_dir": str(cfg), "environment": "sandbox", "poll_interval_seconds": 0.2}}
        key = f"ticket-{uuid.uuid4()}"
        with api_settings(prefect_server):
            run = run_deployment("install-stack/install-stack", parameters=params, timeout=400, idempotency_key=key)
            assert run.state.is_completed(), f"{run.state.name}: {run.state.message}"
            again = run_deployment("install-stack/install-stack", parameters=params, timeout=0, idempotency_key=key)
            assert again.id == run.id, "the same idempotency key must not start a second install"
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            with get_client(sync_client=True) as client:
                arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["verification-isovalent-demo"])))
            assert arts and "All checks passed" in str(arts[0].data)
            assert "| ✅ | nodes Ready | 2 Ready | 2 Ready of 2 |" in str(arts[0].data)
    finally:
        workers.stop()
        sb.stop()


@pytest.mark.parametrize("params, key", [({"options": {"dry_rn": True}}, "dry_rn"), ({"optoins": {}}, "optoins"),
                                         ({"options": {"timeouts": {"nodes": "soon"}}}, "soon")])
def test_bad_parameters_are_refused_by_the_api_naming_the_key(prefect_server, params, key):
    """Unknown keys (nested or top level) and wrong types are refused when the run is created: nothing runs."""
    from prefect.deployments import run_deployment

    with api_settings(prefect_server), pytest.raises(Exception) as e:
        run_deployment("install-stack/install-stack", parameters=params, timeout=0)
    assert key in str(e.value)


def test_fleet_of_five_clusters_checked_by_two_workers(prefect_server, tmp_path, monkeypatch, isolated_tools, capsys):
    from flows.fleet import FleetAction, FleetMember, fleet
    from sandbox.runner import ClusterProfile
    from tasks.model import Stack
    from tasks.options import RunOptions

    names = [f"fleet-{i}" for i in range(1, 6)]
    sb = start_sandbox(tmp_path, monkeypatch, clusters=names, profile=ClusterProfile())
    workers = Workers(worker_env(prefect_server, sb, tmp_path / "worker-home"), 2, tmp_path)
    try:
        members = []
        for n in names:
            cfg, stack = cluster_configs(tmp_path, n, sb.chart_repo_url)
            members.append(FleetMember(stack=Stack.model_validate(stack),
                                       options=RunOptions(config_dir=str(cfg), environment="sandbox", poll_interval_seconds=0.2)))
        with api_settings(prefect_server):
            installed = fleet(members=members, action=FleetAction.install, max_concurrent=10)
            assert installed["counts"] == {"ok": 5, "drifted": 0, "error": 0}, installed["rows"]
            one = fleet(members=members[:1], action=FleetAction.check_drift, max_concurrent=10)
            five = fleet(members=members, action=FleetAction.check_drift, max_concurrent=10)
        assert one["counts"]["ok"] == 1 and five["counts"] == {"ok": 5, "drifted": 0, "error": 0}, five["rows"]
        assert sorted(r["cluster"] for r in five["rows"]) == [f"us-east-1/{n}" for n in names]
        with capsys.disabled():
            print(f"\nfleet timings: install 5 = {installed['seconds']} s, drift 1 = {one['seconds']} s, drift 5 = {five['seconds']} s "
                  f"(2 workers)")
    finally:
        workers.stop()
        sb.stop()
