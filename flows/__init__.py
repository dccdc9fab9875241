"""Prefect flows (outcomes) and the eks-cilium command line."""
