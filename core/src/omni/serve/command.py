"""`omni serve`: load the engine once, then answer OpenAI API requests over HTTP until stopped; `omni rollout`:
the same server, which also takes new weights from a trainer (``POST /omni/v1/weights``).

The port is bound before the model loads, so a port in use fails at once. Ctrl-C or SIGTERM stops
accepting connections, lets requests in flight finish (up to 30 s), then releases the engine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from omni.cli.invocation import Invocation
from omni.encoders.sources import MediaPolicy
from omni.errors import OmniError
from omni.infer.adapters import parse_adapters
from omni.infer.command import open_engine
from omni.serve.options import RolloutOptions, ServeOptions

GRACEFUL_SHUTDOWN_S = 30


def run(invocation: Invocation) -> int:
    """Serve until interrupted (`omni rollout`, whose options are `RolloutOptions`, takes weights too); returns the
    exit status."""
    options: ServeOptions = invocation.options
    takes_weights = isinstance(options, RolloutOptions)
    adapters = parse_adapters(options.adapters)
    api_key = options.api_key or os.environ.get("OMNI_API_KEY") or None
    if api_key is None and not _is_loopback(options.host):
        what = "use the model and replace its weights" if takes_weights else "use the model"
        warnings.warn(
            f"serving on {options.host} without --api-key: anyone who can reach this port can {what}", stacklevel=1
        )
    media = options.media_policy()  # a bad flag fails before anything loads
    listener = _bind(options.host, options.port)
    try:
        _serve(invocation, options, adapters, api_key, media, listener)
    finally:
        listener.close()
    return 0


def _serve(
    invocation: Invocation,
    options: ServeOptions,
    adapters: dict[str, str],
    api_key: str | None,
    media: MediaPolicy,
    listener: socket.socket,
) -> None:
    import uvicorn

    from omni.serve.app import ServedModels, WeightsRoute, create_app

    engine = open_engine(invocation, adapters)
    try:
        models = ServedModels(options.served_model_name or engine.model_name, tuple(adapters))
        app = create_app(
            engine,
            models,
            api_key=api_key,
            default_max_tokens=options.max_new_tokens,
            max_tokens_limit=options.max_new_tokens_limit,
            request_timeout_s=options.request_timeout,
            media=media,
            max_request_bytes=options.max_request_bytes,
            tokenizer_info=options.enable_tokenizer_info_endpoint,
            weights=WeightsRoute(options.max_weights_bytes) if isinstance(options, RolloutOptions) else None,
        )
        level = options.log_level.upper()
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logger = logging.getLogger("omni.serve")
        logger.info("serving models: %s", ", ".join(models.names))
        config = uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            log_level=options.log_level.lower(),
            access_log=False,  # omni.serve logs each request once, when its response is complete
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        # uvicorn announces only the sockets it bound itself. Connections made since `_bind` wait in the
        # listen backlog and are answered from now on.
        host, port = listener.getsockname()[:2]
        logger.info("running on http://%s:%d (Ctrl-C to quit)", f"[{host}]" if ":" in host else host, port)
        # uvicorn shuts down gracefully on Ctrl-C or SIGTERM, then raises the signal again; stopping a server that
        # way is no error. SIGTERM's default action would end the process there, before the engine is closed (a
        # vLLM engine's processes would live on): it raises KeyboardInterrupt as Ctrl-C does instead.
        with contextlib.suppress(KeyboardInterrupt), _sigterm_as_interrupt():
            uvicorn.Server(config).run(sockets=[listener])
    finally:
        engine.close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt within the block (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A socket listening on `host`:`port`; a port in use is an `OmniError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family=family)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise OmniError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, or 0 for a free one"
        ) from None
    listener.listen(2048)  # uvicorn's default backlog
    return listener
