"""``python -m atomic_runtime``: the container's command.

One image serves both kinds of pod: an agent, or, when the mounted config's kind is
PipelineConfig, a pipeline runner.
"""

import sys

from .pipeline.config import is_pipeline_config

if __name__ == "__main__":
    if is_pipeline_config():
        from .pipeline.server import main

        sys.exit(main())
    from .server import run

    run()
