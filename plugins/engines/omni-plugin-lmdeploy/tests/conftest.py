"""The server-mode tests share a real OpenAI-compatible server with the sglang tests (tests/remote_server.py)."""

from tests.remote_server import adapters, pt_engine, server_url, tiny_model  # noqa: F401
