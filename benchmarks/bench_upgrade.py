"""Benchmark: wall time of each upgrade the e2e tests run (prints numbers; asserts nothing).

Each scenario installs the stack at the old versions on a fresh sandbox (not timed), then times `upgrade_stack`,
with a real Prefect server: a Cilium patch (1.18.3 -> 1.18.4, pre-pull included), a minor (1.17.18 -> 1.18.4), a
skipped minor refused before any change (1.17.18 -> 1.19.0), an upgrade whose agents crash-loop and is rolled back
(helm's own wait for the certificate hook, --rollback-timeout), and Tetragon 1.4.1 -> 1.5.0. Image pulls and node
joins take --scale-divided realistic times (default: instant, as in the tests).

    .venv/bin/python benchmarks/bench_upgrade.py [--scale 1000000] [--rollback-timeout 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flows import CLUSTER, ROOT, sandbox, start_prefect_server  # noqa: E402


def stack_at(sb: Any, cilium: str | None = None, tetragon: str | None = None, **cilium_extra: Any) -> Any:
    from tasks.model import load_stack

    releases: dict[str, Any] = {}
    if cilium is not None:
        releases["cilium"] = {"version": cilium, **cilium_extra}
    if tetragon is not None:
        releases["tetragon"] = {"version": tetragon}
    patch = {"chart_repository": {"url": sb.chart_repo_url}, "releases": releases}
    return load_stack(ROOT / "configs", "sandbox", patch=patch)


def scenario(name: str, scale: float, tmp: Path, before: dict[str, Any], after: dict[str, Any], **kw: Any) -> str:
    from flows.install_stack import run_install
    from flows.upgrade_stack import run_upgrade
    from sandbox.kube.controllers import PodPolicy
    from tasks.errors import EksCiliumError
    from tasks.options import RunOptions, Timeouts

    sb = sandbox(scale, tmp / name.replace(" ", "-"))
    try:
        options = RunOptions(environment="sandbox", timeouts=Timeouts(rollout=kw.get("rollout", 600)))
        assert run_install(stack_at(sb, **before), options)["ok"]
        for labels in kw.get("crash", []):
            sb.clusters[CLUSTER].controllers.config.pod_policies.append(PodPolicy(labels, "crashloop"))
        start = time.monotonic()
        try:
            result = run_upgrade(stack_at(sb, **after), options)
            outcome = "ok: " + "; ".join(d for h in result["hops"] for d in h["done"])
        except EksCiliumError as e:
            outcome = f"{type(e).__name__}: {e.what}"
        return f"{name:<34} {time.monotonic() - start:8.1f}  {outcome}"
    finally:
        sb.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1e6, help="divide the realistic delays (default: instant)")
    parser.add_argument("--rollback-timeout", type=int, default=40, help="helm --timeout of the failing upgrade")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as name:
        tmp = Path(name)
        server = start_prefect_server(tmp)
        try:
            canary = {"upgrade-canary": "new"}
            rows = [
                scenario(
                    "cilium 1.18.3 -> 1.18.4 (patch)", args.scale, tmp, {"cilium": "1.18.3"}, {"cilium": "1.18.4"}
                ),
                scenario(
                    "cilium 1.17.18 -> 1.18.4 (minor)", args.scale, tmp, {"cilium": "1.17.18"}, {"cilium": "1.18.4"}
                ),
                scenario(
                    "cilium 1.17.18 -> 1.19.0 (refused)", args.scale, tmp, {"cilium": "1.17.18"}, {"cilium": "1.19.0"}
                ),
                scenario(
                    "cilium 1.18.3 -> 1.18.4 (rolled back)",
                    args.scale,
                    tmp,
                    {"cilium": "1.18.3"},
                    {"cilium": "1.18.4", "timeout_seconds": args.rollback_timeout, "values": {"podLabels": canary}},
                    crash=[canary],
                    rollout=20,
                ),
                scenario(
                    "tetragon 1.4.1 -> 1.5.0 (minor)", args.scale, tmp, {"tetragon": "1.4.1"}, {"tetragon": "1.5.0"}
                ),
            ]
        finally:
            server.terminate()
            server.wait(30)
    print(f"\nupgrade_stack wall time per scenario (delays / {args.scale:g}; Prefect server running)")
    print(f"{'scenario':<34} {'wall s':>8}  outcome")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
