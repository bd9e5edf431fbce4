"""The server-mode tests share the sglang tests' real OpenAI-compatible server (`omni serve` on the pt engine)."""

from tests.plugins.sglang.conftest import adapters, pt_engine, server_url, tiny_model  # noqa: F401
