"""Benchmark of the sandbox (prints numbers; asserts nothing):

- `helm install` time of the real cilium 1.18.4 chart (vendored) (with a Ready node so the hook Job completes) and of a
  generated chart of ~700 objects, for helm 3 and helm 4 — targets: under 3 s and under 10 s;
- the emulator's memory (RSS of this process) after 10,000 requests — bounded, because request and event logs
  are capped.

    .venv/bin/python benchmarks/bench_sandbox.py
"""

from __future__ import annotations

import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.runner import STATIC_TOKEN, Sandbox, SandboxConfig  # noqa: E402

TOOLS = ROOT / ".tools" / "bin"


def big_chart(directory: Path, objects: int = 700) -> Path:
    chart = directory / "big"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: big\nversion: 0.1.0\n")
    docs = []
    for i in range(objects):
        kind = i % 3
        if kind == 0:
            docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  k: v{i}\n")
        elif kind == 1:
            docs.append(f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-{i}\n")
        else:
            docs.append(
                f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n  ports: "
                f"[{{port: 80}}]\n  selector: {{app: a{i}}}\n"
            )
    (chart / "templates" / "all.yaml").write_text("---\n".join(docs))
    return chart


def sandbox_client(sb: Sandbox, service: str) -> Any:
    """A boto3 client of the sandbox's AWS endpoint (this process's environment is not the sandbox's)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=sb.aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr}")
    return time.perf_counter() - t0


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    rows = []
    for helm in ("helm3", "helm4"):
        sb = Sandbox(SandboxConfig(state_dir=tmp / f"sb-{helm}")).start()
        try:
            kc = str(sb.clusters["isovalent-demo"].kubeconfig)
            home = tmp / f"home-{helm}"
            env = {
                **os.environ,
                **{k: v for k, v in sb.env().items() if k != "KUBECONFIG"},
                "HOME": str(home),
                "HELM_CONFIG_HOME": str(home / "c"),
                "HELM_CACHE_HOME": str(home / "cc"),
                "HELM_DATA_HOME": str(home / "d"),
            }
            eks = sandbox_client(sb, "eks")
            role = sandbox_client(sb, "iam").get_role(RoleName="isovalent-demo-node-role")["Role"]["Arn"]
            eks.create_nodegroup(
                clusterName="isovalent-demo",
                nodegroupName="standard",
                nodeRole=role,
                subnets=sb.network["subnets"]["private"],
                scalingConfig={"minSize": 1, "maxSize": 1, "desiredSize": 1},
            )
            cilium = timed(
                [
                    str(TOOLS / helm),
                    "install",
                    "cilium",
                    str(ROOT / "sandbox/charts/vendored/cilium-1.18.4.tgz"),
                    "-n",
                    "kube-system",
                    "-f",
                    str(ROOT / "configs/cilium-enterprise-values.yaml"),
                    "--set",
                    "k8sServiceHost=127.0.0.1",
                    "--timeout",
                    "60s",
                    "--kubeconfig",
                    kc,
                ],
                env,
            )
            big = timed(
                [str(TOOLS / helm), "install", "big", str(big_chart(tmp / helm)), "-n", "default", "--kubeconfig", kc],
                env,
            )
            rows.append((helm, cilium, big))
        finally:
            sb.stop()
    print(f"{'helm':<6} {'cilium 1.18.4 install (s)':>28} {'~700-object chart install (s)':>31}")
    for helm, c, b in rows:
        print(f"{helm:<6} {c:>28.2f} {b:>31.2f}")
    print("targets: cilium < 3 s, 700 objects < 10 s")

    sb = Sandbox(SandboxConfig(state_dir=tmp / "sb-mem")).start()
    try:
        port = sb.clusters["isovalent-demo"].port
        ctx = ssl.create_default_context(cafile=str(tmp / "sb-mem" / "pki" / "ca.crt"))
        for _ in range(500):  # warm up: connection setup, caches, the first log entries
            urllib.request.urlopen(urllib.request.Request(f"https://127.0.0.1:{port}/version"), context=ctx).read()
        rss0 = current_rss_mib()
        t0 = time.perf_counter()
        paths = ["/api/v1/namespaces", "/apis/apps/v1/daemonsets", "/api/v1/nodes", "/version", "/apis"]
        for i in range(10_000):
            req = urllib.request.Request(
                f"https://127.0.0.1:{port}{paths[i % len(paths)]}", headers={"Authorization": f"Bearer {STATIC_TOKEN}"}
            )
            urllib.request.urlopen(req, context=ctx).read()
        seconds = time.perf_counter() - t0
        rss1 = current_rss_mib()
        emu = sb.clusters["isovalent-demo"].emulator
        print(
            f"10,000 requests in {seconds:.1f} s ({10_000 / seconds:.0f}/s); RSS {rss0:.0f} MiB -> {rss1:.0f} MiB; "
            f"request log {len(emu.request_log)} entries (cap {emu.request_log.maxlen})"
        )
    finally:
        sb.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
