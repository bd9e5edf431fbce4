"""omni-plugin-sglang: the `sglang` engine (`--infer-backend sglang`).

Registering imports nothing heavy: the engine lives in `omni_plugin_sglang.engine` and loads on use.
"""

from __future__ import annotations

from omni.api import EngineSpec, hookimpl

from omni_plugin_sglang.options import SglangOptions

OMNI_PLUGIN_API = 1


@hookimpl
def register_engines(register):
    register(
        EngineSpec(
            name="sglang",
            description="SGLang: sglang.Engine in-process, or an SGLang server launched (--launch-server) or attached "
            "to (--sglang-server-url)",
            impl="omni_plugin_sglang.engine:SglangEngine",
            options=SglangOptions,
        )
    )
