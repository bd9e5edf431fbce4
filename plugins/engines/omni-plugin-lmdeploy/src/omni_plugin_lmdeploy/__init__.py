"""omni-plugin-lmdeploy: the `lmdeploy` engine (`--infer-backend lmdeploy`).

Registering imports nothing heavy: the engine lives in `omni_plugin_lmdeploy.engine` and loads on use.
"""

from __future__ import annotations

from omni.api import EngineSpec, hookimpl

from omni_plugin_lmdeploy.options import LmdeployOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_engines(register):
    register(
        EngineSpec(
            name="lmdeploy",
            description="LMDeploy: lmdeploy.pipeline (TurboMind or PyTorch backend) in-process, or an LMDeploy "
            "api_server launched (--launch-server) or attached to (--lmdeploy-server-url)",
            impl="omni_plugin_lmdeploy.engine:LmdeployEngine",
            options=LmdeployOptions,
        )
    )
