"""The local sandbox: AWS through a moto server, Kubernetes through an API emulator, stand-in charts.

Nothing here is imported by flows/ or tasks/: the flows reach the sandbox only over HTTP, exactly as they
reach EKS (boto3 with an endpoint URL, a kubeconfig for the kubernetes client, helm and kubectl).
"""
