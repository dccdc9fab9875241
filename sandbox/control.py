"""`eks-cilium sandbox up|status|down` and `install --sandbox`: one sandbox per state directory, detected when
stale (its process is gone) and cleaned. Everything binds to 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from sandbox.aws import NodegroupBehaviour
from sandbox.kube.controllers import SimConfig
from sandbox.runner import ClusterProfile, Sandbox, SandboxConfig
from tasks.adapters.processes import pid_alive

PROFILES = {
    "fresh": ClusterProfile(),
    "default-addons": ClusterProfile(default_addons=True),
    "no-servicemonitor-crd": ClusterProfile(servicemonitor_crd=False),
    "existing-nodegroup": ClusterProfile(preexisting_nodegroup=True),
}


def _config(state_dir: Path, clusters: list[str], profile: str, realistic: bool) -> SandboxConfig:
    prof = PROFILES[profile]
    sim = SimConfig()
    if realistic:
        sim = SimConfig(
            pod_start_seconds=(1.0, 3.0), node_join_seconds=15.0, node_ready_seconds=1.0, job_run_seconds=2.0
        )
        prof = ClusterProfile(
            **{**prof.__dict__, "nodegroup": NodegroupBehaviour(active_after_seconds=20.0, fail_after_seconds=300.0)}
        )
    return SandboxConfig(clusters=clusters, profile=prof, sim=sim, state_dir=state_dir)


def read_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "state.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def running(state_dir: Path) -> dict[str, Any] | None:
    """The state of a live sandbox, or None; a stale state directory is cleaned."""
    state = read_state(state_dir)
    if state is None:
        return None
    if pid_alive(int(state.get("pid", 0))):
        try:
            with urllib.request.urlopen(state["control_url"] + "/_sandbox/status", timeout=5) as r:
                state["status"] = json.loads(r.read())
            return state
        except (urllib.error.URLError, OSError):
            pass
    print(f"sandbox: removing stale state in {state_dir} (process {state.get('pid')} is gone)", file=sys.stderr)
    clean(state_dir)
    return None


def clean(state_dir: Path) -> None:
    if state_dir.exists():
        shutil.rmtree(state_dir, ignore_errors=True)


def helm_homes(state_dir: Path) -> dict[str, str]:
    """helm's repository config for sandbox runs lives in the state dir, so the user's own repos stay untouched."""
    base = state_dir.resolve() / "helm"
    return {
        "HELM_CONFIG_HOME": str(base / "config"),
        "HELM_CACHE_HOME": str(base / "cache"),
        "HELM_DATA_HOME": str(base / "data"),
    }


def serve(state_dir: Path, clusters: list[str], profile: str, realistic: bool) -> int:
    """Foreground: start, print how to use it, run until SIGINT/SIGTERM."""
    if running(state_dir):
        print(f"sandbox: already running (state in {state_dir}); `eks-cilium sandbox down` stops it", file=sys.stderr)
        return 1
    clean(state_dir)
    sb = Sandbox(_config(state_dir, clusters, profile, realistic))
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sb.start()
    env_file = state_dir / "sandbox.env"
    with env_file.open("a") as fh:
        fh.write("".join(f"export {k}={v}\n" for k, v in helm_homes(state_dir).items()))
    for name, h in sb.clusters.items():
        print(f"sandbox: cluster {name}: API https://127.0.0.1:{h.port}  kubeconfig {h.kubeconfig}", flush=True)
    print(f"sandbox: AWS (moto) {sb.aws.endpoint_url}  charts {sb.chart_repo_url}", flush=True)
    print(f"sandbox: ready - `source {env_file}` to use it; stop with `eks-cilium sandbox down`", flush=True)
    (state_dir / "ready").write_text(str(os.getpid()))
    try:
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        sb.stop()
        clean(state_dir)
    return 0


def up(state_dir: Path, clusters: list[str], profile: str, realistic: bool, detach: bool) -> int:
    if not detach:
        return serve(state_dir, clusters, profile, realistic)
    state = start_detached(state_dir, clusters, profile, realistic)
    print(f"sandbox: running in the background (pid {state['pid']}); `source {state_dir / 'sandbox.env'}` to use it")
    return 0


def start_detached(
    state_dir: Path, clusters: list[str], profile: str = "fresh", realistic: bool = False, timeout: float = 90.0
) -> dict[str, Any]:
    existing = running(state_dir)
    if existing:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir.parent / f"{state_dir.name}.log").open("w")
    cmd = [
        sys.executable,
        "-m",
        "sandbox.control",
        str(state_dir),
        ",".join(clusters),
        profile,
        "1" if realistic else "0",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / "ready").exists():
            state = running(state_dir)
            if state:
                return state
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"the sandbox did not start; see {log.name}")


def status(state_dir: Path) -> int:
    state = running(state_dir)
    if state is None:
        print("sandbox: not running")
        return 1
    st = state["status"]
    print(f"sandbox: running (pid {state['pid']}), AWS {st['aws_endpoint']}, charts {st['chart_repo']}")
    for name, c in st["clusters"].items():
        print(
            f"  cluster {name}: port {c['port']}, {c['ready_nodes']}/{c['nodes']} nodes Ready, {c['objects']} objects, "
            f"{c['requests']} requests, {len(c['faults'])} fault rule(s), {len(c['pod_policies'])} pod polic(y/ies)"
        )
    print(f"  env file: {state_dir / 'sandbox.env'}")
    return 0


def down(state_dir: Path, out: TextIO | None = None) -> int:
    """Stop the sandbox; `out` is where to say so (the CLI's --output json keeps stdout for the JSON)."""
    out = out or sys.stdout
    state = read_state(state_dir)
    if state is None:
        print("sandbox: not running", file=out)
        clean(state_dir)
        return 0
    pid = int(state.get("pid", 0))
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not pid_alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    clean(state_dir)
    print("sandbox: stopped", file=out)
    return 0


def env_for(state: dict[str, Any], state_dir: Path) -> dict[str, str]:
    return {**state["env"], **helm_homes(state_dir)}


if __name__ == "__main__":
    # python -m sandbox.control STATE_DIR CLUSTERS PROFILE REALISTIC (used by start_detached)
    sys.exit(serve(Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3], sys.argv[4] == "1"))
