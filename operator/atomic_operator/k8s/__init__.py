"""A small async Kubernetes client: just what the operator does, over one aiohttp session."""

from atomic_operator.k8s.client import ApiError, KubeClient
from atomic_operator.k8s.resources import resource_path

__all__ = ["ApiError", "KubeClient", "resource_path"]
