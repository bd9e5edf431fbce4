"""omni-plugin-vllm: the `vllm` engine (`--infer-backend vllm`) over vLLM's AsyncLLM.

Registering imports nothing heavy: the engine lives in `omni_plugin_vllm.engine` and loads on use.
"""

from __future__ import annotations

from omni.api import EngineSpec, hookimpl

from omni_plugin_vllm.options import VllmOptions

OMNI_PLUGIN_API = "1.6"


@hookimpl
def register_engines(register):
    register(
        EngineSpec(
            name="vllm",
            description="vLLM: continuous batching, streaming, per-request LoRA, multimodal, in-place weight updates",
            impl="omni_plugin_vllm.engine:VllmEngine",
            options=VllmOptions,
        )
    )
