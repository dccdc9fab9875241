"""The runbook's steps as Prefect tasks, split by concern: thin wrappers that fetch state, call the pure
decisions in tasks/ and act through the adapters in tasks/adapters/.

runtime (decorators, run context, sensors' progress), access, preflight, releases, nodegroup, workloads,
report (verification, dry-run plan), drift (observe and repair), lock (the cluster's Lease).
"""
