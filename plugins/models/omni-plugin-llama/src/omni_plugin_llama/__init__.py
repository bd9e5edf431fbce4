"""omni-plugin-llama: Llama 3.x and SmolLM2 model specs and their chat templates.

Registering imports nothing heavy: templates live in `omni_plugin_llama.templates` and load on use;
checkpoints load through omni-core's generic transformers loader.
"""

from __future__ import annotations

from omni.api import ModelSpec, TemplateSpec, hookimpl

OMNI_PLUGIN_API = "1.4"

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="llama",
            description="Llama 3.x (and other LlamaForCausalLM checkpoints)",
            impl="omni.api:load_pretrained",
            architectures=("LlamaForCausalLM",),
            model_types=("llama",),
            hub_ids=("meta-llama/Llama-3*", "meta-llama/Meta-Llama-3*"),
            # LlamaForCausalLM checkpoints use many chat formats (Llama 3, SmolLM2, TinyLlama ...), so a local
            # one is encoded with its own chat template; --template llama3 picks the exact Llama 3.1+ one.
            template=None,
            lora_targets=LORA_TARGETS,
        )
    )
    register(
        ModelSpec(
            name="smollm2",
            description="SmolLM2 instruct models (Llama architecture, ChatML turns)",
            impl="omni.api:load_pretrained",
            hub_ids=("HuggingFaceTB/SmolLM2-*",),
            template="smollm2",
            lora_targets=LORA_TARGETS,
        )
    )


@hookimpl
def register_templates(register):
    register(
        TemplateSpec(
            name="llama3",
            description="Llama 3.1 / 3.2 / 3.3 instruct: header turns, <|eot_id|>, dated system block",
            impl="omni_plugin_llama.templates:Llama3Template",
            aliases=("llama3.1", "llama3.2", "llama3.3"),
        )
    )
    register(
        TemplateSpec(
            name="smollm2",
            description="SmolLM2 instruct: ChatML with SmolLM's default system prompt",
            impl="omni_plugin_llama.templates:SmolLM2Template",
        )
    )
