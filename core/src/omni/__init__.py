"""omni: train and serve models of every modality from one CLI, as a small core plus plugins."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

# Major version of the plugin contract (hooks, spec records, the register callback). A plugin module
# declares the one it was written against as `OMNI_PLUGIN_API = 1`; other majors are not loaded.
PLUGIN_API_VERSION = 1

hookimpl = pluggy.HookimplMarker("omni")

__all__ = ["PLUGIN_API_VERSION", "__version__", "hookimpl"]
