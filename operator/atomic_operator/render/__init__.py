"""Pure rendering of custom resources into the Kubernetes objects that serve them."""

from atomic_operator.render.agent import AgentIdentity, RenderedAgent, render_agent
from atomic_operator.render.config import runtime_config

__all__ = ["AgentIdentity", "RenderedAgent", "render_agent", "runtime_config"]
