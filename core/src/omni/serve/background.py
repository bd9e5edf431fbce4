"""Run a serve app on a background thread: for tests, benchmarks and programs that embed omni."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from omni.errors import OmniError


@contextlib.contextmanager
def serving(app: Any, *, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` with uvicorn on a daemon thread; yields its base URL (``http://HOST:PORT``).

    Port 0 picks a free port. Leaving the block shuts the server down gracefully and waits for it.
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="omni-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise OmniError(f"the server did not start on {host}:{port} (is the port taken?)")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join()
