"""The server-mode tests attach to a real OpenAI-compatible server (tests/remote_server.py)."""

from tests.remote_server import adapters, pt_engine, server_url, tiny_model  # noqa: F401
