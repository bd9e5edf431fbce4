"""`omni web`: serve the page until Ctrl-C."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from omni.api import OmniError


def run(invocation) -> int:  # noqa: ANN001 - omni's Invocation
    options = invocation.options
    if options.share:
        raise OmniError(
            "--share: public share links are not supported (omni works offline); use --host 0.0.0.0 on a network "
            "you trust, or an SSH tunnel (ssh -L 7860:127.0.0.1:7860 HOST)"
        )
    import uvicorn

    from omni_plugin_web.app import LOOPBACK_NAMES, create_app

    app = create_app(Path(options.runs_dir).resolve(), public=options.host not in LOOPBACK_NAMES)
    # The socket is bound here, so that the address printed is the one bound (port 0 picks a free one).
    listener = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((options.host, options.port))
    except OSError as exc:
        raise OmniError(f"--host {options.host} --port {options.port}: cannot listen there ({exc.strerror})") from None
    port = listener.getsockname()[1]
    if options.host not in LOOPBACK_NAMES:
        print(f"omni web: listening on {options.host}: whoever reaches it can start runs here", file=sys.stderr)
    print(f"omni web: http://{options.host}:{port}  (runs in {options.runs_dir}; Ctrl-C stops the page)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[listener])
    return 0
