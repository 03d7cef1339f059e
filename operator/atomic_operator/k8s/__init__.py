"""A small async Kubernetes client: just what the operator does, over one aiohttp session."""

from atomic_operator.k8s.client import Api, ApiError, KubeClient, gone_with_namespace
from atomic_operator.k8s.resources import resource_path

__all__ = ["Api", "ApiError", "KubeClient", "gone_with_namespace", "resource_path"]
