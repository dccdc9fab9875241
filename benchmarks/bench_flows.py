"""Benchmarks of the flows on the sandbox with realistic delays (prints numbers; asserts nothing).

Delays, divided by --scale (printed): a nodegroup's nodes join 60 s after CreateNodegroup, each pod's image pull
takes 5-15 s (uniform; for a) a function of (--seed, image, node), so both orchestrations see the same delays).
Everything runs against a real Prefect server started here.

a) install wall time vs the critical path (the longest chain of the simulated delays that actually occurred:
   nodes join -> slowest Cilium agent pull -> the longer of (certificate Job pull + Hubble Relay pull) and the
   slowest other pull) vs a sequential baseline that runs the runbook's
   steps one after another with the same sensors (only the Cilium install is started in the background: it cannot
   finish before nodes exist, shared/design.md hazard 1);
b) sensor reaction latency: a DaemonSet rollout (pulls 1-3 s) watched by the real check_workload sensor; the
   moment its status turns ready is taken from the emulator's store every 2 ms; median/p95 and the sensor's
   request rate against the API;
c) drift check (report) of the converged cluster: wall time, Kubernetes API requests, helm invocations.

    .venv/bin/python benchmarks/bench_flows.py [--scale 1] [--seed 1] [--trials 20] [--only a|b|c]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELM3 = ROOT / ".tools" / "bin" / "helm3"
CLUSTER = "isovalent-demo"


def start_prefect_server(home: Path) -> subprocess.Popen[bytes]:
    """A real Prefect server; this process's flows report to it (as they do on a worker)."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    os.environ.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=(home / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"prefect server did not start; see {home / 'server.log'}")


def counting_helm(directory: Path) -> tuple[Path, Path]:
    """A helm that records each invocation, then runs the real helm 3."""
    log = directory / "helm-calls.log"
    wrapper = directory / "helm"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{HELM3}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def sandbox(scale: float, state_dir: Path, seed: int | None = None) -> Any:
    from sandbox.aws import NodegroupBehaviour
    from sandbox.kube.controllers import SimConfig
    from sandbox.runner import ClusterProfile, Sandbox, SandboxConfig

    sim = SimConfig(pod_start_seconds=(5 / scale, 15 / scale), node_join_seconds=60 / scale, pull_seed=seed)
    # EKS gives joining nodes many minutes before CREATE_FAILED; the sandbox's 60 s default is too short here.
    profile = ClusterProfile(nodegroup=NodegroupBehaviour(fail_after_seconds=900))
    sb = Sandbox(SandboxConfig(state_dir=state_dir, sim=sim, profile=profile)).start()
    os.environ.update({k: v for k, v in sb.env().items() if k != "KUBECONFIG"})
    return sb


def stack_and_options(sb: Any) -> tuple[Any, Any]:
    from tasks.model import load_stack
    from tasks.options import RunOptions

    stack = load_stack(ROOT / "configs", "sandbox", patch={"chart_repository": {"url": sb.chart_repo_url}})
    return stack, RunOptions(environment="sandbox")


@contextmanager
def run_context(stack: Any, options: Any) -> Iterator[Any]:
    """A flow's run context (work directory, kubeconfig), cleaned up afterwards, as the product flows do."""
    from tasks.steps.runtime import cleanup_context, prepare_context

    ctx = prepare_context(stack, options, ROOT)
    try:
        yield ctx
    finally:
        cleanup_context(ctx)


def critical_path(sb: Any, since: float, scale: float) -> tuple[float, list[str]]:
    """The longest chain of the delays the simulation actually imposed, under the dependencies any correct order
    must respect: nodes join -> Cilium agent pulled (nodes Ready) -> then in parallel: the certificate Job pulled
    -> Hubble Relay pulled (it mounts the certificates), and every other pod pulled (Tetragon, DNS proxy, operator,
    Envoy, Timescape: they need Ready nodes only)."""
    pulls = [(ns, pod, d) for t, ns, pod, d in sb.clusters[CLUSTER].controllers.pulls if t >= since]

    def slowest(match: Any) -> float:
        return max((d for ns, pod, d in pulls if match(ns, pod)), default=0.0)

    def agent(ns: str, pod: str) -> bool:
        return (
            ns == "kube-system"
            and pod.startswith("cilium-")
            and not pod.startswith(("cilium-envoy", "cilium-operator", "cilium-dnsproxy"))
        )

    join = 60 / scale
    agents = slowest(agent)
    certs = slowest(lambda ns, pod: pod.startswith("hubble-generate-certs"))
    relay = slowest(lambda ns, pod: pod.startswith("hubble-relay"))
    others = slowest(lambda ns, pod: not (agent(ns, pod) or pod.startswith(("hubble-generate-certs", "hubble-relay"))))
    tail = max(certs + relay, others)
    branch = (
        f"cert Job {certs:.2f} + relay {relay:.2f}" if certs + relay >= others else f"slowest other pod {others:.2f}"
    )
    return join + agents + tail, [f"nodes join {join:.2f}", f"agent pull {agents:.2f}", branch]


def sequential_flow() -> Any:
    from prefect import flow

    from flows.install_stack import resolve_stack
    from tasks.model import Component
    from tasks.steps.access import (
        add_chart_repository,
        discover_endpoint,
        prepare_cluster_access,
        render_values,
        validate_stack,
    )
    from tasks.steps.nodegroup import create_nodegroup, wait_for_nodegroup_active, wait_for_nodes_ready
    from tasks.steps.preflight import run_preflight
    from tasks.steps.releases import install_release
    from tasks.steps.report import verify_stack
    from tasks.steps.workloads import check_workload, wait_for_cilium_objects

    @flow(name="install-stack-sequential-baseline")
    def install_sequentially(stack: Any, options: Any) -> dict[str, Any]:
        stack = resolve_stack(stack, options)
        with run_context(stack, options) as ctx:
            validate_stack(ctx)
            cluster = discover_endpoint(ctx)
            prepare_cluster_access(ctx, cluster)
            rendered = render_values(ctx, cluster)
            add_chart_repository(ctx)
            pre = run_preflight(ctx, cluster, rendered)
            cilium = stack.cilium[0]
            cilium_f = install_release.submit(ctx, cilium, rendered)  # the one step that cannot run alone (hazard 1)
            wait_for_cilium_objects(ctx)
            create_nodegroup(ctx, rendered, pre)
            wait_for_nodegroup_active(ctx, rendered)
            wait_for_nodes_ready(ctx, rendered)
            cilium_f.result()
            n = rendered.nodegroup.desired_size
            for w in stack.releases[cilium].workloads:
                check_workload(ctx, cilium, w.role, n)
            for component in (Component.tetragon, Component.dnsproxy):
                found = stack.release_for(component)
                if found is None or not found[1].enabled:
                    continue
                name, rel = found
                install_release(ctx, name, rendered)
                for w in rel.workloads:
                    check_workload(ctx, name, w.role, n)
            report = verify_stack(ctx, rendered)
            return {"ok": report.ok}

    return install_sequentially


def bench_install(scale: float, tmp: Path, seed: int) -> dict[str, Any]:
    from flows.install_stack import run_install

    rows = {}
    for label in ("DAG (install_stack)", "sequential baseline"):
        sb = sandbox(scale, tmp / label.split()[0], seed)
        try:
            stack, options = stack_and_options(sb)
            since = time.time()
            start = time.monotonic()
            ok = (
                run_install(stack, options)["ok"]
                if label.startswith("DAG")
                else sequential_flow()(stack, options)["ok"]
            )
            wall = time.monotonic() - start
            path, chain = critical_path(sb, since, scale)
            rows[label] = {"wall": wall, "critical": path, "chain": chain, "ok": ok}
        finally:
            sb.stop()
    return rows


def bench_sensor(trials: int, tmp: Path) -> dict[str, float]:
    from prefect import flow

    from flows.install_stack import run_install
    from sandbox.kube.controllers import K_DS
    from tasks import readiness
    from tasks.adapters.kube import Kube
    from tasks.steps.workloads import check_workload

    sb = sandbox(1e6, tmp / "sensor")  # install without delays, then give the rollouts 1-3 s pulls
    try:
        stack, options = stack_and_options(sb)
        assert run_install(stack, options)["ok"]
        handle = sb.clusters[CLUSTER]
        handle.controllers.config.pod_start_seconds = (1.0, 3.0)
        kubeconfig = str(handle.kubeconfig)

        @flow(name="sensor-latency-trial")
        def trial() -> tuple[float, float, int, float]:  # latency, request rate, requests, wait
            with run_context(stack, options) as ctx:
                (ctx.workdir / "kubeconfig").write_text(Path(kubeconfig).read_text())
                true_at: list[float] = []
                stop = threading.Event()

                def watch() -> None:  # the moment the condition turns true, read straight from the store
                    while not stop.is_set():
                        obj = handle.emulator.store.get(K_DS, "kube-system", "cilium")
                        if obj is not None and readiness.daemonset(obj, expected_nodes=2).ready:
                            true_at.append(time.monotonic())
                            return
                        time.sleep(0.002)

                with Kube(kubeconfig) as kube:
                    kube.restart_daemonset("kube-system", "cilium")
                time.sleep(0.05)  # let the controllers see the new generation (status turns not-ready)
                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                t0, w0 = time.monotonic(), time.time()
                check_workload.fn(ctx, "cilium", "agent", 2)
                done = time.monotonic()
                stop.set()
                watcher.join(1)
                polls = [
                    r["t"]
                    for r in list(handle.emulator.request_log)
                    if r.get("t", 0) >= w0
                    and r.get("method") == "GET"
                    and r.get("path", "").endswith("/daemonsets/cilium")
                ]
                # The sensor's request rate: polls per second between its first and its last request.
                rate = (len(polls) - 1) / (polls[-1] - polls[0]) if len(polls) > 1 and polls[-1] > polls[0] else 0.0
                return done - (true_at[0] if true_at else done), rate, len(polls), done - t0

        lat, rates = [], []
        for _ in range(trials):
            latency, rate, _, _ = trial()
            lat.append(latency)
            rates.append(rate)
        lat.sort()
        return {
            "median": statistics.median(lat),
            "p95": lat[max(0, int(round(0.95 * len(lat))) - 1)],
            "max": lat[-1],
            "rate": statistics.mean(rates),
            "trials": trials,
            "interval": options.poll_interval_seconds,
        }
    finally:
        sb.stop()


def bench_drift(tmp: Path, runs: int = 3) -> dict[str, Any]:
    from flows.check_drift import run_drift
    from flows.install_stack import run_install
    from tasks.options import DriftMode

    helm, calls = counting_helm(tmp)
    sb = sandbox(1e6, tmp / "drift")
    try:
        stack, options = stack_and_options(sb)
        assert run_install(stack, options)["ok"]
        os.environ["EKS_CILIUM_HELM"] = str(helm)
        emu = sb.clusters[CLUSTER].emulator
        out = []
        for _ in range(runs):
            calls.write_text("")
            since = time.time()
            start = time.monotonic()
            report = run_drift(stack, options, DriftMode.report)
            wall = time.monotonic() - start
            requests = sum(1 for r in list(emu.request_log) if r.get("t", 0) >= since and "method" in r)
            invocations = calls.read_text().split()
            out.append(
                {
                    "wall": wall,
                    "requests": requests,
                    "helm": len(invocations),
                    "helm_kinds": sorted(set(invocations)),
                    "drifted": not report["summary"]["clean"],
                    "compared": report["summary"]["compared"],
                }
            )
        return {"runs": out}
    finally:
        os.environ.pop("EKS_CILIUM_HELM", None)
        sb.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="divide the realistic delays by this factor (default 1: real time)"
    )
    parser.add_argument("--trials", type=int, default=20, help="sensor latency trials (default 20)")
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="image pull times are a function of (seed, image, node): both "
        "orchestrations of a) see the same delays (default 1)",
    )
    parser.add_argument("--only", choices=["a", "b", "c"], action="append", help="run only these parts")
    args = parser.parse_args()
    parts = args.only or ["a", "b", "c"]
    with tempfile.TemporaryDirectory(prefix="eks-cilium-bench-") as d:
        tmp = Path(d)
        (tmp / "prefect").mkdir()
        server = start_prefect_server(tmp / "prefect")
        os.environ.setdefault("EKS_CILIUM_HELM", str(HELM3))
        for k, v in {
            "HOME": tmp / "home",
            "HELM_CONFIG_HOME": tmp / "helm-config",
            "HELM_CACHE_HOME": tmp / "helm-cache",
            "HELM_DATA_HOME": tmp / "helm-data",
            "KUBECACHEDIR": tmp / "kubecache",
        }.items():
            os.environ[k] = str(v)
        try:
            print(
                f"delays: nodegroup 60 s, image pull 5-15 s per pod, divided by the scale factor {args.scale:g} "
                f"-> {60 / args.scale:.1f} s and {5 / args.scale:.2f}-{15 / args.scale:.2f} s; Prefect server running"
            )
            if "a" in parts:
                rows = bench_install(args.scale, tmp, args.seed)
                print(f"\na) install wall time vs critical path vs sequential baseline (pull seed {args.seed})")
                print(f"{'run':<22} {'wall s':>8} {'critical path s':>16} {'over path':>10}  ok")
                for label, r in rows.items():
                    print(
                        f"{label:<22} {r['wall']:8.1f} {r['critical']:16.1f} "
                        f"{100 * (r['wall'] / r['critical'] - 1):9.0f}%  {r['ok']}"
                    )
                dag, seq = rows["DAG (install_stack)"], rows["sequential baseline"]
                print(f"DAG critical path: {' + '.join(dag['chain'])}")
                print(
                    f"DAG vs baseline: {100 * (1 - dag['wall'] / seq['wall']):.0f}% faster "
                    f"(baseline on its own critical path {seq['critical']:.1f} s)"
                )
            if "b" in parts:
                s = bench_sensor(args.trials, tmp)
                print(
                    f"\nb) sensor reaction latency (check_workload on DaemonSet cilium, {s['trials']} "
                    f"rollouts, poll interval {s['interval']} s)"
                )
                print(
                    f"median {s['median']:.3f} s, p95 {s['p95']:.3f} s, max {s['max']:.3f} s; "
                    f"{s['rate']:.2f} API requests/s per sensor"
                )
            if "c" in parts:
                d = bench_drift(tmp)
                print("\nc) drift check (report) of the converged cluster, Prefect server running")
                print(
                    f"{'run':<5} {'wall s':>7} {'K8s API requests':>17} {'helm invocations':>17} "
                    f"{'objects compared':>17}  drifted"
                )
                for i, r in enumerate(d["runs"], 1):
                    print(
                        f"{i:<5} {r['wall']:7.2f} {r['requests']:17d} {r['helm']:17d} {r['compared']:17d}  "
                        f"{r['drifted']}  (helm {', '.join(r['helm_kinds'])})"
                    )
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
