"""Pure rendering of custom resources into the Kubernetes objects that serve them."""

from atomic_operator.render.agent import AgentIdentity, RenderedAgent, render_agent
from atomic_operator.render.config import config_bytes, config_json, runtime_config

__all__ = ["AgentIdentity", "RenderedAgent", "config_bytes", "config_json", "render_agent",
           "runtime_config"]
