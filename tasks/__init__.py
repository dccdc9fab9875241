"""Tasks of the eks-cilium flows, the pure decisions they call, and the adapters they act through.

Importing this package is cheap: Prefect, boto3 and kubernetes are imported only by the modules that use them.
"""
