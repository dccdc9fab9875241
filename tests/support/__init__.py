"""Helpers the test tiers share: sandbox flows, the cluster lock's Lease, commands, a Prefect server."""
