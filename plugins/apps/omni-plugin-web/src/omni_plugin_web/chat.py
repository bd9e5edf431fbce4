"""Chat through `omni serve`: the page starts one server for the model (and adapter) chosen, and relays its
OpenAI-compatible streaming answers.

A server of its own rather than an engine inside the page's process: the page stays light, any
`--infer-backend` works, switching models frees the last one's memory, and images and audio travel as OpenAI
content parts, which omni serve already checks and bounds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from omni.api import OmniError

BASE_NAME = "base"  # the name the server gives the base model
ADAPTER_NAME = "adapter"  # and the adapter


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ChatServer:
    """At most one `omni serve` at a time, started by `load` and stopped by `close` or the next `load`."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.loaded: dict[str, Any] = {}
        self._ready = False

    def load(self, model: str | None, adapter: str | None, infer_backend: str | None = None) -> None:
        """Start serving `model` (default: the embedded one, or the adapter's recorded base) with `adapter`."""
        self.close()
        port = _free_port()
        argv = [sys.executable, "-m", "omni", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--served-model-name", BASE_NAME]
        if model:
            argv += ["--model", model]
        if adapter:
            argv += ["--adapters", f"{ADAPTER_NAME}={adapter}"]
        if infer_backend:
            argv += ["--infer-backend", infer_backend]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        self.loaded = {"model": model, "adapter": adapter, "infer_backend": infer_backend, "started": time.time()}
        self._ready = False

    def status(self) -> dict[str, Any]:
        """idle, loading, ready or failed (with omni's error line)."""
        if self.process is None:
            return {"status": "idle"}
        if self.process.poll() is not None:
            log = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
            errors = [line for line in log.splitlines() if line.startswith("omni: error: ")]
            lines = [line for line in log.splitlines() if line.strip()]
            error = errors[-1].removeprefix("omni: error: ") if errors else (lines[-1] if lines else "it exited")
            return {"status": "failed", "error": error, **self.loaded}
        if not self._ready:
            try:
                self._ready = httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
        return {"status": "ready" if self._ready else "loading", **self.loaded}

    async def stream(self, messages: list[dict[str, Any]], settings: dict[str, Any]) -> AsyncIterator[bytes]:
        """The server's answer as OpenAI server-sent events; a refusal becomes one event with its error."""
        if self.status()["status"] != "ready":
            raise OmniError("load a model first, and wait until it is ready")
        payload = {
            "model": ADAPTER_NAME if self.loaded.get("adapter") else BASE_NAME,
            "messages": messages,
            "stream": True,
            **{key: settings[key] for key in ("max_tokens", "temperature") if settings.get(key) is not None},
        }
        async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=10)) as client:
            async with client.stream("POST", f"{self.url}/v1/chat/completions", json=payload) as response:
                if response.status_code != 200:
                    body = (await response.aread()).decode("utf-8", errors="replace")
                    try:
                        message = json.loads(body)["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        message = body or f"HTTP {response.status_code}"
                    yield f"data: {json.dumps({'error': {'message': message}})}\n\n".encode()
                    return
                async for chunk in response.aiter_raw():
                    yield chunk

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        self.loaded = {}
