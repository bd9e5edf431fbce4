"""`omni serve`: load the engine once, then answer OpenAI API requests over HTTP until stopped.

Ctrl-C or SIGTERM stops accepting connections, lets requests in flight finish (up to 30 s), then
releases the engine.
"""

from __future__ import annotations

import contextlib
import logging
import os

from omni.cli.invocation import Invocation
from omni.infer.adapters import parse_adapters
from omni.infer.command import open_engine
from omni.serve.options import ServeOptions

GRACEFUL_SHUTDOWN_S = 30


def run(invocation: Invocation) -> int:
    """Serve until interrupted; returns the exit status."""
    import uvicorn

    from omni.serve.app import ServedModels, create_app

    options: ServeOptions = invocation.options
    adapters = parse_adapters(options.adapters)
    api_key = options.api_key or os.environ.get("OMNI_API_KEY") or None
    engine = open_engine(invocation, adapters)
    try:
        models = ServedModels(options.served_model_name or engine.model_name, tuple(adapters))
        app = create_app(
            engine,
            models,
            api_key=api_key,
            default_max_tokens=options.max_new_tokens,
        )
        level = options.log_level.upper()
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("omni.serve").info("serving models: %s", ", ".join(models.names))
        config = uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            log_level=options.log_level.lower(),
            access_log=False,  # omni.serve logs each request once, when its response is complete
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        # uvicorn shuts down gracefully on Ctrl-C, then re-raises it; stopping a server that way is no error.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run()
    finally:
        engine.close()
    return 0
