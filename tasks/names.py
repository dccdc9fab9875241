"""Every well-known name and label the flows rely on that is not the user's to choose (the stack names releases,
namespaces and workloads): EKS's node label, helm's release statuses, Kubernetes' system namespace, Cilium's
defaults. One place, so a rename is one edit."""

from __future__ import annotations

from typing import Any

KUBE_SYSTEM = "kube-system"
# EKS managed nodegroups label their nodes with the nodegroup's name.
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
# Cilium's chart defaults, used when the stack does not name them.
CILIUM_CONFIG_MAP = "cilium-config"
CILIUM_AGENT_DAEMONSET = "cilium"
SERVICEMONITOR_CRD = "servicemonitors.monitoring.coreos.com"
# EKS add-ons and the DaemonSets they install that conflict with Cilium as the CNI and kube-proxy replacement.
CONFLICTING_ADDONS = ("vpc-cni", "kube-proxy")
CONFLICTING_DAEMONSETS = ("aws-node", "kube-proxy")

# helm's release statuses that the flows act on.
DEPLOYED = "deployed"
SUPERSEDED = "superseded"
FAILED = "failed"
PENDING_PREFIX = "pending-"  # pending-install, pending-upgrade, pending-rollback: helm holds the release's lock


def node_nodegroup(node: dict[str, Any]) -> str:
    """The EKS nodegroup a Node object belongs to ("" when it has no nodegroup label)."""
    return str(((node.get("metadata") or {}).get("labels") or {}).get(NODEGROUP_LABEL, ""))


# The Prefect state name of a check-drift run whose report is not clean: the runs list shows it, the fleet reads it.
DRIFTED_STATE = "Drifted"

# Cilium's upgrade guide: the pre-flight release whose DaemonSet pulls the new images on every node first.
PREFLIGHT_RELEASE = "cilium-preflight"
PREFLIGHT_DAEMONSET = "cilium-pre-flight-check"
# What the install records in the cluster (ConfigMap in kube-system): the chart version each release was first
# installed with, which the upgrade reads back for Cilium's `upgradeCompatibility`.
INSTALL_RECORD = "eks-cilium-install"
