"""What a release renders (real `helm template`, the oracle) against what the emulator holds for it (real kubectl)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import yaml

from tasks.manifest import parse_objects
from tests.support.commands import helm, kubectl

# The sandbox has the Prometheus operator's CRDs, so the charts render their ServiceMonitors there.
CLUSTER_APIS = ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor")


def rendered(helm_binary: str, kubeconfig: str, release: str, namespace: str, chart: str, version: str, repo: str):
    """(kind, name) of every object `helm template` renders, hooks included, from the release's own values."""
    values = helm(helm_binary, kubeconfig, "get", "values", release, "-n", namespace, "-o", "yaml").stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "values.yaml"
        path.write_text(values)
        argv = ["template", release, chart, "--repo", repo, "--version", version, "-n", namespace, "-f", str(path)]
        for api in CLUSTER_APIS:
            argv += ["--api-versions", api]
        out = helm(helm_binary, kubeconfig, *argv).stdout
    return Counter((o.kind, o.name) for o in parse_objects(out, namespace))


def live(kubeconfig: str, release: str, namespace: str, kinds: set[str], hooks: set[tuple[str, str]]):
    """(kind, name) of every object of those kinds helm created for the release (its ownership annotations), plus
    the hook objects named in `hooks` that exist."""
    out = json.loads(kubectl(kubeconfig, "get", ",".join(sorted(kinds)), "-A", "-o", "json").stdout)
    found: Counter[tuple[str, str]] = Counter()
    for obj in out["items"]:
        meta = obj["metadata"]
        notes = meta.get("annotations") or {}
        key = (obj["kind"], meta["name"])
        owned = notes.get("meta.helm.sh/release-name") == release and (
            notes.get("meta.helm.sh/release-namespace") == namespace
        )
        if owned or ("helm.sh/hook" in notes and key in hooks):
            found[key] += 1
    return found


def hook_objects(helm_binary: str, kubeconfig: str, release: str, namespace: str) -> set[tuple[str, str]]:
    out = helm(helm_binary, kubeconfig, "get", "hooks", release, "-n", namespace).stdout
    return {(o.kind, o.name) for o in parse_objects(out, namespace, hook=True)}


def live_drift(helm_binary: str, kubeconfig: str, release: str, namespace: str) -> list[str]:
    """Object-level drift rows of a release: its manifest (`helm get manifest`) against the live objects (one
    `kubectl get` of every kind it holds)."""
    from tasks.object_drift import object_drift, ref_of

    out = helm(helm_binary, kubeconfig, "get", "manifest", release, "-n", namespace).stdout
    docs = [d for d in yaml.safe_load_all(out) if isinstance(d, dict) and d.get("kind")]
    listed = json.loads(
        kubectl(kubeconfig, "get", ",".join(sorted({d["kind"] for d in docs})), "-A", "-o", "json").stdout
    )
    live = {ref_of(o): o for o in listed["items"]}
    return [str(r) for doc in docs for r in object_drift(doc, live.get(ref_of(doc, namespace)), namespace)]
