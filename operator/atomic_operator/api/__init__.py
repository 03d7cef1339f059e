"""The API of atomicagents.io/v1alpha1: the single source of truth for CRDs and validation."""

from atomic_operator.api.agent import AtomicAgent, AtomicAgentSpec, AtomicAgentStatus
from atomic_operator.api.common import Condition
from atomic_operator.api.pipeline import AtomicPipeline, AtomicPipelineSpec, AtomicPipelineStatus

__all__ = [
    "AtomicAgent",
    "AtomicAgentSpec",
    "AtomicAgentStatus",
    "AtomicPipeline",
    "AtomicPipelineSpec",
    "AtomicPipelineStatus",
    "Condition",
]
