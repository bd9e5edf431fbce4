"""`omni serve`: an OpenAI-compatible HTTP server in front of any omni engine."""
