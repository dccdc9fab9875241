"""Adapters: the only modules that talk to external systems (AWS through boto3, Kubernetes through the
official client, helm/kubectl/eksctl through subprocess). Each maps failures onto tasks.errors."""
