"""pytest fixtures for plugin authors; loaded automatically through the `pytest11` entry point."""
