"""omni-plugin-qwen3: Qwen3 (dense, MoE) and Qwen2.5 model specs and their chat templates.

Registering imports nothing heavy: templates live in `omni_plugin_qwen3.templates` and load on use;
checkpoints load through omni-core's generic transformers loader.
"""

from __future__ import annotations

from omni.api import ModelSpec, TemplateSpec, hookimpl

OMNI_PLUGIN_API = "1.4"

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
DENSE_LORA_TARGETS = (*ATTENTION, "gate_proj", "up_proj", "down_proj")
LOADER = "omni.api:load_pretrained"


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="qwen3",
            description="Qwen3 dense models (0.6B ... 32B), thinking and non-thinking",
            impl=LOADER,
            architectures=("Qwen3ForCausalLM",),
            model_types=("qwen3",),
            # Sizes are listed so that MoE, Omni, VL ... ids (also "Qwen/Qwen3-...") go to their own specs.
            hub_ids=tuple(f"Qwen/Qwen3-{size}*" for size in ("0.6B", "1.7B", "4B", "8B", "14B", "32B")),
            template="qwen3",
            lora_targets=DENSE_LORA_TARGETS,
        )
    )
    register(
        ModelSpec(
            name="qwen3-moe",
            description="Qwen3 mixture-of-experts models (30B-A3B, 235B-A22B)",
            impl=LOADER,
            architectures=("Qwen3MoeForCausalLM",),
            model_types=("qwen3_moe",),
            hub_ids=("Qwen/Qwen3-30B-A3B*", "Qwen/Qwen3-235B-A22B*"),
            template="qwen3",
            # transformers stores the experts as fused 3-D weights, not Linear layers LoRA can wrap.
            lora_targets=ATTENTION,
        )
    )
    register(
        ModelSpec(
            name="qwen2.5",
            description="Qwen2.5 (and Qwen2) dense models",
            impl=LOADER,
            architectures=("Qwen2ForCausalLM",),
            model_types=("qwen2",),
            hub_ids=("Qwen/Qwen2.5-*", "Qwen/Qwen2-*"),
            template="qwen2.5",
            lora_targets=DENSE_LORA_TARGETS,
        )
    )


@hookimpl
def register_templates(register):
    register(
        TemplateSpec(
            name="qwen3",
            description="Qwen3: ChatML with <think> blocks; --enable-thinking false opens answers with an empty one",
            impl="omni_plugin_qwen3.templates:Qwen3Template",
        )
    )
    register(
        TemplateSpec(
            name="qwen2.5",
            description="Qwen2.5: ChatML with Qwen's default system prompt, tool results in user turns",
            impl="omni_plugin_qwen3.templates:Qwen25Template",
            aliases=("qwen2",),
        )
    )
