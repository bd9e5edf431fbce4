"""omni-plugin-qwen2-audio: Qwen2-Audio (`Qwen2AudioForConditionalGeneration`): audio and text in, text out.

Registering imports nothing heavy: the loader and template load on use.
"""

from __future__ import annotations

from omni.api import ModelParts, ModelSpec, TemplateSpec, hookimpl

OMNI_PLUGIN_API = 1

# Module prefixes of transformers' Qwen2AudioForConditionalGeneration, for --freeze-llm/-audio/-aligner.
PARTS = ModelParts(
    llm=("model.language_model", "lm_head"),
    audio=("model.audio_tower",),
    aligner=("model.multi_modal_projector",),
)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="qwen2-audio",
            description="Qwen2-Audio (7B): speech, sounds and music with text in; text out",
            impl="omni_plugin_qwen2_audio.loader:load",
            architectures=("Qwen2AudioForConditionalGeneration",),
            model_types=("qwen2_audio",),
            hub_ids=("Qwen/Qwen2-Audio-*",),
            template="qwen2-audio",
            lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
            modalities=("text", "audio"),
            parts=PARTS,
        )
    )


@hookimpl
def register_templates(register):
    register(
        TemplateSpec(
            name="qwen2-audio",
            description="Qwen2-Audio: ChatML; each <audio> becomes 'Audio N: ' and the processor's placeholders",
            impl="omni_plugin_qwen2_audio.template:Qwen2AudioTemplate",
        )
    )
