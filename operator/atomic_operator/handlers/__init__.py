"""kopf handlers: thin functions that parse and delegate. `kopf run -m` imports this."""

from atomic_operator.handlers import (
    admission,
    atomic_agent,
    atomic_pipeline,
    children,
    indexes,
    lifecycle,
    references,
)

__all__ = ["admission", "atomic_agent", "atomic_pipeline", "children", "indexes", "lifecycle",
           "references"]
