"""Benchmark d: fleet drift checks for 1, 10 and 50 clusters with a concurrency cap of 10 (prints numbers).

A real Prefect server with our deployments, process workers (2 x 5 slots = the cap of 10), one sandbox holding
50 EKS clusters. The fleet is installed first (through the same fleet flow), then checked for drift with 1, 10
and 50 members; each member is its own check-drift deployment run on a worker.

    .venv/bin/python benchmarks/bench_fleet.py [--sizes 1 10 50] [--workers 2] [--slots 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=5, help="flow runs per worker")
    parser.add_argument("--cap", type=int, default=10, help="the fleet flow's max_concurrent")
    parser.add_argument(
        "--install",
        choices=["in-process", "fleet"],
        default="in-process",
        help="how to install the clusters first: run_install one after another (default), or the fleet flow",
    )
    args = parser.parse_args()

    from flows.fleet import FleetAction, fleet
    from flows.install_stack import run_install
    from sandbox.runner import ClusterProfile, Sandbox, SandboxConfig
    from tests.support.prefect_server import Workers, api_settings, fleet_members, running_prefect_server, worker_env

    names = [f"fleet-{i}" for i in range(1, max(args.sizes) + 1)]
    with tempfile.TemporaryDirectory(prefix="eks-cilium-fleet-bench-") as d:
        tmp = Path(d)
        (tmp / "prefect").mkdir()
        t = time.monotonic()
        with running_prefect_server(tmp / "prefect") as server_env:
            sb = Sandbox(SandboxConfig(state_dir=tmp / "sandbox", clusters=names, profile=ClusterProfile())).start()
            print(
                f"setup: Prefect server + deployments + sandbox with {len(names)} clusters in "
                f"{time.monotonic() - t:.0f} s"
            )
            os.environ.update({k: v for k, v in sb.env().items() if k != "KUBECONFIG"})
            workers = Workers(worker_env(server_env, sb, tmp / "worker-home"), args.workers, tmp, limit=args.slots)
            try:
                members = fleet_members(tmp, names, sb.chart_repo_url, poll_seconds=0.5)
                with api_settings(server_env):
                    t = time.monotonic()
                    if args.install == "fleet":
                        installed = fleet(members=members, action=FleetAction.install, max_concurrent=args.cap)
                        counts = installed["counts"]
                    else:  # one after another in this process: no flow-run process per cluster, less CPU on 2 cores
                        ok = [run_install(m.stack, m.options)["ok"] for m in members]
                        counts = {"ok": sum(ok), "error": len(ok) - sum(ok)}
                    print(f"install {len(members)} clusters ({args.install}): {time.monotonic() - t:.0f} s, {counts}")
                    rows = []
                    for size in args.sizes:
                        r = fleet(members=members[:size], action=FleetAction.check_drift, max_concurrent=args.cap)
                        per = sorted(x["seconds"] for x in r["rows"])
                        rows.append((size, r["seconds"], r["counts"], per[len(per) // 2]))
            finally:
                workers.stop()
                sb.stop()
    base = rows[0][1]
    print(
        f"\nd) fleet drift check, cap {args.cap}, {args.workers} workers x {args.slots} slots ({os.cpu_count()} CPUs)"
    )
    print(f"{'clusters':>8} {'wall s':>8} {'growth':>7} {'s/cluster':>10} {'median child s':>15}  result")
    for size, secs, counts, median in rows:
        print(f"{size:8d} {secs:8.1f} {secs / base:6.1f}x {secs / size:10.2f} {median:15.1f}  {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
