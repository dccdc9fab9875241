"""A real Prefect server for the end-to-end tests that operate through Prefect (API, workers, the UI)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import CONFIGS, ROOT, tool_env

PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """A Prefect server with its UI on a free loopback port, the eks-cilium work pool and our deployments
    (scripts/deploy); yields the environment that points a process at it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "true",
    }
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        raise AssertionError(f"prefect server did not start in 120 s; see {home / 'server.log'}")
    try:
        cli(env, "work-pool", "create", "eks-cilium", "--type", "process")
        deploy = subprocess.run(
            [str(ROOT / "scripts" / "deploy")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert deploy.returncode == 0, deploy.stderr
        assert "install-stack/install-stack" in deploy.stdout and "strict parameter schemas" in deploy.stdout
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def cli(env, *args, check=True):
    proc = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


class Workers:
    def __init__(self, env: dict[str, str], count: int, home: Path, limit: int = 1) -> None:
        self.procs = []
        for i in range(count):
            log = (home / f"worker-{i}.log").open("w")
            self.procs.append(
                subprocess.Popen(
                    [
                        PREFECT,
                        "worker",
                        "start",
                        "--pool",
                        "eks-cilium",
                        "--limit",
                        str(limit),
                        "--name",
                        f"test-worker-{i}",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

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
    env = {
        **server_env,
        **{k: v for k, v in sandbox.env().items() if k != "KUBECONFIG"},
        **tool_env(home),
        "EKS_CILIUM_HOME": str(ROOT),
        "EKS_CILIUM_HELM": str(ROOT / ".tools" / "bin" / "helm3"),
    }
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


def fleet_members(tmp: Path, names: list[str], repo_url: str, poll_seconds: float) -> list:
    """One fleet member per sandbox cluster: its own configs directory, the sandbox environment, a fast poll."""
    from flows.fleet import FleetMember
    from tasks.model import Stack
    from tasks.options import RunOptions

    members = []
    for n in names:
        cfg, stack = cluster_configs(tmp, n, repo_url)
        members.append(
            FleetMember(
                stack=Stack.model_validate(stack),
                options=RunOptions(config_dir=str(cfg), environment="sandbox", poll_interval_seconds=poll_seconds),
            )
        )
    return members


def api_settings(env):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]})
