"""A Kubernetes API emulator on aiohttp that real helm 3/4, kubectl and the kubernetes client accept."""
