"""Helpers and pytest fixtures for testing omni and omni plugins (installed as a pytest plugin)."""
