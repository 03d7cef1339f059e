"""The runner's process: the agent server's uvicorn setup, drain and metrics listener.

Nothing here is pipeline-specific but the app: SIGTERM turns /readyz to 503 at once, keeps
the listener open for the drain delay, then waits for every admitted run (up to the
pipeline's deadline) before exiting 0, exactly as an agent does.
"""

from __future__ import annotations

import gc
import logging
import os

from ..app import RuntimeState
from ..logs import configure_logging
from ..server import DrainingServer, env_float, start_metrics_listener, uvicorn_config
from .app import create_pipeline_app
from .config import load_pipeline_config

log = logging.getLogger("atomic_runtime.pipeline.server")


def main() -> int:
    configure_logging(os.environ.get("ATOMIC_AGENT_LOG_LEVEL", "INFO"))
    try:
        config = load_pipeline_config()
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        log.error("cannot load the pipeline configuration", extra={"error": str(exc)})
        return 2
    state = RuntimeState()
    app = create_pipeline_app(config, state)
    gc.freeze()  # as in the agent server: start-up objects stay out of full collections
    ucfg = uvicorn_config(app, config)
    metrics_port = int(os.environ.get("ATOMIC_AGENT_METRICS_PORT", "9090") or 0)
    if metrics_port and metrics_port != ucfg.port:
        start_metrics_listener(app.state.metrics, metrics_port, ucfg.host)
    server = DrainingServer(ucfg, state, env_float("ATOMIC_AGENT_DRAIN_DELAY_SECONDS", 5.0))
    server.run()
    log.info("stopped")
    return 0 if server.started else 1
