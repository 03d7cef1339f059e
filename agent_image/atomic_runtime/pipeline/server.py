"""The runner's process: the agent server's uvicorn setup, drain and metrics listener.

Nothing here is pipeline-specific but the app: the same environment (ServerSettings), the
same connection limits, SIGTERM turning /readyz to 503 at once, the listener open for the
drain delay, then every admitted run finishing (up to the pipeline's deadline) before the
process exits 0, exactly as an agent does. Start-up failures are one log line and exit 2,
among them a bearer-token variable the config names that is unset or empty (the agent would
answer 401 to every call); the tokens are kept out of every log line, as an agent's are.
"""

from __future__ import annotations

import gc
import logging
import os

from ..app import RuntimeState
from ..logs import configure_logging
from ..server import load_startup, serve
from ..settings import SettingsError
from .app import create_pipeline_app
from .config import agent_tokens, load_pipeline_config

log = logging.getLogger("atomic_runtime.pipeline.server")


def main() -> int:
    started = load_startup(load_pipeline_config, "pipeline")
    if started is None:
        return 2
    settings, config = started
    try:
        tokens = agent_tokens(config, os.environ)
    except SettingsError as exc:
        log.error("missing agent token", extra={"error": str(exc)})
        return 2
    configure_logging(settings.log_level, secrets=tokens.values())
    state = RuntimeState()
    app = create_pipeline_app(config, state, tokens=tokens, settings=settings)
    gc.freeze()  # as in the agent server: start-up objects stay out of full collections
    # bodies still arriving when the listener closes are cut (503), as an agent's are
    return serve(app, config, settings, state, app.state.endpoint.cut_uploads)
