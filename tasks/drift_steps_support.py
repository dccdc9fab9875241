"""Known drift noise that needs a cluster read (kept apart from the pure drift verdicts)."""

from __future__ import annotations

from tasks.adapters.kube import Kube


def certs_ttl_noise(kube: Kube, namespace: str, job_name: str) -> bool:
    """The Hubble certificate hook Job deletes itself 30 minutes after finishing; it is not drift when its CronJob
    is still there to renew the certificates."""
    return kube.get("CronJob", namespace, job_name) is not None
